#!/usr/bin/env bash
# scripts/reference/tts_venv.sh — create or reuse the TTS peer venv: piper-tts and hibari-tts
# (fidelity references and benchmark peers), faster-whisper (the intelligibility judge) and the
# official openai client (API compatibility tests).
#
# Usage: scripts/reference/tts_venv.sh [--force]
#
# The venv lives at ${TIMBRE_CACHE:-$HOME/.cache/timbre}/venv-tts. Idempotent: when the venv
# already holds the pinned versions it only prints. stdout gets one line, the venv's python:
#   "$(scripts/reference/tts_venv.sh)" scripts/reference/tts_fixtures.py
set -euo pipefail

log() { printf '[venv-tts] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

cache="${TIMBRE_CACHE:-$HOME/.cache/timbre}"
venv="$cache/venv-tts"
py="$venv/bin/python"
# scipy: hibari-tts's `fast` extra (its DSP tail on scipy.fft, 2x faster): the peer at its best.
pins=(piper-tts==1.8.0 hibari-tts==0.2.1 scipy==1.17.1 onnxruntime==1.31.1 faster-whisper==1.2.1 openai==3.54.0)
want="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.timbre-pins.sha256"

if ((!force)) && [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$py"
  exit 0
fi
command -v python3 >/dev/null || die "python3 not found"
if [[ ! -x "$py" ]]; then
  log "creating $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
log "installing ${pins[*]}"
"$py" -m pip install --quiet --disable-pip-version-check "${pins[@]}" || die "pip install failed: is PyPI reachable?"
"$py" -c 'import piper, hibari, faster_whisper, openai' || die "venv installed but a package does not import"
echo "$want" >"$stamp"
log "ready"
echo "$py"
