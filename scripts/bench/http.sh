#!/usr/bin/env bash
# HTTP benchmark: GET /health on timbre vs. a minimal FastAPI + uvicorn app (the seeds' stack).
#
#   scripts/bench/http.sh
#
# For each server: start it on a free loopback port, wait until it listens (10 s at most),
# read its idle RSS, warm up with wrk for 2 s, then measure with
# `wrk -t$WRK_THREADS -c64 -d$DURATION --latency`. For each server also: time from exec to listening,
# median of $STARTS fresh starts. Prints a markdown table and the req/s ratio.
#
# Environment:
#   TIMBRE_BIN      timbre binary (default: build target/release/timbre with cargo first)
#   DURATION        wrk measuring duration (default 10s)
#   STARTS          starts for the startup-time median (default 10)
#   BENCH_SERVERS   which servers to run, in order (default "timbre fastapi")
#   SERVER_CPUS     optional taskset CPU list applied to both servers, e.g. "1" (default: none;
#                   both servers and wrk share all cores)
#   WRK_CPUS        taskset CPU list for wrk (default: when SERVER_CPUS is set, every other
#                   CPU this script may use, so client and server never compete; else none)
#   WRK_THREADS     wrk threads (default: one per CPU in WRK_CPUS when wrk is pinned, else 2).
#                   Two wrk threads on one pinned CPU take turns, and a descheduled thread's
#                   32 connections wait for its turn: that wait is the client's, not the
#                   server's, yet wrk counts it as latency (p99 ~2.9 ms instead of ~1.8 ms).
#   TIMBRE_CACHE    cache root; the FastAPI venv lives in $TIMBRE_CACHE/venv-bench
#                   (default ~/.cache/timbre)
#   BENCH_OUT       where raw wrk output and server logs go (default target/bench/http-<time>)
#
# Same conditions for both: loopback, same machine, no per-request logging, uvicorn with one
# worker (its usual deployment in the seeds), timbre with its defaults (one process; its async
# runtime takes half the cores it is allowed, at least one: TIMBRE_ASYNC_THREADS). wrk runs on
# the same machine; with SERVER_CPUS it gets the other cores to itself, otherwise it takes CPU
# from both servers alike.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DURATION=${DURATION:-10s}
STARTS=${STARTS:-10}
BENCH_SERVERS=${BENCH_SERVERS:-timbre fastapi}
CACHE=${TIMBRE_CACHE:-$HOME/.cache/timbre}
VENV=$CACHE/venv-bench
FASTAPI_VERSION=0.163.2
UVICORN_VERSION=0.54.0
PEER_REQUIREMENTS="fastapi==$FASTAPI_VERSION uvicorn[standard]==$UVICORN_VERSION"
WRK_ARGS=() # -t<threads> -c64 --latency, set in main once wrk's CPUs are known
LISTEN_TIMEOUT_S=10
OUT=${BENCH_OUT:-$ROOT/target/bench/http-$(date -u +%Y%m%dT%H%M%SZ)}

die() { echo "http.sh: $*" >&2; exit 1; }
log() { echo "http.sh: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Processes we start; all are stopped on exit, whatever the exit path.
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

# stop_server PID: SIGTERM, wait, and forget it (so cleanup never signals a reused pid).
stop_server() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for i in "${!PIDS[@]}"; do
    [ "${PIDS[$i]}" = "$pid" ] && unset 'PIDS[i]'
  done
  return 0
}
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools

ensure_wrk() {
  command -v wrk >/dev/null && return
  log "wrk not found; installing the Debian package"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "wrk is missing and this user can't apt-get install it (no sudo)"
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
  command -v wrk >/dev/null || die "wrk still missing after apt-get install"
}

ensure_peer_venv() {
  local stamp=$VENV/.bench-requirements
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$PEER_REQUIREMENTS" ]; then
    log "installing $PEER_REQUIREMENTS into $VENV"
    # shellcheck disable=SC2086 # the requirement list is split on purpose
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PEER_REQUIREMENTS
    echo "$PEER_REQUIREMENTS" >"$stamp"
  fi
}

ensure_timbre() {
  if [ -n "${TIMBRE_BIN:-}" ]; then
    [ -x "$TIMBRE_BIN" ] || die "TIMBRE_BIN=$TIMBRE_BIN is not an executable file"
    return
  fi
  TIMBRE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/timbre
  # Always ask cargo: a no-op when up to date, and never benchmarks a stale binary.
  log "cargo build --release -p timbre"
  (cd "$ROOT" && cargo build --release -p timbre) >&2 || die "cargo build failed"
  [ -x "$TIMBRE_BIN" ] || die "build finished but $TIMBRE_BIN is missing"
}

