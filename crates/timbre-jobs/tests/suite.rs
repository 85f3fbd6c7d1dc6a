//! The queue's behaviour, one suite run against SQLite (a temporary file) and PostgreSQL at
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`, a schema per test).
//! PostgreSQL being down fails these tests: CI starts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../timbre-store/tests/common/mod.rs"]
mod store_common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::json;
use timbre_jobs::{
    CancelOutcome, Claim, Finish, Handlers, Job, JobEvent, JobStatus, ListQuery, NewJob, Noop, Queue, QueueSettings,
    RetryPolicy, Worker, WorkerSettings,
};
use timbre_store::{BlobStore, Db, ObjectBlobStore};

/// A migrated database with a queue and a local blob store; dropping it removes everything.
struct Harness {
    queue: Queue,
    blobs: Arc<dyn BlobStore>,
    _dir: tempfile::TempDir,
    _schema: Option<store_common::PgSchema>,
}

impl Harness {
    /// A second queue on the same database with its own pool and event hub: what another
    /// process sees.
    async fn other_process(&self) -> Queue {
        let db = match &self._schema {
            Some(schema) => Db::connect(Some(&schema.url), self._dir.path()).await.unwrap(),
            None => Db::connect(None, self._dir.path()).await.unwrap(),
        };
        Queue::open(db, QueueSettings::default()).await.unwrap()
    }

    fn worker(&self, settings: WorkerSettings) -> Worker {
        Worker::start(self.queue.clone(), Handlers::new().with(Noop), Arc::clone(&self.blobs), settings)
    }
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(None, dir.path()).await.unwrap();
    db.migrate().await.unwrap();
    finish_harness(db, dir, None).await
}

async fn postgres() -> Harness {
    let schema = store_common::PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(Some(&schema.url), dir.path()).await.unwrap();
    db.migrate().await.unwrap();
    finish_harness(db, dir, Some(schema)).await
}

async fn finish_harness(db: Db, dir: tempfile::TempDir, schema: Option<store_common::PgSchema>) -> Harness {
    let queue = Queue::open(db, QueueSettings::default()).await.unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::local(dir.path().join("blobs")).unwrap());
    Harness { queue, blobs, _dir: dir, _schema: schema }
}

/// Fast timings so the suite runs in seconds.
fn fast() -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        lease: Duration::from_millis(1500),
        heartbeat: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        cancel_poll: Duration::from_millis(100),
        cancel_grace: Duration::from_millis(500),
        progress_interval: Duration::from_millis(10),
        retry: RetryPolicy { base: Duration::from_millis(200), max: Duration::from_secs(5) },
        retention: None,
        ..WorkerSettings::default()
    }
}

fn noop(payload: serde_json::Value) -> NewJob {
    NewJob::new("noop", payload)
}

fn kinds() -> Vec<String> {
    vec!["noop".into()]
}

/// Polls the job until `done` says so, or fails after `within`.
async fn wait_for(queue: &Queue, id: &str, within: Duration, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + within;
    loop {
        let job = queue.get(id).await.unwrap().expect("job exists");
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not get there within {within:?}: {job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_terminal(queue: &Queue, id: &str, within: Duration) -> Job {
    wait_for(queue, id, within, |j| j.status.is_terminal()).await
}

async fn enqueue_get_and_list_with_cursor(h: Harness) {
    let q = &h.queue;
    let mut ids = Vec::new();
    for i in 0..7 {
        let kind = if i % 2 == 0 { "noop" } else { "other" };
        let e = q.enqueue(NewJob::new(kind, json!({"i": i, "nested": {"x": [1, 2]}})).priority(i)).await.unwrap();
        assert!(e.created);
        assert_eq!(e.job.status, JobStatus::Queued);
        assert_eq!((e.job.attempts, e.job.max_attempts), (0, 3));
        assert!(e.job.created_at > 1_600_000_000_000 && e.job.run_at >= e.job.created_at, "{:?}", e.job);
        ids.push(e.job.id);
    }
    let got = q.get(&ids[3]).await.unwrap().unwrap();
    assert_eq!(got.payload, json!({"i": 3, "nested": {"x": [1, 2]}}));
    assert_eq!((got.kind.as_str(), got.priority), ("other", 3));
    assert!(q.get("nope").await.unwrap().is_none());

    // Pages of 3, newest first, following the cursor to the end.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = q.list(&ListQuery { limit: 3, cursor: cursor.clone(), ..Default::default() }).await.unwrap();
        assert!(page.jobs.len() <= 3);
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let noops = q.list(&ListQuery { kind: Some("noop".into()), ..Default::default() }).await.unwrap();
    assert_eq!(noops.jobs.len(), 4);
    assert!(noops.next_cursor.is_none());
    let claimed = q.claim("w1", &kinds(), 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].kind, "noop");
    assert_eq!(claimed[0].priority, 6, "highest priority first");
    let running = q.list(&ListQuery { status: Some(JobStatus::Running), ..Default::default() }).await.unwrap();
    assert_eq!(running.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [claimed[0].id.as_str()]);
    let counts: HashMap<JobStatus, i64> = q.counts().await.unwrap().into_iter().collect();
    assert_eq!(counts[&JobStatus::Queued], 6);
    assert_eq!(counts[&JobStatus::Running], 1);
}

async fn idempotency_keys_return_the_first_job(h: Harness) {
    let q = &h.queue;
    let first = q.enqueue(noop(json!({"n": 1})).idempotency_key("k-1")).await.unwrap();
    let again = q.enqueue(noop(json!({"n": 2})).idempotency_key("k-1")).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!(again.job.id, first.job.id);
    assert_eq!(again.job.payload, json!({"n": 1}), "the first job, unchanged");
    let other = q.enqueue(noop(json!({})).idempotency_key("k-2")).await.unwrap();
    assert!(other.created && other.job.id != first.job.id);
    // Concurrent duplicates: one job.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move { q.enqueue(noop(json!({})).idempotency_key("k-3")).await.unwrap() }));
    }
    let mut created = 0;
    let mut ids = BTreeSet::new();
    for t in tasks {
        let e = t.await.unwrap();
        created += usize::from(e.created);
        ids.insert(e.job.id);
    }
    assert_eq!((created, ids.len()), (1, 1));
    assert_eq!(q.find_by_idempotency_key("k-3").await.unwrap().unwrap().id, *ids.first().unwrap());
}

async fn concurrent_claims_never_double_claim(h: Harness) {
    let total = 120;
    for i in 0..total {
        h.queue.enqueue(noop(json!({"i": i}))).await.unwrap();
    }
    // Claimers on two "processes" (separate pools), four tasks each, racing.
    let other = h.other_process().await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let q = if w % 2 == 0 { h.queue.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = q.claim(&format!("w{w}"), &["noop".into()], 3, Duration::from_secs(60)).await.unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                for j in jobs {
                    assert_eq!(j.status, JobStatus::Running);
                    assert_eq!(j.worker_id.as_deref(), Some(format!("w{w}").as_str()));
                    assert_eq!(j.attempts, 1);
                    mine.push(j.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), total, "every job claimed exactly once");
    assert_eq!(unique.len(), total, "no job claimed twice");
    // Kinds a worker has no handler for are never claimed.
    h.queue.enqueue(NewJob::new("unknown", json!({}))).await.unwrap();
    assert!(h.queue.claim("w", &kinds(), 10, Duration::from_secs(1)).await.unwrap().is_empty());
}

async fn delayed_jobs_wait_for_run_at(h: Harness) {
    let e = h.queue.enqueue(noop(json!({})).delay(Duration::from_millis(600))).await.unwrap();
    assert!(h.queue.claim("w", &kinds(), 5, Duration::from_secs(5)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = h.queue.claim("w", &kinds(), 5, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.iter().map(|j| &j.id).collect::<Vec<_>>(), [&e.job.id]);
}

async fn workers_run_jobs_and_publish_progress(h: Harness) {
    let mut events = h.queue.subscribe();
    let worker = h.worker(fast());
    let tracked = h.queue.enqueue(noop(json!({"sleep_ms": 200, "steps": 4}))).await.unwrap().job.id;
    let mut others = Vec::new();
    for _ in 0..20 {
        others.push(h.queue.enqueue(noop(json!({}))).await.unwrap().job.id);
    }
    let job = wait_terminal(&h.queue, &tracked, Duration::from_secs(10)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.result.as_ref().unwrap()["attempt"], 1);
    assert_eq!(job.result.as_ref().unwrap()["worker_id"], worker.worker_id());
    let p = job.progress.clone().unwrap();
    assert_eq!((p.stage.as_str(), p.fraction), ("done", 1.0));
    assert!(job.started_at.unwrap() >= job.created_at && job.finished_at.unwrap() >= job.started_at.unwrap());
    assert!(job.lease_until.is_none() && job.error.is_none());
    for id in &others {
        assert_eq!(wait_terminal(&h.queue, id, Duration::from_secs(10)).await.status, JobStatus::Succeeded);
    }
    // The tracked job's events: started, progress in order, done last.
    let mut fractions = Vec::new();
    let mut saw_started = false;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        if e.job_id() != tracked {
            continue;
        }
        match e {
            JobEvent::Started { attempt, .. } => {
                assert_eq!(attempt, 1);
                saw_started = true;
            }
            JobEvent::Progress { progress, .. } => {
                assert_eq!(progress.stage, "sleep");
                fractions.push(progress.fraction);
            }
            JobEvent::Done { status, .. } => {
                assert_eq!(status, JobStatus::Succeeded);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_started);
    assert!(!fractions.is_empty() && fractions.windows(2).all(|w| w[0] < w[1]), "{fractions:?}");
    assert_eq!(fractions.last().copied(), Some(1.0));
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn retries_back_off_then_succeed_or_fail_with_the_last_error(h: Harness) {
    let mut events = h.queue.subscribe();
    let worker = h.worker(fast());
    let ok = h.queue.enqueue(noop(json!({"fail_attempts": 2})).max_attempts(3)).await.unwrap().job.id;
    let job = wait_terminal(&h.queue, &ok, Duration::from_secs(10)).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.attempts, 3);
    assert_eq!(job.result.as_ref().unwrap()["attempt"], 3);
    // Two retries, each announced with its jittered delay: attempt 1 waits 100–200 ms, attempt 2
    // 200–400 ms (base 200 ms, doubling, upper-half jitter).
    let mut delays = Vec::new();
    while delays.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        if let JobEvent::Retrying { job_id, attempt, error, delay_ms } = e
            && job_id == ok
        {
            assert!(error.contains(&format!("attempt {attempt}")), "{error}");
            delays.push((attempt, delay_ms));
        }
    }
    assert_eq!(delays[0].0, 1);
    assert!((100..=200).contains(&delays[0].1), "{delays:?}");
    assert_eq!(delays[1].0, 2);
    assert!((200..=400).contains(&delays[1].1), "{delays:?}");
    // The waits really happened: the job took at least the two delays.
    let took = job.finished_at.unwrap() - job.created_at;
    assert!(took >= i64::try_from(delays[0].1 + delays[1].1).unwrap(), "took {took} ms, delays {delays:?}");

    let failing = h.queue.enqueue(noop(json!({"fail_attempts": 10})).max_attempts(2)).await.unwrap().job.id;
    let job = wait_terminal(&h.queue, &failing, Duration::from_secs(10)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 2));
    assert_eq!(job.error.as_deref(), Some("noop asked to fail attempt 2"), "the last error");
    assert!(job.result.is_none());

    // Bad input is not retried: one attempt, failed.
    let bad = h.queue.enqueue(noop(json!({"fail_permanently": true})).max_attempts(5)).await.unwrap().job.id;
    let job = wait_terminal(&h.queue, &bad, Duration::from_secs(10)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1));
    let bad = h.queue.enqueue(noop(json!({"no_such_field": 1})).max_attempts(5)).await.unwrap().job.id;
    let job = wait_terminal(&h.queue, &bad, Duration::from_secs(10)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1));
    assert!(job.error.unwrap().contains("invalid noop payload"));
    // The queue is not poisoned: the next job runs.
    let next = h.queue.enqueue(noop(json!({}))).await.unwrap().job.id;
    assert_eq!(wait_terminal(&h.queue, &next, Duration::from_secs(10)).await.status, JobStatus::Succeeded);
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn cancelling_queued_and_running_jobs(h: Harness) {
    // Queued: cancelled at once and never run.
    let queued = h.queue.enqueue(noop(json!({})).delay(Duration::from_secs(60))).await.unwrap().job.id;
    match h.queue.cancel(&queued).await.unwrap() {
        CancelOutcome::Cancelled(job) => assert_eq!(job.status, JobStatus::Cancelled),
        other => panic!("{other:?}"),
    }
    assert!(matches!(h.queue.cancel("missing").await.unwrap(), CancelOutcome::NotFound));
    assert!(matches!(h.queue.cancel(&queued).await.unwrap(), CancelOutcome::AlreadyFinished(_)));

    // Running, cancelled in this process: the handler stops within a second.
    let worker = h.worker(fast());
    let running = h.queue.enqueue(noop(json!({"sleep_ms": 30_000, "steps": 30}))).await.unwrap().job.id;
    wait_for(&h.queue, &running, Duration::from_secs(5), |j| j.status == JobStatus::Running).await;
    let asked = Instant::now();
    assert!(matches!(h.queue.cancel(&running).await.unwrap(), CancelOutcome::Requested(j) if j.cancel_requested));
    let job = wait_terminal(&h.queue, &running, Duration::from_secs(3)).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(1), "stopped after {:?}", asked.elapsed());

    // Running, cancelled from another process (NOTIFY on PostgreSQL, the poll on SQLite).
    let other = h.other_process().await;
    let remote = h.queue.enqueue(noop(json!({"sleep_ms": 30_000, "steps": 30}))).await.unwrap().job.id;
    wait_for(&h.queue, &remote, Duration::from_secs(5), |j| j.status == JobStatus::Running).await;
    let asked = Instant::now();
    assert!(matches!(other.cancel(&remote).await.unwrap(), CancelOutcome::Requested(_)));
    let job = wait_terminal(&h.queue, &remote, Duration::from_secs(3)).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(asked.elapsed() < Duration::from_secs(1), "stopped after {:?}", asked.elapsed());
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn expired_leases_return_jobs_and_stale_claims_cannot_finish(h: Harness) {
    let q = &h.queue;
    let id = q.enqueue(noop(json!({})).max_attempts(2)).await.unwrap().job.id;
    // A worker claims it and dies (no heartbeats).
    let dead = q.claim("dead", &kinds(), 1, Duration::from_millis(200)).await.unwrap().remove(0);
    let stale = Claim::of(&dead).unwrap();
    assert_eq!(q.reap_expired().await.unwrap(), 0, "lease still valid");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(q.reap_expired().await.unwrap(), 1);
    let job = q.get(&id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts, job.worker_id.as_deref()), (JobStatus::Queued, 1, None), "attempt counted");
    // The dead worker wakes up: nothing it writes counts any more.
    assert!(!q.finish(&stale, Finish::Succeeded(json!({"from": "dead"}))).await.unwrap());
    assert!(q.heartbeat("dead", std::slice::from_ref(&id), Duration::from_secs(5)).await.unwrap().is_empty());
    // A live worker takes it over; the second lease expiring too uses up the attempts.
    let second = q.claim("alive", &kinds(), 1, Duration::from_millis(100)).await.unwrap().remove(0);
    assert_eq!(second.attempts, 2);
    assert!(!q.finish(&stale, Finish::Failed("late".into())).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(q.reap_expired().await.unwrap(), 1);
    let job = q.get(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.unwrap().contains("lease expired"));

    // A cancel requested while the worker was dead wins over requeueing.
    let id = q.enqueue(noop(json!({}))).await.unwrap().job.id;
    q.claim("dead", &kinds(), 1, Duration::from_millis(100)).await.unwrap();
    assert!(matches!(q.cancel(&id).await.unwrap(), CancelOutcome::Requested(_)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    q.reap_expired().await.unwrap();
    assert_eq!(q.get(&id).await.unwrap().unwrap().status, JobStatus::Cancelled);

    // A job claimed by a dead worker in another process…
    let orphan = q.enqueue(noop(json!({}))).await.unwrap().job.id;
    let other = h.other_process().await;
    assert_eq!(other.claim("dead-2", &kinds(), 1, Duration::from_millis(300)).await.unwrap().len(), 1);
    // Heartbeats keep a long job's short lease alive: it succeeds on its first attempt.
    let worker =
        h.worker(WorkerSettings { lease: Duration::from_millis(400), heartbeat: Duration::from_millis(100), ..fast() });
    let long = q.enqueue(noop(json!({"sleep_ms": 1500, "steps": 3}))).await.unwrap().job.id;
    let job = wait_terminal(q, &long, Duration::from_secs(10)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1), "{job:?}");
    // …is picked up by the live worker once its lease expired.
    let job = wait_terminal(q, &orphan, Duration::from_secs(10)).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 2), "{job:?}");
    assert_eq!(job.result.unwrap()["worker_id"], worker.worker_id());
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn retention_deletes_finished_jobs_and_their_blobs(h: Harness) {
    let q = &h.queue;
    let old = q.enqueue(noop(json!({}))).await.unwrap().job.id;
    let live = q.enqueue(noop(json!({})).delay(Duration::from_secs(60))).await.unwrap().job.id;
    h.blobs.put(&format!("jobs/{old}/input"), bytes::Bytes::from_static(b"x"), "audio/wav").await.unwrap();
    h.blobs.put(&format!("jobs/{live}/input"), bytes::Bytes::from_static(b"y"), "audio/wav").await.unwrap();
    h.blobs.put("songs/keep", bytes::Bytes::from_static(b"z"), "audio/wav").await.unwrap();
    let claimed = q.claim("w", &kinds(), 1, Duration::from_secs(5)).await.unwrap().remove(0);
    assert_eq!(claimed.id, old);
    assert!(q.finish(&Claim::of(&claimed).unwrap(), Finish::Succeeded(json!(1))).await.unwrap());
    assert_eq!(q.cleanup(Duration::from_secs(60), Some(h.blobs.as_ref())).await.unwrap(), 0, "too recent");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(q.cleanup(Duration::from_millis(100), Some(h.blobs.as_ref())).await.unwrap(), 1);
    assert!(q.get(&old).await.unwrap().is_none());
    assert!(q.get(&live).await.unwrap().is_some(), "unfinished jobs stay");
    let keys: Vec<String> = h.blobs.list("").map_ok(|e| e.key).try_collect().await.unwrap();
    let keys: BTreeSet<String> = keys.into_iter().collect();
    assert_eq!(keys, BTreeSet::from([format!("jobs/{live}/input"), "songs/keep".to_owned()]));
    // Workers run retention themselves.
    let worker = h.worker(WorkerSettings { retention: Some(Duration::from_millis(300)), ..fast() });
    let quick = q.enqueue(noop(json!({"mark": true}))).await.unwrap().job.id;
    wait_terminal(q, &quick, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while q.get(&quick).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "retention never deleted the job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: Vec<String> = h.blobs.list(&format!("jobs/{quick}")).map_ok(|e| e.key).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    worker.shutdown(Duration::from_secs(1)).await;
}

async fn shutdown_finishes_short_jobs_and_releases_long_ones(h: Harness) {
    let worker = h.worker(fast());
    let short = h.queue.enqueue(noop(json!({"sleep_ms": 300}))).await.unwrap().job.id;
    let long = h.queue.enqueue(noop(json!({"sleep_ms": 30_000, "steps": 30}))).await.unwrap().job.id;
    for id in [&short, &long] {
        wait_for(&h.queue, id, Duration::from_secs(5), |j| j.status == JobStatus::Running).await;
    }
    let begun = Instant::now();
    worker.shutdown(Duration::from_millis(800)).await;
    assert!(begun.elapsed() < Duration::from_secs(4), "drain took {:?}", begun.elapsed());
    let short = h.queue.get(&short).await.unwrap().unwrap();
    assert_eq!(short.status, JobStatus::Succeeded, "finished within the grace period");
    let long = h.queue.get(&long).await.unwrap().unwrap();
    assert_eq!((long.status, long.attempts, long.worker_id.as_deref()), (JobStatus::Queued, 0, None), "released");
    // A drained worker claims nothing more.
    let later = h.queue.enqueue(noop(json!({}))).await.unwrap().job.id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = h.queue.get(&later).await.unwrap().unwrap();
    assert_eq!((later.status, later.attempts), (JobStatus::Queued, 0));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

suite!(
    enqueue_get_and_list_with_cursor,
    idempotency_keys_return_the_first_job,
    concurrent_claims_never_double_claim,
    delayed_jobs_wait_for_run_at,
    workers_run_jobs_and_publish_progress,
    retries_back_off_then_succeed_or_fail_with_the_last_error,
    cancelling_queued_and_running_jobs,
    expired_leases_return_jobs_and_stale_claims_cannot_finish,
    retention_deletes_finished_jobs_and_their_blobs,
    shutdown_finishes_short_jobs_and_releases_long_ones,
);
