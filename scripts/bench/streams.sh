#!/usr/bin/env bash
# Keypoint stream benchmark: timbre's WS /v1/streams/{model} vs. a minimal Python
# websockets + onnxruntime server of Signify's design (scripts/bench/peers/signify_server.py),
# both running models/signify-letters-test ([1,1,21,3] -> [1,26]), driven by the same Rust
# load client (crates/timbre/examples/stream_load.rs) in the same run.
#
#   scripts/bench/streams.sh
#
# For each server and each N in $CLIENTS (ascending): N clients send JSON keypoint frames at
# $FPS for $DURATION_S seconds; the client reports round-trip p50/p99 (from the `t` each reply echoes)
# and frames lost (sent, never answered); the script reads the server's CPU time
# (utime + stime of /proc/PID/stat) before and after and its VmRSS, and prints a markdown row:
# CPU seconds per 1,000 answered frames, RSS, RSS growth over the idle server. A server's ramp
# is marked sustained when no frame was lost and p99 <= $P99_LIMIT_MS ms; a server's ramp stops
# after the first N at which it loses frames (or clients cannot connect).
#
# Environment:
#   CLIENTS        client counts to try, ascending (default "50 100 150 200 400 550 700")
#   FPS            frames per second per client (default 30)
#   DURATION_S     seconds per measurement (default 20)
#   P99_LIMIT_MS   p99 round trip that still counts as sustained (default 10)
#   BENCH_SERVERS  which servers, in order (default "timbre python")
#   SERVER_CPUS    taskset CPU list for the servers (default "1"; "" = no pinning)
#   CLIENT_CPUS    taskset CPU list for the load client (default "0"; "" = no pinning)
#   TIMBRE_BIN     timbre binary (default: cargo build --release; also builds the client)
#   TIMBRE_CACHE   cache root; the peer's venv is $TIMBRE_CACHE/venv-bench
#   BENCH_OUT      raw output directory (default target/bench/streams-<time>)
#
# Needs models/signify-letters-test (scripts/train-stream-demo) and runtime/ (scripts/fetch-runtime).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENTS=${CLIENTS:-50 100 150 200 400 550 700}
FPS=${FPS:-30}
SECONDS_PER_RUN=${DURATION_S:-20}
P99_LIMIT_MS=${P99_LIMIT_MS:-10}
BENCH_SERVERS=${BENCH_SERVERS:-timbre python}
SERVER_CPUS=${SERVER_CPUS-1}
CLIENT_CPUS=${CLIENT_CPUS-0}
CACHE=${TIMBRE_CACHE:-$HOME/.cache/timbre}
VENV=$CACHE/venv-bench
MODEL=signify-letters-test
PEER_REQUIREMENTS="websockets==17.4 onnxruntime==1.31.1 numpy==2.4.6"
OUT=${BENCH_OUT:-$ROOT/target/bench/streams-$(date -u +%Y%m%dT%H%M%SZ)}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

die() { echo "streams.sh: $*" >&2; exit 1; }
log() { echo "streams.sh: $*" >&2; }

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Always called in a subshell (`&` or `$(...)`): exec, so $! is the program itself.
pin() { local cpus=$1; shift; if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi; }

[ -f "$ROOT/models/$MODEL/model.toml" ] || die "models/$MODEL missing: run scripts/train-stream-demo"
[ -f "$ROOT/runtime/libonnxruntime.so" ] || die "runtime/ missing: run scripts/fetch-runtime"
mkdir -p "$OUT"
ulimit -n 20000 2>/dev/null || true

if [ -z "${TIMBRE_BIN:-}" ]; then
  log "building timbre and the load client (release)"
  (cd "$ROOT" && cargo build --release --locked -q -p timbre --bin timbre --example stream_load)
  TIMBRE_BIN=$TARGET/release/timbre
fi
LOAD_BIN=${LOAD_BIN:-$(dirname "$TIMBRE_BIN")/examples/stream_load}
[ -x "$TIMBRE_BIN" ] || die "no timbre binary at $TIMBRE_BIN"
# Not passed on: timbre warns about TIMBRE_* variables it does not know.
bin=$TIMBRE_BIN
unset TIMBRE_BIN
TIMBRE_BIN=$bin
[ -x "$LOAD_BIN" ] || die "no load client at $LOAD_BIN"

ensure_peer_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import websockets, onnxruntime, numpy' 2>/dev/null; then
    return
  fi
  log "installing the peer's packages into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # onnxruntime's own dependencies are not needed by InferenceSession (see scripts/reference).
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --find-links "$CACHE/wheels" $PEER_REQUIREMENTS
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
  local port=$1 i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

