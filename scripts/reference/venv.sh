#!/usr/bin/env bash
# scripts/reference/venv.sh — create or reuse the reference Python venv (onnxruntime + numpy).
#
# Usage: scripts/reference/venv.sh [--force]
#
#   --force   reinstall the requirements even if the venv looks current
#
# The venv lives at ${TIMBRE_CACHE:-$HOME/.cache/timbre}/venv-ref and holds exactly
# scripts/reference/requirements.txt (hash-pinned; installed with --no-deps
# --require-hashes). Wheels are cached in $TIMBRE_CACHE/wheels (the same place
# scripts/fetch-runtime keeps the onnxruntime wheel), so a rebuild downloads nothing.
# Idempotent: when the venv already matches requirements.txt it only prints.
# stdout gets one line, the venv's python, e.g.:
#   "$(scripts/reference/venv.sh)" scripts/reference/ort_fixtures.py
#
# Environment: TIMBRE_CACHE (cache root), PYTHON (base interpreter, default python3).
set -euo pipefail

log() { printf '[venv-ref] %s\n' "$*" >&2; }
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
venv="$cache/venv-ref"
wheels="$cache/wheels"
py="$venv/bin/python"
stamp="$venv/.timbre-requirements.sha256"
base="${PYTHON:-python3}"

want="$(sha256sum <"$req" | cut -d' ' -f1)"
if ((!force)) && [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$py"
  exit 0
fi

command -v "$base" >/dev/null || die "$base not found"
if [[ ! -x "$py" ]]; then
  log "creating $venv"
  "$base" -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
mkdir -p "$wheels"

pip_opts=(--disable-pip-version-check --no-deps --only-binary=:all: --require-hashes -r "$req")
# Offline first (cached wheels); otherwise download into the cache (pip checks the hashes).
if ! "$py" -m pip install --quiet --no-index --find-links "$wheels" "${pip_opts[@]}" 2>/dev/null; then
  log "downloading reference wheels into $wheels"
  "$py" -m pip download --quiet --timeout 60 --retries 2 -d "$wheels" "${pip_opts[@]}" \
    || die "pip could not download the reference wheels: is PyPI reachable?"
  "$py" -m pip install --quiet --no-index --find-links "$wheels" "${pip_opts[@]}" \
    || die "pip install from $wheels failed"
fi
"$py" -c 'import numpy, onnxruntime' || die "venv installed but onnxruntime does not import"
echo "$want" >"$stamp"
log "ready: $("$py" -c 'import onnxruntime, numpy; print(f"onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}")')"
echo "$py"
