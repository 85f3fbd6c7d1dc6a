#!/usr/bin/env bash
# Speech-to-text serving benchmark (issue 4): the HTTP path and live-streaming latency, against
# a real `timbre serve` on a free loopback port (whisper-tiny.en + silero-vad).
#
#   scripts/bench/stt_serve.sh
#
# Test audio: sentences synthesised with espeak-ng (en-us, 150 wpm) into $OUT/audio (numbers,
# names, questions; 2–5 s each), or the WAV files given in $STT_FILES.
#
# HTTP (POST /v1/audio/transcriptions, response_format=text, the defaults: beam 5, vad_filter):
#   - one at a time: every file once, sequentially; wall time and real-time factor
#     (wall ÷ audio seconds);
#   - 4 concurrent: the same files sent by 4 parallel curl loops (each file once overall);
#     wall time, RTF, and throughput ratio (sequential wall ÷ concurrent wall, > 1 means
#     concurrency pays);
#   per request the server's x-queue-time and x-inference-time are kept in $OUT/http-*.tsv.
#   Each mode runs $RUNS times, alternating; the table gives the median wall time.
# Streaming (WS /v1/stt/stream): the stt_latency example replays the files at real time in
# 20 ms frames (1 s silence before each, 1.5 s after) and measures per utterance the first
# partial after speech start and the final after speech end (targets: ≤ 1 s, ≤ 400 ms).
#
# Environment: TIMBRE_BIN (default: target/release/timbre, built if missing), STT_FILES,
# RUNS (default 3), TIMBRE_STT_WORKERS / TIMBRE_THREADS (passed to the server when set),
# CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUNS=${RUNS:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${BENCH_OUT:-$ROOT/target/bench/stt-serve-$(date -u +%Y%m%dT%H%M%SZ)}

die() { echo "stt_serve.sh: $*" >&2; exit 1; }
log() { echo "stt_serve.sh: $*" >&2; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

for m in whisper-tiny.en silero-vad; do
  [ -f "$ROOT/models/$m/model.toml" ] || die "models/$m missing: run scripts/fetch-models"
done
command -v espeak-ng >/dev/null || [ -n "${STT_FILES:-}" ] || die "espeak-ng is needed to make the test audio"
mkdir -p "$OUT/audio" "$OUT/models"

if [ -z "${TIMBRE_BIN:-}" ]; then
  log "building timbre and the latency client (release)"
  (cd "$ROOT" && cargo build --release -q -p timbre --bin timbre --example stt_latency)
  TIMBRE_BIN=$TARGET/release/timbre
fi
LATENCY_BIN=${LATENCY_BIN:-$(dirname "$TIMBRE_BIN")/examples/stt_latency}
[ -x "$TIMBRE_BIN" ] || die "no timbre binary at $TIMBRE_BIN"
[ -x "$LATENCY_BIN" ] || die "no latency client at $LATENCY_BIN"

if [ -n "${STT_FILES:-}" ]; then
  # shellcheck disable=SC2206
  FILES=($STT_FILES)
else
  SENTENCES=(
    "The quick brown fox jumps over the lazy dog."
    "Please call Stella and ask her to bring these things with her from the store."
    "My phone number is five five five, one two three four."
    "Did you remember to send the report to Doctor Patel on Tuesday?"
    "Twenty seven people arrived at nine fifteen in the morning."
    "Where is the nearest train station, and how long does it take to walk there?"
    "Hana and Marco met in Lisbon in two thousand nineteen."
    "Turn left at the second traffic light, then keep going straight."
  )
  FILES=()
  for i in "${!SENTENCES[@]}"; do
    f=$OUT/audio/s$i.wav
    espeak-ng -v en-us -s 150 -w "$f" "${SENTENCES[$i]}"
    echo "${SENTENCES[$i]}" >"$OUT/audio/s$i.txt"
    FILES+=("$f")
  done
fi
AUDIO_S=$(for f in "${FILES[@]}"; do python3 -c 'import sys,wave; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())' "$f"; done | awk '{s+=$1} END {printf "%.2f", s}')

ln -sfn "$ROOT/models/whisper-tiny.en" "$OUT/models/whisper-tiny.en"
ln -sfn "$ROOT/models/silero-vad" "$OUT/models/silero-vad"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ORT_DYLIB_PATH="$ROOT/runtime/libonnxruntime.so" LOG_LEVEL=warn RATE_LIMIT_PER_MINUTE=0 \
  "$TIMBRE_BIN" serve --host 127.0.0.1 --port "$PORT" --models-dir "$OUT/models" >"$OUT/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || die "server not ready (see $OUT/server.log)"
URL=http://127.0.0.1:$PORT/v1/audio/transcriptions

one() { # file tsv
  curl -s -o "$1.out" -D "$1.hdr" -F "file=@$1" -F response_format=text "$URL"
  printf '%s\t%s\t%s\n' "$(basename "$1")" "$(awk -F': ' 'tolower($1)=="x-queue-time" {print $2+0}' "$1.hdr")" \
    "$(awk -F': ' 'tolower($1)=="x-inference-time" {print $2+0}' "$1.hdr")" >>"$2"
}
export -f one
export URL

# Warm-up: first requests pay for page faults and allocator growth.
for f in "${FILES[@]:0:2}"; do one "$f" /dev/null; done

seq_times=(); par_times=()
for r in $(seq 1 "$RUNS"); do
  t=$(date +%s.%N)
  for f in "${FILES[@]}"; do one "$f" "$OUT/http-seq.tsv"; done
  seq_times+=("$(echo "$(date +%s.%N) - $t" | bc)")
  t=$(date +%s.%N)
  printf '%s\n' "${FILES[@]}" | xargs -P 4 -I{} bash -c 'one "$1" "$2"' _ {} "$OUT/http-par.tsv"
  par_times+=("$(echo "$(date +%s.%N) - $t" | bc)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
SEQ=$(median "${seq_times[@]}"); PAR=$(median "${par_times[@]}")
WER_NOTE=$(for f in "${FILES[@]}"; do [ -f "${f%.wav}.txt" ] && printf '%s | %s\n' "$(cat "${f%.wav}.txt")" "$(cat "$f.out")"; done)

log "streaming latency"
"$LATENCY_BIN" "ws://127.0.0.1:$PORT" "${FILES[@]}" >"$OUT/latency.jsonl"
SUMMARY=$(tail -1 "$OUT/latency.jsonl")

{
  echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "files: ${#FILES[@]}, ${AUDIO_S} s of audio; runs: $RUNS (median)"
  echo
  echo "| HTTP mode | wall (s) | RTF | throughput vs one-at-a-time |"
  echo "|---|---:|---:|---:|"
  printf '| one at a time | %.2f | %.3f | 1.00 |\n' "$SEQ" "$(echo "$SEQ / $AUDIO_S" | bc -l)"
  printf '| 4 concurrent | %.2f | %.3f | %.2f |\n' "$PAR" "$(echo "$PAR / $AUDIO_S" | bc -l)" "$(echo "$SEQ / $PAR" | bc -l)"
  echo
  echo "queue / inference ms per request (4 concurrent): $(awk -F'\t' '{q+=$2; i+=$3; n++} END {printf "mean queue %.0f, mean inference %.0f", q/n, i/n}' "$OUT/http-par.tsv")"
  echo
  echo "streaming (WS /v1/stt/stream, real time): $SUMMARY"
  echo
  echo "spoken | transcribed (HTTP):"
  echo "$WER_NOTE"
} | tee "$OUT/summary.md"
