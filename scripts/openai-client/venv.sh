#!/usr/bin/env bash
# scripts/openai-client/venv.sh — create or reuse a venv with the official OpenAI Python client.
#
# Usage: scripts/openai-client/venv.sh [--force]
#
# The venv lives at ${TIMBRE_CACHE:-$HOME/.cache/timbre}/venv-openai and holds
# scripts/openai-client/requirements.txt (pip resolves the client's dependencies). Idempotent:
# when the venv already matches requirements.txt it only prints. stdout gets one line, the
# venv's python, e.g.:
#   "$(scripts/openai-client/venv.sh)" -c 'import openai; print(openai.__version__)'
#
# Environment: TIMBRE_CACHE (cache root), PYTHON (base interpreter, default python3).
set -euo pipefail

log() { printf '[venv-openai] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
cache="${TIMBRE_CACHE:-$HOME/.cache/timbre}"
venv="$cache/venv-openai"
py="$venv/bin/python"
stamp="$venv/.timbre-requirements.sha256"
base="${PYTHON:-python3}"

want="$(sha256sum <"$req" | cut -d' ' -f1)"
if ((!force)) && [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$py"
  exit 0
fi

command -v "$base" >/dev/null || die "$base not found"
mkdir -p "$cache"
# Two tests may ask at once: one builds, the other waits for it.
exec 9>"$cache/.venv-openai.lock"
flock 9
if ((!force)) && [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$py"
  exit 0
fi
if [[ ! -x "$py" ]]; then
  log "creating $venv"
  "$base" -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
"$py" -m pip install --quiet --disable-pip-version-check --timeout 60 --retries 2 -r "$req" \
  || die "pip could not install the OpenAI client: is PyPI reachable?"
"$py" -c 'import openai' || die "venv installed but openai does not import"
echo "$want" >"$stamp"
log "ready: openai $("$py" -c 'import openai; print(openai.__version__)')"
echo "$py"
