//! `timbre worker` processes on PostgreSQL: two workers share a queue, one is killed with
//! SIGKILL mid-job, and every job still finishes exactly once as `succeeded`; a SIGTERM drains.
//! Each test gets a schema of its own in `TEST_DATABASE_URL` (CI starts PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../timbre-store/tests/common/mod.rs"]
mod store_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::json;
use timbre_jobs::{Job, JobStatus, ListQuery, NewJob, Queue, QueueSettings};
use timbre_store::{BlobStore, Db, ObjectBlobStore};

/// One `timbre worker` process with its log lines.
struct WorkerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    id: String,
}

impl WorkerProcess {
    fn start(database_url: &str, data_dir: &std::path::Path, models: &std::path::Path, extra: &[(&str, &str)]) -> Self {
        let mut cmd = common::timbre();
        cmd.args(["worker", "--concurrency", "4", "--kinds", "noop", "--models-dir"])
            .arg(models)
            .env("DATABASE_URL", database_url)
            .env("TIMBRE_DATA_DIR", data_dir)
            .env("TIMBRE_LOG_FORMAT", "json")
            .env("TIMBRE_JOB_LEASE", "2")
            .env("TIMBRE_JOB_HEARTBEAT", "0.4")
            .env("TIMBRE_JOB_POLL_INTERVAL", "0.2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        #[allow(clippy::zombie_processes)] // WorkerProcess waits for it on drop.
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now()).expect("worker never started");
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("worker never started: {seen:#?}"));
            if line.contains("job worker started") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let id = v["worker_id"].as_str().or_else(|| v["fields"]["worker_id"].as_str()).unwrap().to_owned();
                return Self { child, lines: rx, id };
            }
            seen.push(line);
        }
    }

    fn logs(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    fn sigterm_and_wait(&mut self, within: Duration) -> i32 {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "worker did not exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn all_jobs(queue: &Queue) -> Vec<Job> {
    queue.list(&ListQuery { limit: 200, ..Default::default() }).await.unwrap().jobs
}

async fn wait_until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_mid_job_loses_and_duplicates_nothing() {
    let schema = store_common::PgSchema::create().await;
    let data = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let db = Db::connect(Some(&schema.url), data.path()).await.unwrap();
    db.migrate().await.unwrap();
    let queue = Queue::open(db, QueueSettings::default()).await.unwrap();
    let blobs = ObjectBlobStore::local(data.path().join("blobs")).unwrap();

    let mut a = WorkerProcess::start(&schema.url, data.path(), models.path(), &[]);
    let b = WorkerProcess::start(&schema.url, data.path(), models.path(), &[]);
    assert_ne!(a.id, b.id);
    let total = 16;
    let mut ids = BTreeSet::new();
    for _ in 0..total {
        let job = NewJob::new("noop", json!({"sleep_ms": 1500, "steps": 3, "mark": true}));
        ids.insert(queue.enqueue(job).await.unwrap().job.id);
    }

    // Kill A while it holds jobs.
    let a_id = a.id.clone();
    let mut victims = BTreeSet::new();
    wait_until("worker A to hold jobs", Duration::from_secs(20), async || {
        victims = all_jobs(&queue)
            .await
            .into_iter()
            .filter(|j| j.status == JobStatus::Running && j.worker_id.as_deref() == Some(a_id.as_str()))
            .map(|j| j.id)
            .collect();
        !victims.is_empty()
    })
    .await;
    a.child.kill().unwrap(); // SIGKILL: no drain, no release, leases just stop.
    a.child.wait().unwrap();
    let killed_at = Instant::now();

    wait_until("every job to finish", Duration::from_secs(60), async || {
        all_jobs(&queue).await.iter().all(|j| j.status.is_terminal())
    })
    .await;
    let jobs = all_jobs(&queue).await;
    assert_eq!(jobs.len(), total);
    assert_eq!(jobs.iter().map(|j| j.id.clone()).collect::<BTreeSet<_>>(), ids, "no job lost, none added");
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        let result = job.result.as_ref().unwrap();
        let worker = result["worker_id"].as_str().unwrap().to_owned();
        // Exactly one attempt ran to completion: one run marker, the recorded attempt's.
        let markers: Vec<String> =
            blobs.list(&format!("jobs/{}/runs", job.id)).map_ok(|e| e.key).try_collect().await.unwrap();
        assert_eq!(markers, [format!("jobs/{}/runs/{}-{worker}", job.id, result["attempt"])], "{job:?}");
        if victims.contains(&job.id) {
            // Re-run by the survivor after A's lease expired, the lost attempt counted.
            assert_eq!((job.attempts, worker.as_str()), (2, b.id.as_str()), "{job:?}");
        } else {
            assert_eq!(job.attempts, 1, "{job:?}");
        }
    }
    assert!(killed_at.elapsed() < Duration::from_secs(30));
    let b_logs = b.logs().join("\n");
    assert!(b_logs.contains("job attempt finished"), "{b_logs}");

    // SIGTERM drains: a long job is released to the queue (attempt not counted) and the
    // process exits 0 within the grace period.
    let long = queue.enqueue(NewJob::new("noop", json!({"sleep_ms": 60_000, "steps": 60}))).await.unwrap().job.id;
    wait_until("the long job to start", Duration::from_secs(10), async || {
        queue.get(&long).await.unwrap().unwrap().status == JobStatus::Running
    })
    .await;
    drop(b);
    let mut c = WorkerProcess::start(&schema.url, data.path(), models.path(), &[("TIMBRE_SHUTDOWN_GRACE", "0.5")]);
    // B was killed by drop (SIGKILL): its lease expires and C takes the long job over.
    wait_until("worker C to run the long job", Duration::from_secs(20), async || {
        let j = queue.get(&long).await.unwrap().unwrap();
        j.status == JobStatus::Running && j.worker_id.as_deref() == Some(c.id.as_str())
    })
    .await;
    let begun = Instant::now();
    assert_eq!(c.sigterm_and_wait(Duration::from_secs(10)), 0);
    assert!(begun.elapsed() < Duration::from_secs(5), "drain took {:?}", begun.elapsed());
    let j = queue.get(&long).await.unwrap().unwrap();
    assert_eq!((j.status, j.attempts, j.worker_id.as_deref()), (JobStatus::Queued, 1, None), "released: {j:?}");
    assert!(c.logs().join("\n").contains("released to the queue"));
}

#[test]
fn worker_refuses_unknown_kinds_and_zero_concurrency() {
    let (code, _, err) = common::stdout_of(
        common::timbre().args(["worker", "--kinds", "noop,bogus"]).env("TIMBRE_LOG_FORMAT", "pretty"),
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown job kind `bogus`") && err.contains("noop"), "{err}");
    let (code, _, err) = common::stdout_of(common::timbre().args(["worker", "--concurrency", "0"]));
    assert_eq!(code, 2);
    assert!(err.contains("concurrency"), "{err}");
}
