#!/usr/bin/env bash
# scripts/testdata/stt-venv.sh — create or reuse the speech venv (piper-tts, faster-whisper).
#
# Usage: scripts/testdata/stt-venv.sh [--force]
#
# The venv lives at ${TIMBRE_CACHE:-$HOME/.cache/timbre}/venv-stt and holds the pinned
# scripts/testdata/requirements-stt.txt. Idempotent: when the venv matches the requirements it
# only prints. stdout gets one line, the venv's python.
#
# Environment: TIMBRE_CACHE (cache root), PYTHON (base interpreter, default python3).
set -euo pipefail

log() { printf '[venv-stt] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements-stt.txt"
cache="${TIMBRE_CACHE:-$HOME/.cache/timbre}"
venv="$cache/venv-stt"
py="$venv/bin/python"
stamp="$venv/.timbre-requirements.sha256"
want="$(sha256sum <"$req" | cut -d' ' -f1)"
if ((!force)) && [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$py"
  exit 0
fi
[[ -x "$py" ]] || { log "creating $venv"; "${PYTHON:-python3}" -m venv "$venv" || die "python3 -m venv failed"; }
"$py" -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r "$req" \
  || die "pip install failed: is PyPI reachable?"
"$py" -c 'import faster_whisper, piper' || die "venv installed but faster_whisper/piper do not import"
echo "$want" >"$stamp"
log "ready"
echo "$py"
