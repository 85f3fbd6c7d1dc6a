#!/usr/bin/env bash
# Text-to-speech benchmark (issue 5, "Quality and speed"): timbre through its HTTP API against
# piper-tts and hibari-tts in-process, on the same 20 sentences and the same thread count, in one
# run.
#
#   scripts/bench/tts.sh
#
# - Real-time factor: each sentence of scripts/bench/tts_sentences.txt one at a time; timbre:
#   POST /v1/audio/speech (wav, whole file: wall time from request to last byte, HTTP included);
#   piper-tts 1.8.0 `PiperVoice.synthesize` (espeak-ng phonemes + ONNX, its session built with
#   intra_op_num_threads=$THREADS) and hibari-tts 0.2.1 `Hibari(threads=$THREADS)(text)` (G2P +
#   ONNX + DSP). Default synthesis settings on both sides (Piper noise on). RTF = total wall time /
#   total audio seconds, over $PASSES interleaved passes (timbre, peer, peer, timbre).
# - Throughput: the 20 sentences one at a time vs 4 concurrent requests (audio seconds produced
#   per wall second), timbre only, TIMBRE_TTS_WORKERS=$WORKERS.
# - Time to first audio byte: a two-sentence request with stream_format=audio (pcm), from
#   sending the request to the first body byte; median and p90 of 15.
# - espeak-ng: phonemes for each sentence from one long-lived `espeak-ng -q --ipa` process
#   (what timbre's Piper workers keep, with their `-s 440 -p 99 -z`) vs spawning `espeak-ng` per
#   sentence; median wall ms.
# - Intelligibility: the 20 sentences synthesized by timbre (both voices), transcribed by
#   faster-whisper 1.2.1 with models/whisper-tiny.en (int8, beam 5); word error rate after
#   lower-casing and dropping punctuation.
#
# Writes target/bench/tts-<time>.md (and the synthesized wavs + server log next to it).
#
# Environment: TIMBRE_BIN (default target/release/timbre, built if missing), THREADS (2),
# WORKERS (2), PASSES (2), TIMBRE_MODELS_DIR (<repo>/models), TIMBRE_CACHE, CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
PASSES=${PASSES:-2}
MODELS=${TIMBRE_MODELS_DIR:-$ROOT/models}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/target/bench/tts-$STAMP

die() { echo "tts.sh: $*" >&2; exit 1; }
log() { echo "tts.sh: $*" >&2; }

for m in piper-en_US-joe-medium hibari whisper-tiny.en; do
  [[ -d "$MODELS/$m" ]] || die "no $MODELS/$m: run scripts/fetch-models"
done
cd "$ROOT"
if [[ -z "${TIMBRE_BIN:-}" ]]; then
  TIMBRE_BIN=$TARGET/release/timbre
  [[ -x "$TIMBRE_BIN" ]] || { log "building the release binary"; cargo build --release -p timbre >&2; }
fi
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/runtime/libonnxruntime.so}
PY=$("$ROOT/scripts/reference/tts_venv.sh")
mkdir -p "$OUT/models"
for m in piper-en_US-joe-medium hibari; do ln -sfn "$MODELS/$m" "$OUT/models/$m"; done

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TIMBRE_MODELS_DIR=$OUT/models TIMBRE_THREADS=$THREADS TIMBRE_TTS_WORKERS=$WORKERS TIMBRE_DATA_DIR=$OUT/data \
  RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warn "$TIMBRE_BIN" serve --host 127.0.0.1 --port "$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
ready() {
  curl -sf "http://127.0.0.1:$PORT/v1/audio/voices" 2>/dev/null | python3 -c '
import json, sys
v = {x["name"]: x["state"] for x in json.load(sys.stdin)["data"]}
sys.exit(0 if v.get("heart") == "ready" and v.get("en_US-joe-medium") == "ready" else 1)' 2>/dev/null
}
for _ in $(seq 600); do
  ready && break
  kill -0 $SERVER 2>/dev/null || die "the server exited (see $OUT/server.log)"
  sleep 0.2
done
ready || die "voices not ready (see $OUT/server.log)"

log "running (threads $THREADS, workers $WORKERS, passes $PASSES)"
"$PY" "$ROOT/scripts/bench/tts.py" --addr "127.0.0.1:$PORT" --models "$MODELS" \
  --sentences "$ROOT/scripts/bench/tts_sentences.txt" --threads "$THREADS" --passes "$PASSES" \
  --out "$OUT/wavs" >"$OUT/results.json"

"$PY" - "$OUT/results.json" "$THREADS" "$WORKERS" <<'PY' | tee "$OUT.md"
import json, sys
r = json.load(open(sys.argv[1])); threads, workers = sys.argv[2], sys.argv[3]
print(f"| measure (threads {threads}, timbre workers {workers}) | timbre | peer | ratio |")
print("|---|---|---|---|")
for k, peer in (("piper", "piper-tts"), ("hibari", "hibari-tts")):
    o, t = r[k]
    print(f"| RTF, {r['sentences']} sentences one at a time, voice {k} vs {peer} | {o:.4f} | {t:.4f} | {o / t:.2f}× |")
for k in ("piper", "hibari"):
    s, p = r[f"{k}_concurrency"]
    print(f"| throughput {k}: 4 concurrent vs one at a time (audio s per s) | {p:.1f} | {s:.1f} (sequential) | {p / s:.2f}× |")
for k in ("piper", "hibari"):
    m, p90 = r[f"{k}_ttfb"]
    print(f"| time to first audio byte, two sentences streamed, {k} (median / p90) | {m * 1000:.1f} / {p90 * 1000:.1f} ms | | |")
sp, pool = r["espeak_ms"]
print(f"| espeak-ng phonemes per sentence: long-lived process (timbre) vs a spawn per call (median) | {pool:.1f} ms | {sp:.1f} ms | {pool / sp:.2f}× |")
for k in ("piper", "hibari"):
    w, e, n, misses = r[f"{k}_wer"]
    print(f"| WER (faster-whisper tiny.en), {k} | {w * 100:.1f}% ({e}/{n} words) | | |")
for k in ("piper", "hibari"):
    for ref, hyp in r[f"{k}_wer"][3]:
        print(f"\n- {k} miss: “{ref}” → “{hyp}”", end="")
print()
PY
log "written $OUT.md"