# The CPUs this process may use minus SERVER_CPUS, as a taskset list ("" when none are left).
other_cpus() {
  python3 - "$1" <<'PY'
import os, sys

def parse(spec):
    cpus = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus

print(",".join(str(c) for c in sorted(os.sched_getaffinity(0) - parse(sys.argv[1]))))
PY
}

# wrk, pinned to WRK_CPUS when there are any.
run_wrk() {
  if [ -n "$WRK_PIN" ]; then
    taskset -c "$WRK_PIN" wrk "$@"
  else
    wrk "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------------------------
# Servers. server_cmd NAME PORT fills CMD (argv) and ENV_ARGS (for env(1)).

server_cmd() {
  local name=$1 port=$2
  local pin=()
  [ -n "${SERVER_CPUS:-}" ] && pin=(taskset -c "$SERVER_CPUS")
  case $name in
    timbre)
      ENV_ARGS=(HOST=127.0.0.1 PORT="$port" SKIP_MODEL_LOADING=true LOG_LEVEL=warn
        TIMBRE_DATA_DIR="$OUT/timbre-data" TIMBRE_MODELS_DIR="$OUT/timbre-models")
      CMD=("${pin[@]}" "$TIMBRE_BIN" serve)
      ;;
    fastapi)
      ENV_ARGS=(PYTHONDONTWRITEBYTECODE=1)
      CMD=("${pin[@]}" "$VENV/bin/python" -m uvicorn fastapi_health:app
        --app-dir "$ROOT/scripts/bench/peers" --host 127.0.0.1 --port "$port"
        --workers 1 --log-level warning --no-access-log)
      ;;
    *) die "unknown server '$name' (BENCH_SERVERS takes: timbre fastapi)" ;;
  esac
}

server_label() {
  case $1 in
    timbre) echo "timbre $("$TIMBRE_BIN" --version 2>/dev/null | awk '{print $NF}' || true)" ;;
    fastapi) echo "FastAPI $FASTAPI_VERSION + uvicorn $UVICORN_VERSION (1 worker)" ;;
  esac
}

# wait_listening PORT PID LOG: polls connect() until it succeeds; fails after 10 s or if the
# process exits, printing the end of its log.
wait_listening() {
  local port=$1 pid=$2 logfile=$3 deadline=$((SECONDS + LISTEN_TIMEOUT_S))
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "--- last lines of $logfile" >&2; tail -n 40 "$logfile" >&2 || true
      die "server exited before listening on port $port"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "--- last lines of $logfile" >&2; tail -n 40 "$logfile" >&2 || true
      die "server (pid $pid) not listening on 127.0.0.1:$port after ${LISTEN_TIMEOUT_S}s"
    fi
    sleep 0.02
  done
}

rss_mb() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# Median exec→listening time in ms over $STARTS fresh processes, each on a fresh port.
# Python does the timing: Popen is the exec, then a tight non-blocking connect loop.
startup_ms() {
  local name=$1
  local port
  port=$(free_port)
  server_cmd "$name" "$port"
  python3 - "$STARTS" "$LISTEN_TIMEOUT_S" "$OUT/$name-startup.log" "$name" "${ENV_ARGS[@]}" -- "${CMD[@]}" <<'PY'
import os, signal, socket, statistics, subprocess, sys, time

starts, timeout, logpath, name = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
rest = sys.argv[5:]
sep = rest.index("--")
env = dict(os.environ)
env.update(kv.split("=", 1) for kv in rest[:sep])
cmd = rest[sep + 1:]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def with_port(argv, envd, port):
    argv = list(argv)
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
    envd = dict(envd)
    if "PORT" in envd:
        envd["PORT"] = str(port)
    return argv, envd

samples = []
with open(logpath, "ab") as log:
    for _ in range(starts):
        port = free_port()
        argv, envd = with_port(cmd, env, port)
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=envd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            while True:
                s = socket.socket()
                try:
                    s.connect(("127.0.0.1", port))
                    samples.append((time.perf_counter() - t0) * 1000)
                    break
                except OSError:
                    pass
                finally:
                    s.close()
                if proc.poll() is not None:
                    sys.exit(f"http.sh: {name} exited (code {proc.returncode}) before listening; see {logpath}")
                if time.perf_counter() - t0 > timeout:
                    sys.exit(f"http.sh: {name} not listening after {timeout:.0f}s; see {logpath}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill(); proc.wait()
print(f"{statistics.median(samples):.1f}")
PY
}

# parse_wrk FILE → "REQ_PER_S P50_MS P99_MS ERRORS"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v + 0
    }
    /Requests\/sec:/             { rps = $2 }
    $1 == "50%"                   { p50 = ms($2) }
    $1 == "99%"                   { p99 = ms($2) }
    /Non-2xx or 3xx responses:/   { errors += $NF }
    /Socket errors:/              { errors += 1 }
    END {
      if (rps == "" || p99 == "") exit 1
      printf "%.0f %.2f %.2f %d\n", rps, p50, p99, errors
    }' "$1"
}

