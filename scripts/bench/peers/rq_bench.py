"""RQ peer of scripts/bench/jobs.sh: no-op jobs through enqueue -> worker -> finished on the
local Redis, the same shape as timbre's queue_bench (P producers enqueue N jobs one by one while
W worker processes run them; the clock runs from the first enqueue to the last completion).

    python rq_bench.py --jobs 5000 --workers 4 --producers 4 --worker-class simple|fork

Prints one JSON line. Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

from redis import Redis
from rq import Queue

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--worker-class", choices=["simple", "fork"], default="simple")
    a = ap.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis = Redis.from_url(url)
    name = f"timbre-bench-{uuid.uuid4().hex[:8]}"
    q = Queue(name, connection=redis)
    cls = "rq.worker.SimpleWorker" if a.worker_class == "simple" else "rq.worker.Worker"
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--worker-class", cls, "--quiet", name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(a.workers)
    ]
    # Let the workers register before the clock starts (timbre's workers are started first too).
    deadline = time.time() + 30
    from rq import Worker

    while len(Worker.all(queue=q)) < a.workers and time.time() < deadline:
        time.sleep(0.05)
    per = a.jobs // a.producers
    total = per * a.producers

    def produce():
        conn = Redis.from_url(url)
        pq = Queue(name, connection=conn)
        for _ in range(per):
            pq.enqueue("rq_noop.noop", result_ttl=3600)

    start = time.perf_counter()
    threads = [threading.Thread(target=produce) for _ in range(a.producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    enqueued_in = time.perf_counter() - start
    reg = q.finished_job_registry
    while reg.count < total:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    # Latency (enqueue -> end) over a sample of finished jobs.
    lat = []
    for job_id in reg.get_job_ids(0, 499):
        job = q.fetch_job(job_id)
        if job and job.enqueued_at and job.ended_at:
            lat.append((job.ended_at - job.enqueued_at).total_seconds() * 1000)
    lat.sort()
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait()
    q.delete(delete_jobs=True)
    pct = lambda p: round(lat[min(len(lat) - 1, round((len(lat) - 1) * p))]) if lat else 0
    print(json.dumps({
        "backend": "rq-redis",
        "worker_class": a.worker_class,
        "jobs": total,
        "workers": a.workers,
        "producers": a.producers,
        "enqueue_per_s": round(total / enqueued_in),
        "jobs_per_s": round(total / elapsed),
        "elapsed_s": round(elapsed, 3),
        "latency_p50_ms": pct(0.5),
        "latency_p99_ms": pct(0.99),
    }))


if __name__ == "__main__":
    main()