start_server() {
  local which=$1 port=$2
  case $which in
    timbre)
      local models=$OUT/models
      mkdir -p "$models"
      ln -sfn "$ROOT/models/$MODEL" "$models/$MODEL"
      ORT_DYLIB_PATH="$ROOT/runtime/libonnxruntime.so" LOG_LEVEL=warn MAX_CONCURRENT_SESSIONS=100000 \
        RATE_LIMIT_PER_MINUTE=0 TIMBRE_STREAM_MAX_FPS=0 \
        pin "$SERVER_CPUS" "$TIMBRE_BIN" serve --host 127.0.0.1 --port "$port" --models-dir "$models" \
        >"$OUT/timbre-$port.log" 2>&1 &
      ;;
    python)
      pin "$SERVER_CPUS" "$VENV/bin/python" "$ROOT/scripts/bench/peers/signify_server.py" \
        "$ROOT/models/$MODEL/model.onnx" "$ROOT/models/$MODEL/labels.txt" "$port" \
        >"$OUT/python-$port.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$port" || die "$which did not listen on $port (see $OUT)"
  if [ "$which" = timbre ]; then   # listening comes before the model is ready
    local i
    for i in $(seq 1 200); do
      curl -sf "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"state":"ready"' && return 0
      sleep 0.05
    done
    die "timbre's model never became ready (see $OUT/timbre-$port.log)"
  fi
}

url_of() {
  case $1 in
    timbre) echo "ws://127.0.0.1:$2/v1/streams/$MODEL" ;;
    python) echo "ws://127.0.0.1:$2/" ;;
  esac
}

machine="$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
log "machine: $machine; load average $(cut -d' ' -f1-3 /proc/loadavg); raw output in $OUT"
echo
echo "| server | clients | frames answered | lost | p50 (ms) | p99 (ms) | CPU s / 1,000 frames | RSS (MB) | RSS growth (MB) | inference p99 (ms) | sustained |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for server in $BENCH_SERVERS; do
  [ "$server" = python ] && ensure_peer_venv
  for n in $CLIENTS; do
    # A fresh server per N: RSS growth and CPU belong to this load alone.
    port=$(free_port)
    start_server "$server" "$port"
    sleep 1
    rss0=$(rss_mb "$SERVER_PID")
    cpu0=$(cpu_ticks "$SERVER_PID")
    result=$(cd "$ROOT" && pin "$CLIENT_CPUS" "$LOAD_BIN" --url "$(url_of "$server" "$port")" --clients "$n" \
      --fps "$FPS" --seconds "$SECONDS_PER_RUN" 2>"$OUT/load-$server-$n.err")
    cpu1=$(cpu_ticks "$SERVER_PID")
    rss1=$(rss_mb "$SERVER_PID")
    infer_p99=-
    if [ "$server" = timbre ]; then   # the engine's own inference time (summary quantile, /metrics)
      curl -sf "http://127.0.0.1:$port/metrics" >"$OUT/metrics-$n.txt" || true
      infer_p99=$(awk '/^timbre_engine_inference_seconds\{.*quantile="0.99"/ {printf "%.3f", $2 * 1000; exit}' \
        "$OUT/metrics-$n.txt")
      infer_p99=${infer_p99:--}
    fi
    echo "$result" >"$OUT/load-$server-$n.json"
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    row=$(python3 - "$result" "$server" "$n" "$cpu0" "$cpu1" "$CLK_TCK" "$rss0" "$rss1" "$P99_LIMIT_MS" "$infer_p99" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); server, n = sys.argv[2], int(sys.argv[3])
cpu = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
rss0, rss1, limit, infer = float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9]), sys.argv[10]
answered = r["answered"]
per_k = cpu / (answered / 1000) if answered else float("nan")
p50, p99 = r["p50_ms"], r["p99_ms"]
ok = r["connected"] == n and r["lost"] == 0 and r["errors"] == 0 and p99 is not None and p99 <= limit
conn = "" if r["connected"] == n else f" ({n - r['connected']} clients could not connect)"
print(f"| {server} | {n} | {answered} | {r['lost']}{conn} | {p50} | {p99} | {per_k:.3f} | {rss1:.1f} | "
      f"{rss1 - rss0:+.1f} | {infer} | {'yes' if ok else 'no'} |")
print("STOP" if r["lost"] > 0 or r["connected"] < n else "GO")
PY
)
    echo "${row%$'\n'*}"
    case $row in *STOP) log "$server loses frames at $n clients; stopping its ramp"; break ;; esac
  done
done
