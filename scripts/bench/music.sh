#!/usr/bin/env bash
# Music-analysis benchmark (issue 6, "Quality and speed"): timbre's complete analysis against
# librosa's beat tracking on the same rendered songs, in one run.
#
#   scripts/bench/music.sh
#
# Songs: the bench set of scripts/testdata/music (nine 1–3 minute mma + fluidsynth renders,
# 4/4 and 3/4, 70–170 BPM, one tempo change, truth from the charts), plus the 3-minute song encoded
# to MP3 (ffmpeg, 192 kb/s) for a compressed-input row.
#
# Per song, interleaved, $RUNS times each (median reported):
#   timbre  `timbre analyze SONG --json` (release): the whole analysis — decode, beats, downbeats,
#           meter, sections, energy, loudness, waveform, genre and mood with BeatNet and CED-tiny
#           — wall time of the process, start and model loading included.
#   librosa `librosa.load(SONG, sr=22050)` + `librosa.beat.beat_track`, timed inside one Python
#           process that has already imported librosa and run beat_track once (numba compiled):
#           interpreter start and imports are NOT counted for librosa.
# Accuracy (mir_eval, 5 s trimmed, 70 ms window): beat F-measure, BPM error against the chart
# tempo (any of the song's tempi), downbeat F-measure (timbre only; librosa has no downbeats),
# meter. Prints a markdown table and writes it to target/bench/music-<time>.md.
#
# Environment:
#   TIMBRE_BIN        timbre binary (default: target/release/timbre, built with cargo if missing)
#   TIMBRE_MODELS_DIR models (default <repo>/models; beatnet and ced-tiny are used)
#   RUNS              runs per song and tool (default 3)
#   TIMBRE_CACHE      cache root (songs, venv)
#   CARGO_TARGET_DIR  as for cargo
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${RUNS:-3}
MODELS=${TIMBRE_MODELS_DIR:-$ROOT/models}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench/music-$(date -u +%Y%m%dT%H%M%SZ)

die() { echo "music.sh: $*" >&2; exit 1; }
log() { echo "music.sh: $*" >&2; }

[[ -f "$MODELS/beatnet/model.toml" && -f "$MODELS/ced-tiny/model.toml" ]] || die "no beatnet/ced-tiny in $MODELS: run scripts/fetch-models"
cd "$ROOT"
if [[ -z "${TIMBRE_BIN:-}" ]]; then
  TIMBRE_BIN=$TARGET/release/timbre
  if [[ ! -x "$TIMBRE_BIN" ]]; then
    log "building the release binary"
    cargo build --release --locked -p timbre >&2
  fi
fi
[[ -x "$TIMBRE_BIN" ]] || die "TIMBRE_BIN=$TIMBRE_BIN is not executable"
if [[ -z "${ORT_DYLIB_PATH:-}" && -f "$ROOT/runtime/libonnxruntime.so" ]]; then
  export ORT_DYLIB_PATH=$ROOT/runtime/libonnxruntime.so
fi

SONGS=$("$ROOT/scripts/testdata/music" bench)/bench
PY=$("$ROOT/scripts/reference/music-venv.sh")
mkdir -p "$OUT"
"$PY" "$ROOT/scripts/bench/music.py" --timbre "$TIMBRE_BIN" --models "$MODELS" --songs "$SONGS" \
  --out "$OUT" --runs "$RUNS" --command "scripts/bench/music.sh"
log "wrote $OUT.md (raw data in $OUT/)"
