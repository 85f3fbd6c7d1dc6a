"""PgQueuer peer of scripts/bench/jobs.sh: a PostgreSQL queue (FOR UPDATE SKIP LOCKED,
LISTEN/NOTIFY) like timbre's, same shape: P producers enqueue N no-op jobs one by one while W
worker processes (one QueueManager each) run them; the clock runs from the first enqueue to the
moment the queue table is empty (PgQueuer deletes a job when it completes).

    python pgq_bench.py --jobs 5000 --workers 4 --producers 4

Works in a schema of its own in $TEST_DATABASE_URL (created and dropped). Prints one JSON line.
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import time
import uuid
from datetime import timedelta

import asyncpg

URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")


async def connect(schema):
    return await asyncpg.connect(URL, server_settings={"search_path": schema})


def worker(schema, batch):
    from pgqueuer import AsyncpgDriver, Queries, QueueManager

    async def main():
        conn = await connect(schema)
        qm = QueueManager(Queries(AsyncpgDriver(conn)))

        @qm.entrypoint("noop")
        async def noop(job):
            return None

        await qm.run(dequeue_timeout=timedelta(seconds=1), batch_size=batch)

    asyncio.run(main())


async def bench(a):
    from pgqueuer import AsyncpgDriver, Queries

    schema = f"pgq_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        conn = await connect(schema)
        await Queries(AsyncpgDriver(conn)).install(create_schema=False)
        procs = [mp.Process(target=worker, args=(schema, a.batch), daemon=True) for _ in range(a.workers)]
        for p in procs:
            p.start()
        await asyncio.sleep(3)  # let the workers connect and LISTEN before the clock starts
        per = a.jobs // a.producers
        total = per * a.producers

        async def produce():
            c = await connect(schema)
            q = Queries(AsyncpgDriver(c))
            for _ in range(per):
                await q.enqueue("noop", None)
            await c.close()

        start = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(a.producers)))
        enqueued_in = time.perf_counter() - start
        while await conn.fetchval("SELECT count(*) FROM pgqueuer") > 0:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        for p in procs:
            p.terminate()
        await conn.close()
        print(json.dumps({
            "backend": "pgqueuer-postgres",
            "jobs": total,
            "workers": a.workers,
            "concurrency": a.batch,
            "producers": a.producers,
            "enqueue_per_s": round(total / enqueued_in),
            "jobs_per_s": round(total / elapsed),
            "elapsed_s": round(elapsed, 3),
            "latency_p50_ms": "n/a",
            "latency_p99_ms": "n/a",
        }))
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    asyncio.run(bench(ap.parse_args()))


if __name__ == "__main__":
    main()
