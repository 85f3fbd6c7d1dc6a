#!/usr/bin/env bash
# scripts/reference/music-venv.sh — create or reuse the music reference venv (librosa, mir_eval,
# pyloudnorm, mido) used by scripts/testdata/music, scripts/reference/music_reference.py and
# scripts/bench/music.sh.
#
# Usage: scripts/reference/music-venv.sh [--force]
#
# The venv lives at ${TIMBRE_CACHE:-$HOME/.cache/timbre}/venv-music and holds the version-pinned
# scripts/reference/requirements-music.txt. Idempotent: when the venv already matches the
# requirements file it only prints. stdout gets one line, the venv's python.
#
# Environment: TIMBRE_CACHE (cache root), PYTHON (base interpreter, default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/venv.sh
source "$here/../lib/venv.sh"
ensure_venv music "$here/requirements-music.txt" 'librosa, mir_eval, pyloudnorm, mido' "$@"
