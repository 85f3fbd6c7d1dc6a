#!/usr/bin/env bash
# Job queue benchmark: no-op jobs through enqueue -> claim -> run -> complete, end to end, with
# 4 workers, on SQLite and on PostgreSQL (timbre's queue, release build), and RQ on the local
# Redis (VibeCraft's queue) in the same run, same shape: 4 producers enqueue the jobs one by one
# while 4 workers run them; the clock runs from the first enqueue to the last completion. And
# PgQueuer (PyPI), a PostgreSQL queue built the same way (SKIP LOCKED, LISTEN/NOTIFY), on the
# same PostgreSQL.
# Prints one JSON line per run, then markdown rows with the ratios.
#
#   scripts/bench/jobs.sh [JOBS]        (default 5000)
#
# Needs PostgreSQL at $TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test; the
# bench works in a schema of its own and drops it) and Redis at $REDIS_URL (default
# redis://127.0.0.1:6379/0). RQ is installed into $TIMBRE_CACHE/venv-jobs-bench (PyPI) once.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
JOBS=${1:-5000}
PG=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
CACHE=${TIMBRE_CACHE:-$HOME/.cache/timbre}
VENV="$CACHE/venv-jobs-bench"

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import rq' 2>/dev/null; then
  echo "jobs.sh: installing rq into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'rq==3.0.0' 'redis==8.1.0'
fi
if ! "$VENV/bin/python" -c 'import pgqueuer' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'pgqueuer==1.6.0' asyncpg
fi

cargo build -q --release -p timbre-jobs --example queue_bench
BENCH=${CARGO_TARGET_DIR:-target}/release/examples/queue_bench

run() { echo "$*" >&2; "$@" | tee /dev/stderr; }
sqlite=$(run "$BENCH" --jobs "$JOBS" --workers 4 --concurrency 8 --producers 4)
sqlite1=$(run "$BENCH" --jobs "$JOBS" --workers 4 --concurrency 1 --producers 4)
pg=$(run "$BENCH" --database-url "$PG" --jobs "$JOBS" --workers 4 --concurrency 8 --producers 4)
pg1=$(run "$BENCH" --database-url "$PG" --jobs "$JOBS" --workers 4 --concurrency 1 --producers 4)
# Sixteen producers (sixteen API requests at once): enqueues commit synchronously, one fsync
# each, so more concurrent producers share (group-commit) more fsyncs.
pg16=$(run "$BENCH" --database-url "$PG" --jobs "$JOBS" --workers 4 --concurrency 16 --producers 16)
rq_simple=$(run "$VENV/bin/python" scripts/bench/peers/rq_bench.py --jobs "$JOBS" --workers 4 --producers 4 --worker-class simple)
pgq=$(TEST_DATABASE_URL="$PG" run "$VENV/bin/python" scripts/bench/peers/pgq_bench.py --jobs "$JOBS" --workers 4 --producers 4 --batch 8)
rq_fork=$(run "$VENV/bin/python" scripts/bench/peers/rq_bench.py --jobs "$((JOBS / 5))" --workers 4 --producers 4 --worker-class fork)

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
rq_rate=$(field "$rq_simple" jobs_per_s)
pgq_rate=$(field "$pgq" jobs_per_s)
echo
echo "| date | machine | backend | producers | workers × jobs each | jobs/s | p50 / p99 latency (ms) | × RQ SimpleWorker | × PgQueuer |"
echo "|---|---|---|---:|---|---:|---:|---:|---:|"
for r in "$sqlite" "$sqlite1" "$pg" "$pg1" "$pg16" "$pgq" "$rq_simple" "$rq_fork"; do
  backend=$(field "$r" backend)
  conc=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d.get('concurrency', 1))" "$r")
  case "$backend" in
    rq-redis) backend="RQ $(field "$r" worker_class) worker, Redis" ;;
    pgqueuer-postgres) backend="PgQueuer, postgres" ;;
    *) backend="timbre, $backend" ;;
  esac
  rate=$(field "$r" jobs_per_s)
  printf '| %s | %s cores | %s | %s | 4 × %s | %.0f | %s / %s | %.1f | %.1f |\n' "$(date -u +%Y-%m-%d)" "$(nproc)" \
    "$backend" "$(field "$r" producers)" "$conc" "$rate" "$(field "$r" latency_p50_ms)" "$(field "$r" latency_p99_ms)" \
    "$(echo "$rate / $rq_rate" | bc -l)" "$(echo "$rate / $pgq_rate" | bc -l)"
done
