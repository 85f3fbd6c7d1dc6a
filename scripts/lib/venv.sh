# scripts/lib/venv.sh — sourced by the scripts that build a Python venv from a pinned
# requirements file (scripts/openai-client/venv.sh, scripts/reference/music-venv.sh,
# scripts/testdata/stt-venv.sh), so the idempotence, locking and failure messages live once.
#
#   ensure_venv NAME REQUIREMENTS "MODULE, …" [--force] [-- PIP_ARGS…]
#
# Builds ${TIMBRE_CACHE:-~/.cache/timbre}/venv-NAME unless its stamp already holds the
# requirements file's sha256, checks that the modules import, and prints the venv's python as the
# one line on stdout. Concurrent callers (tests run in parallel) wait for each other on a lock.
# Environment: TIMBRE_CACHE (cache root), PYTHON (base interpreter, default python3).

ensure_venv() {
  local name=$1 req=$2 imports=$3
  shift 3
  local force=0 pip_args=()
  while (($#)); do
    case "$1" in
      --force) force=1 ;;
      -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
      --) shift; pip_args=("$@"); break ;;
      *) printf '[venv-%s] error: unknown argument: %s (try --help)\n' "$name" "$1" >&2; exit 1 ;;
    esac
    shift
  done
  local cache="${TIMBRE_CACHE:-$HOME/.cache/timbre}"
  local venv="$cache/venv-$name" base="${PYTHON:-python3}"
  local py="$venv/bin/python" stamp="$venv/.timbre-requirements.sha256"
  local want
  want="$(sha256sum <"$req" | cut -d' ' -f1)"
  fail() { printf '[venv-%s] error: %s\n' "$name" "$*" >&2; exit 1; }
  current() { ((!force)) && [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; }

  if current; then
    echo "$py"
    return 0
  fi
  mkdir -p "$cache"
  exec 9>"$cache/.venv-$name.lock"
  flock 9
  if current; then
    echo "$py"
    return 0
  fi
  command -v "$base" >/dev/null || fail "$base not found"
  if [[ ! -x "$py" ]]; then
    printf '[venv-%s] creating %s\n' "$name" "$venv" >&2
    "$base" -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  printf '[venv-%s] installing %s pinned packages\n' "$name" "$(grep -c '==' "$req")" >&2
  "$py" -m pip install --quiet --disable-pip-version-check --timeout 60 --retries 2 "${pip_args[@]}" -r "$req" >&2 \
    || fail "pip install -r $req failed: is PyPI reachable?"
  "$py" -c "import $imports" || fail "venv installed but one of $imports does not import"
  echo "$want" >"$stamp"
  printf '[venv-%s] ready\n' "$name" >&2
  echo "$py"
}
