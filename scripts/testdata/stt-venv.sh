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

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/venv.sh
source "$here/../lib/venv.sh"
ensure_venv stt "$here/requirements-stt.txt" 'faster_whisper, piper' "$@" -- --only-binary=:all:
