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

log() { printf '[venv-music] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements-music.txt"
cache="${TIMBRE_CACHE:-$HOME/.cache/timbre}"
venv="$cache/venv-music"
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
log "installing $(grep -c '==' "$req") pinned packages (librosa pulls numba/scipy: a minute or two)"
"$py" -m pip install --quiet --disable-pip-version-check --timeout 60 --retries 2 -r "$req" >&2 \
  || die "pip install -r $req failed: is PyPI reachable?"
"$py" -c 'import librosa, mir_eval, pyloudnorm, mido' || die "venv installed but librosa/mir_eval/pyloudnorm/mido do not import"
echo "$want" >"$stamp"
echo "$py"
