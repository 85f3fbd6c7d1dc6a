//! Queue throughput: no-op jobs through enqueue → claim → run → complete, end to end.
//!
//! `cargo run --release -p timbre-jobs --example queue_bench -- [--database-url URL] [--jobs N]
//!  [--workers W] [--concurrency C] [--producers P]`
//!
//! Without `--database-url` it uses a fresh SQLite file; with a `postgres://` URL it works in a
//! schema of its own (created and dropped). `P` producer tasks enqueue `N` jobs one by one
//! while `W` workers (each its own claim loop, `C` jobs at a time) run them; the clock runs from
//! the first enqueue to the last completion. Prints one JSON line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use timbre_jobs::{Handlers, JobStatus, NewJob, Noop, Queue, QueueSettings, Worker, WorkerSettings};
use timbre_store::{BlobStore, Db, ObjectBlobStore};

struct Args {
    database_url: Option<String>,
    jobs: usize,
    workers: usize,
    concurrency: usize,
    producers: usize,
}

fn parse() -> Args {
    let mut a = Args { database_url: None, jobs: 10_000, workers: 4, concurrency: 8, producers: 4 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--database-url" => a.database_url = Some(value()),
            "--jobs" => a.jobs = value().parse().unwrap(),
            "--workers" => a.workers = value().parse().unwrap(),
            "--concurrency" => a.concurrency = value().parse().unwrap(),
            "--producers" => a.producers = value().parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse();
    let dir = tempfile::tempdir().unwrap();
    let mut schema = None;
    let db = match &args.database_url {
        Some(url) if url.starts_with("postgres") => {
            let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(url).await.unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).await.unwrap();
            conn.close().await.unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            let scoped = format!("{url}{sep}options=-c%20search_path%3D{name}");
            schema = Some((url.clone(), name));
            Db::connect(Some(&scoped), dir.path()).await.unwrap()
        }
        other => Db::connect(other.as_deref(), dir.path()).await.unwrap(),
    };
    db.migrate().await.unwrap();
    let backend = match db.kind() {
        timbre_store::DbKind::Sqlite => "sqlite",
        timbre_store::DbKind::Postgres => "postgres",
    };
    let queue = Queue::open(db.clone(), QueueSettings::default()).await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::local(dir.path().join("blobs")).unwrap());
    let settings = WorkerSettings {
        concurrency: args.concurrency,
        poll_interval: Duration::from_millis(100),
        retention: None,
        ..WorkerSettings::default()
    };
    let workers: Vec<Worker> = (0..args.workers)
        .map(|i| {
            let s = WorkerSettings { worker_id: format!("bench-{i}"), ..settings.clone() };
            Worker::start(queue.clone(), Handlers::new().with(Noop), Arc::clone(&blobs), s)
        })
        .collect();

    let started = Instant::now();
    let per = args.jobs / args.producers;
    let producers: Vec<_> = (0..args.producers)
        .map(|_| {
            let q = queue.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    q.enqueue(NewJob::new("noop", serde_json::json!({}))).await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let enqueued_in = started.elapsed();
    let total = per * args.producers;
    loop {
        let done: i64 =
            queue.counts().await.unwrap().into_iter().filter(|(s, _)| *s == JobStatus::Succeeded).map(|(_, n)| n).sum();
        if done as usize >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    for w in workers {
        w.shutdown(Duration::from_secs(5)).await;
    }
    let mut latencies: Vec<i64> = match &db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT finished_at - created_at FROM jobs").fetch_all(pool).await.unwrap()
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT finished_at - created_at FROM jobs").fetch_all(pool).await.unwrap()
        }
    };
    latencies.sort_unstable();
    db.close().await;
    if let Some((url, name)) = schema {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE"))).await.unwrap();
    }
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "jobs": total,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "producers": args.producers,
            "enqueue_per_s": (total as f64 / enqueued_in.as_secs_f64()).round(),
            "jobs_per_s": (total as f64 / elapsed.as_secs_f64()).round(),
            "elapsed_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "latency_p50_ms": percentile(&latencies, 0.5),
            "latency_p99_ms": percentile(&latencies, 0.99),
        })
    );
}