# ---------------------------------------------------------------------------------------------

bench_one() {
  local name=$1 port pid logfile rss rps p50 p99 errors startup
  port=$(free_port)
  logfile=$OUT/$name.log
  server_cmd "$name" "$port"
  env "${ENV_ARGS[@]}" "${CMD[@]}" >"$logfile" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_listening "$port" "$pid" "$logfile"
  sleep 1
  rss=$(rss_mb "$pid")

  local url=http://127.0.0.1:$port/health
  curl -fsS "$url" >"$OUT/$name-health.json" 2>/dev/null \
    || python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' "$url" >"$OUT/$name-health.json" \
    || die "$name: GET /health failed"

  log "$name: warm-up 2s"
  run_wrk "${WRK_ARGS[@]}" -d2s "$url" >"$OUT/$name-warmup.txt"
  log "$name: wrk ${WRK_ARGS[*]} -d$DURATION $url${WRK_PIN:+ (wrk on CPUs $WRK_PIN)}"
  run_wrk "${WRK_ARGS[@]}" -d"$DURATION" "$url" >"$OUT/$name-wrk.txt"
  read -r rps p50 p99 errors < <(parse_wrk "$OUT/$name-wrk.txt") \
    || die "$name: could not parse wrk output ($OUT/$name-wrk.txt)"
  [ "$errors" -eq 0 ] || log "WARNING: $name: wrk reported $errors error line(s); see $OUT/$name-wrk.txt"

  stop_server "$pid"

  log "$name: startup, median of $STARTS"
  startup=$(startup_ms "$name")

  RESULT_RPS[$name]=$rps
  ROWS+=("| $(server_label "$name") | $rps | $p50 | $p99 | $startup | $rss |")
}

main() {
  mkdir -p "$OUT"
  ensure_wrk
  WRK_PIN=${WRK_CPUS:-}
  if [ -z "$WRK_PIN" ] && [ -n "${SERVER_CPUS:-}" ]; then
    WRK_PIN=$(other_cpus "$SERVER_CPUS")
    [ -n "$WRK_PIN" ] || log "WARNING: SERVER_CPUS=$SERVER_CPUS leaves no CPU for wrk; it shares them"
  fi
  local threads=${WRK_THREADS:-2}
  if [ -z "${WRK_THREADS:-}" ] && [ -n "$WRK_PIN" ]; then
    threads=$(taskset -c "$WRK_PIN" nproc)
  fi
  WRK_ARGS=(-t"$threads" -c64 --latency)
  local name
  for name in $BENCH_SERVERS; do
    case $name in
      timbre) ensure_timbre ;;
      fastapi) ensure_peer_venv ;;
      *) die "unknown server '$name' (BENCH_SERVERS takes: timbre fastapi)" ;;
    esac
  done

  declare -gA RESULT_RPS=()
  ROWS=()
  for name in $BENCH_SERVERS; do
    bench_one "$name"
  done

  local cpu
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  echo
  echo "GET /health — $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), wrk ${WRK_ARGS[*]} -d$DURATION" \
    "after a 2 s warm-up${SERVER_CPUS:+, servers pinned to CPUs $SERVER_CPUS}${WRK_PIN:+, wrk to CPUs $WRK_PIN}"
  echo
  echo "| server | req/s | p50 (ms) | p99 (ms) | exec→listening (ms, median of $STARTS) | idle RSS (MB) |"
  echo "|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  if [ -n "${RESULT_RPS[timbre]:-}" ] && [ -n "${RESULT_RPS[fastapi]:-}" ]; then
    echo
    awk -v t="${RESULT_RPS[timbre]}" -v f="${RESULT_RPS[fastapi]}" \
      'BEGIN { printf "timbre / fastapi req/s: %.2f\n", t / f }'
  fi
  echo
  echo "raw output: $OUT"
}

main "$@"
