#!/usr/bin/env bash
# Sound-tagging benchmark (issue 7, "Quality and speed"): accuracy on the built clip set and
# speed against Python onnxruntime, in one run.
#
#   scripts/bench/tagging.sh
#
# Accuracy: `timbre tag --json` on every clip of scripts/testdata/sounds.toml (built into
# target/testdata/sounds/ by scripts/testdata/sounds). Twice: with `--top-k 3 --threshold 0`
# for the model's top 3 labels per clip (hit: one of the clip's expected labels is among them),
# and with the defaults (threshold 0.3, window 2 s, hop 1 s) for events (hit: an event of one of
# the expected labels starts and ends within 0.5 s of the truth). Misses are listed.
#
# Speed:
#   - inference: one 10 s window (the `music-rock` clip) through timbre's engine
#     (`CedTagger::score_blocking`, crates/timbre-engines/examples/ced_bench.rs) and through
#     Python onnxruntime (`InferenceSession.run`), same tiny.onnx, same f32 input, same intra-op
#     threads (1, then 2), same session options (ORT_ENABLE_BASIC; Python with its default
#     options is timed once more, for the record); 3 warm-up calls, then $RUNS timed calls per
#     pass, two passes per side in the order timbre, Python, Python, timbre; median of the
#     2×$RUNS calls. Process start, model load and decoding are outside the timed region on both
#     sides. The scores of both are compared too (max abs diff).
#   - timeline: 3 minutes of audio (18 of the clips back to back) through
#     `timbre tag --json --window 2 --hop 1`: wall time including process start and model load,
#     and excluding them (time of `tag short long` minus time of `tag short`, short = 1 s);
#     median of $TIMELINE_RUNS runs each, interleaved. Also POST /v1/audio/classification with the
#     same file to a running server.
#   - live: `timbre serve` on a free loopback port, TIMBRE_MODELS_DIR holding only ced-tiny;
#     WS /v1/tag/stream with hop 1 s, window 2 s; 30 s of audio sent as 20 ms PCM16 frames at
#     real time; per hop the server's `latency_ms` (frame received → tags ready) and the client's
#     wall time from sending the hop's last frame to receiving its tags; p50/p99.
#
# Prints a markdown table and writes it to target/bench/tagging-<time>.md (raw data, server log
# and the inputs in target/bench/tagging-<time>/).
#
# Environment:
#   TIMBRE_BIN      timbre binary (default: target/release/timbre, built with cargo if missing)
#   CED_BENCH_BIN   the ced_bench example (default: built with cargo --release)
#   TIMBRE_MODELS_DIR  where ced-tiny lives (default <repo>/models)
#   RUNS            timed inference calls per pass (default 30; two passes per side)
#   TIMELINE_RUNS   runs of each timeline measurement (default 5)
#   TIMBRE_CACHE    cache root for the venvs (default ~/.cache/timbre)
#   CARGO_TARGET_DIR  as for cargo
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${RUNS:-30}
TIMELINE_RUNS=${TIMELINE_RUNS:-5}
MODELS=${TIMBRE_MODELS_DIR:-$ROOT/models}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/bench/tagging-$(date -u +%Y%m%dT%H%M%SZ)

die() { echo "tagging.sh: $*" >&2; exit 1; }
log() { echo "tagging.sh: $*" >&2; }

[[ -f "$MODELS/ced-tiny/model.toml" ]] || die "no $MODELS/ced-tiny: run scripts/fetch-models"

cd "$ROOT"
if [[ -z "${TIMBRE_BIN:-}" ]]; then
  TIMBRE_BIN=$TARGET/release/timbre
  if [[ ! -x "$TIMBRE_BIN" ]]; then
    log "building the release binary"
    cargo build --release --locked -p timbre >&2
  fi
fi
[[ -x "$TIMBRE_BIN" ]] || die "TIMBRE_BIN=$TIMBRE_BIN is not executable"
if [[ -z "${CED_BENCH_BIN:-}" ]]; then
  log "building crates/timbre-engines/examples/ced_bench.rs (release)"
  cargo build --release --locked -p timbre-engines --example ced_bench >&2
  CED_BENCH_BIN=$TARGET/release/examples/ced_bench
fi
[[ -x "$CED_BENCH_BIN" ]] || die "CED_BENCH_BIN=$CED_BENCH_BIN is not executable"
# ced_bench finds the ONNX Runtime library like the server does; from target/release/examples/
# that search may miss <repo>/runtime, so point at it when nothing else is set.
if [[ -z "${ORT_DYLIB_PATH:-}" && -f "$ROOT/runtime/libonnxruntime.so" ]]; then
  export ORT_DYLIB_PATH=$ROOT/runtime/libonnxruntime.so
fi

CLIPS=$("$ROOT/scripts/testdata/sounds")
PY=$("$ROOT/scripts/reference/venv.sh")

mkdir -p "$OUT"
"$PY" "$ROOT/scripts/bench/tagging.py" run \
  --timbre "$TIMBRE_BIN" --ced-bench "$CED_BENCH_BIN" --model-dir "$MODELS/ced-tiny" \
  --clips "$CLIPS" --out "$OUT" --runs "$RUNS" --timeline-runs "$TIMELINE_RUNS" \
  --command "scripts/bench/tagging.sh"
log "wrote $OUT.md (raw data in $OUT/)"
