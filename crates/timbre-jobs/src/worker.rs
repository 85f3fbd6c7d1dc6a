//! Workers: claim jobs of the registered kinds, run each with a [`JobContext`], keep their
//! leases alive, stop them when cancelled, and record how they ended.
//!
//! One [`Worker`] per process runs up to `concurrency` jobs at once. Besides the claim loop it
//! runs three small tasks: the heartbeat (extends leases, notices cancels and lost leases, and
//! returns jobs of dead workers to the queue), the cancel watcher (events, plus a poll so a
//! cancel from another process on a shared SQLite file lands within a second), and retention.
//!
//! Shutdown drains: claiming stops at once, running jobs get the grace period to finish, and
//! whatever still runs after it is cancelled and released back to the queue (that attempt does
//! not count) — so a deploy never burns attempts or leaves jobs waiting out a lease.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use timbre_store::BlobStore;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::events::JobEvent;
use crate::handler::{Handlers, JobContext, JobError, LogLine};
use crate::model::{Job, Progress};
use crate::policy::{AttemptEnd, Next, RetryPolicy, after_attempt};
use crate::queue::{Claim, Finish, Queue};

/// Reports database trouble (`Some(reason)`) and recovery (`None`) to whoever shows health.
pub type HealthSink = Arc<dyn Fn(Option<String>) + Send + Sync>;

#[derive(Clone)]
pub struct WorkerSettings {
    /// Recorded on claimed jobs; unique per process.
    pub worker_id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds without a heartbeat; a dead worker's jobs return after it.
    pub lease: Duration,
    /// How often leases are extended (well under `lease`).
    pub heartbeat: Duration,
    /// Longest wait between claim attempts when no event wakes the worker.
    pub poll_interval: Duration,
    /// How often running jobs are checked for cancel requests made by other processes.
    pub cancel_poll: Duration,
    /// Time a cancelled handler gets to return before it is dropped.
    pub cancel_grace: Duration,
    /// Most frequent progress write per job.
    pub progress_interval: Duration,
    pub retry: RetryPolicy,
    /// Finished jobs (and their blobs) older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
    pub health: Option<HealthSink>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            worker_id: default_worker_id(),
            concurrency: 2,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            cancel_poll: Duration::from_millis(500),
            cancel_grace: Duration::from_secs(1),
            progress_interval: Duration::from_millis(100),
            retry: RetryPolicy::default(),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            health: None,
        }
    }
}

impl std::fmt::Debug for WorkerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSettings")
            .field("worker_id", &self.worker_id)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("heartbeat", &self.heartbeat)
            .field("poll_interval", &self.poll_interval)
            .field("retry", &self.retry)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// `<host>-<pid>-<4 hex>`: readable in the jobs table, unique across restarts.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

/// Why a running job's token was cancelled; the first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    CancelRequested,
    LeaseLost,
    Shutdown,
}

struct Running {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Running {
    fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }
}

type RunningMap = Arc<Mutex<HashMap<String, Running>>>;

fn running_ids(running: &RunningMap) -> Vec<String> {
    running.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
}

fn stop_job(running: &RunningMap, id: &str, reason: StopReason) {
    if let Some(r) = running.lock().unwrap_or_else(PoisonError::into_inner).get(id) {
        r.stop(reason);
    }
}

/// Everything the worker's tasks share.
struct Shared {
    queue: Queue,
    handlers: Handlers,
    kinds: Vec<String>,
    blobs: Arc<dyn BlobStore>,
    settings: WorkerSettings,
    running: RunningMap,
    slots: Arc<Semaphore>,
    wake: Notify,
    /// Stops claiming.
    stop_claiming: CancellationToken,
    /// Health last reported, so only changes are sent.
    problem: Mutex<Option<String>>,
}

impl Shared {
    fn report(&self, problem: Option<String>) {
        let mut last = self.problem.lock().unwrap_or_else(PoisonError::into_inner);
        if *last == problem {
            return;
        }
        last.clone_from(&problem);
        if let Some(sink) = &self.settings.health {
            sink(problem);
        }
    }
}

/// A running worker; [`Worker::shutdown`] drains it.
pub struct Worker {
    shared: Arc<Shared>,
    claim_loop: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Starts claiming jobs of `handlers`' kinds. Needs a runtime.
    pub fn start(queue: Queue, handlers: Handlers, blobs: Arc<dyn BlobStore>, settings: WorkerSettings) -> Self {
        let concurrency = settings.concurrency.max(1);
        let shared = Arc::new(Shared {
            kinds: handlers.kinds(),
            queue,
            handlers,
            blobs,
            running: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Semaphore::new(concurrency)),
            wake: Notify::new(),
            stop_claiming: CancellationToken::new(),
            problem: Mutex::new(None),
            settings: WorkerSettings { concurrency, ..settings },
        });
        tracing::info!(
            worker_id = %shared.settings.worker_id,
            kinds = ?shared.kinds,
            concurrency,
            "job worker started"
        );
        let events = shared.queue.subscribe();
        let background = vec![
            tokio::spawn(watch_events(Arc::clone(&shared), events)),
            tokio::spawn(heartbeat_loop(Arc::clone(&shared))),
            tokio::spawn(cancel_poll_loop(Arc::clone(&shared))),
            tokio::spawn(retention_loop(Arc::clone(&shared))),
        ];
        let claim_loop = tokio::spawn(claim_loop(Arc::clone(&shared)));
        Self { shared, claim_loop, background }
    }

    pub fn worker_id(&self) -> &str {
        &self.shared.settings.worker_id
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.shared.running.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Drains: stops claiming, lets running jobs finish within `grace`, then cancels the rest
    /// and releases them to the queue (their attempt is not counted).
    pub async fn shutdown(self, grace: Duration) {
        let shared = &self.shared;
        shared.stop_claiming.cancel();
        shared.wake.notify_one();
        let _ = self.claim_loop.await;
        let all = u32::try_from(shared.settings.concurrency).unwrap_or(u32::MAX);
        let idle = tokio::time::timeout(grace, shared.slots.acquire_many(all)).await;
        if idle.is_err() {
            let ids = running_ids(&shared.running);
            tracing::warn!(jobs = ?ids, grace_s = grace.as_secs_f64(), "grace period over: releasing running jobs");
            for id in &ids {
                stop_job(&shared.running, id, StopReason::Shutdown);
            }
            // Handlers get `cancel_grace` to return, then are dropped; each job task then
            // releases its job. Bounded, so shutdown always ends.
            let wait = shared.settings.cancel_grace + Duration::from_secs(5);
            let _ = tokio::time::timeout(wait, shared.slots.acquire_many(all)).await;
        }
        for task in &self.background {
            task.abort();
        }
        tracing::info!(worker_id = %shared.settings.worker_id, "job worker stopped");
    }
}

async fn claim_loop(shared: Arc<Shared>) {
    let mut failures: u32 = 0;
    loop {
        if shared.stop_claiming.is_cancelled() {
            return;
        }
        let free = shared.slots.available_permits();
        let mut claimed_all = false;
        if free > 0 {
            let want = u32::try_from(free).unwrap_or(u32::MAX);
            let result =
                shared.queue.claim(&shared.settings.worker_id, &shared.kinds, want, shared.settings.lease).await;
            match result {
                Ok(jobs) => {
                    failures = 0;
                    shared.report(None);
                    claimed_all = jobs.len() == free;
                    for job in jobs {
                        match Arc::clone(&shared.slots).try_acquire_owned() {
                            Ok(permit) => {
                                let shared = Arc::clone(&shared);
                                let span = tracing::info_span!(
                                    "job", job_id = %job.id, kind = %job.kind, attempt = job.attempts
                                );
                                tokio::spawn(
                                    async move {
                                        run_job(&shared, job).await;
                                        drop(permit);
                                        shared.wake.notify_one();
                                    }
                                    .instrument(span),
                                );
                            }
                            // Cannot happen (only this loop takes permits), but never drop a
                            // claimed job on the floor: hand it back.
                            Err(_) => release_unstarted(&shared, &job).await,
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "job claim failed");
                    shared.report(Some(format!("job queue unavailable: {e}")));
                }
            }
        }
        if claimed_all {
            // Every free slot got a job: there may be more waiting; claim again when a slot frees.
            if shared.slots.available_permits() > 0 {
                continue;
            }
        }
        let pause = if failures > 0 {
            (shared.settings.poll_interval * failures.min(10)).min(Duration::from_secs(10))
        } else {
            shared.settings.poll_interval
        };
        tokio::select! {
            () = shared.stop_claiming.cancelled() => return,
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

async fn release_unstarted(shared: &Shared, job: &Job) {
    if let Some(claim) = Claim::of(job)
        && let Err(e) = shared.queue.release(&claim).await
    {
        tracing::error!(job_id = %job.id, error = %e, "could not release a claimed job");
    }
}

/// Runs one claimed job to its end and records the outcome.
async fn run_job(shared: &Shared, job: Job) {
    let Some(claim) = Claim::of(&job) else { return };
    let span = tracing::Span::current();
    let token = CancellationToken::new();
    let reason = Arc::new(OnceLock::new());
    {
        let mut running = shared.running.lock().unwrap_or_else(PoisonError::into_inner);
        // The same job claimed again by this process (its old lease expired): the old run lost.
        if let Some(old) = running.insert(job.id.clone(), Running { token: token.clone(), reason: Arc::clone(&reason) })
        {
            old.stop(StopReason::LeaseLost);
        }
    }
    let started = std::time::Instant::now();
    let (progress_tx, progress_rx) = watch::channel(None);
    let (log_tx, log_rx) = mpsc::channel(64);
    let reporter = tokio::spawn(report_loop(
        shared.queue.clone(),
        claim.clone(),
        progress_rx,
        log_rx,
        shared.settings.progress_interval,
    ));
    let _ = shared.queue.publish(JobEvent::Started { job_id: job.id.clone(), attempt: job.attempts }).await;
    let ctx = JobContext {
        id: job.id.clone(),
        kind: job.kind.clone(),
        attempt: job.attempts,
        max_attempts: job.max_attempts,
        worker_id: claim.worker_id.clone(),
        cancel: token.clone(),
        blobs: Arc::clone(&shared.blobs),
        progress: progress_tx,
        logs: log_tx,
        span: span.clone(),
    };
    let outcome = match shared.handlers.get(&job.kind) {
        None => Some(Err(JobError::permanent(format!("no handler for job kind `{}` in this worker", job.kind)))),
        Some(handler) => {
            let run = AssertUnwindSafe(handler.run(ctx, job.payload.clone())).catch_unwind();
            let grace = shared.settings.cancel_grace;
            let abandoned = async {
                token.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                r = run => Some(r.unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(JobError::retryable(format!("the handler panicked: {what}")))
                })),
                () = abandoned => None,
            }
        }
    };
    // The reporter flushes the last progress before the final status is written.
    let _ = reporter.await;
    shared.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&job.id);
    let stop = reason.get().copied();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let finish = match (outcome, stop) {
        (_, Some(StopReason::LeaseLost)) => {
            tracing::warn!(elapsed_ms, "lease lost: another attempt owns this job; discarding this one");
            return;
        }
        (Some(Ok(result)), _) => Finish::Succeeded(result),
        (Some(Err(JobError::Cancelled)) | None, Some(StopReason::Shutdown)) => {
            match shared.queue.release(&claim).await {
                Ok(_) => tracing::info!(elapsed_ms, "released to the queue (worker shutting down)"),
                Err(e) => tracing::error!(error = %e, "could not release the job; its lease will expire"),
            }
            return;
        }
        (Some(Err(JobError::Cancelled)) | None, _) => Finish::Cancelled("cancelled while running".into()),
        (Some(Err(JobError::Permanent(e))), _) => Finish::Failed(e),
        (Some(Err(JobError::Retryable(e))), _) => {
            match after_attempt(
                &AttemptEnd::Retryable,
                job.attempts,
                job.max_attempts,
                &shared.settings.retry,
                fastrand::f64(),
            ) {
                Next::Retry(delay) => Finish::Retry { error: e, delay },
                Next::Finish(_) => Finish::Failed(e),
            }
        }
    };
    let label = match &finish {
        Finish::Succeeded(_) => "succeeded",
        Finish::Failed(_) => "failed",
        Finish::Retry { .. } => "retrying",
        Finish::Cancelled(_) => "cancelled",
    };
    match shared.queue.finish(&claim, finish).await {
        Ok(true) => tracing::info!(elapsed_ms, outcome = label, "job attempt finished"),
        Ok(false) => tracing::warn!(elapsed_ms, outcome = label, "job was taken over (lease lost); outcome discarded"),
        Err(e) => {
            tracing::error!(error = %e, outcome = label, "could not record the job outcome; its lease will expire")
        }
    }
}

/// Writes the latest progress (at most every `interval`) and forwards log lines, until the
/// handler's context is dropped; then flushes what is left.
async fn report_loop(
    queue: Queue,
    claim: Claim,
    mut progress: watch::Receiver<Option<Progress>>,
    mut logs: mpsc::Receiver<LogLine>,
    interval: Duration,
) {
    let mut progress_open = true;
    let mut logs_open = true;
    let mut written: Option<Progress> = None;
    while progress_open || logs_open {
        tokio::select! {
            changed = progress.changed(), if progress_open => {
                if changed.is_err() {
                    progress_open = false;
                }
                let latest = progress.borrow_and_update().clone();
                if let Some(p) = latest
                    && written.as_ref() != Some(&p)
                {
                    if let Err(e) = queue.progress(&claim, &p).await {
                        tracing::warn!(job_id = %claim.id, error = %e, "could not record progress");
                    }
                    written = Some(p);
                }
                if progress_open {
                    tokio::time::sleep(interval).await;
                }
            }
            line = logs.recv(), if logs_open => match line {
                Some(line) => {
                    let event = JobEvent::Log {
                        job_id: claim.id.clone(),
                        level: line.level.to_owned(),
                        message: crate::events::clip(&line.message),
                    };
                    let _ = queue.publish(event).await;
                }
                None => logs_open = false,
            },
        }
    }
}

/// Wakes the claim loop on new work and stops jobs whose cancel was requested.
async fn watch_events(shared: Arc<Shared>, mut events: broadcast::Receiver<JobEvent>) {
    loop {
        match events.recv().await {
            Ok(JobEvent::Enqueued { .. }) => shared.wake.notify_one(),
            Ok(JobEvent::CancelRequested { job_id }) => stop_job(&shared.running, &job_id, StopReason::CancelRequested),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => shared.wake.notify_one(),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Extends leases; stops jobs whose lease was lost or whose cancel was requested; returns dead
/// workers' jobs to the queue.
async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids = running_ids(&shared.running);
        if !ids.is_empty() {
            match shared.queue.heartbeat(&shared.settings.worker_id, &ids, shared.settings.lease).await {
                Ok(held) => {
                    shared.report(None);
                    let held: HashMap<String, bool> = held.into_iter().collect();
                    for id in &ids {
                        match held.get(id) {
                            None => stop_job(&shared.running, id, StopReason::LeaseLost),
                            Some(true) => stop_job(&shared.running, id, StopReason::CancelRequested),
                            Some(false) => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "job heartbeat failed");
                    shared.report(Some(format!("job queue unavailable: {e}")));
                }
            }
        }
        match shared.queue.reap_expired().await {
            Ok(0) => {}
            Ok(_) => shared.wake.notify_one(),
            Err(e) => tracing::warn!(error = %e, "reaping expired leases failed"),
        }
    }
}

/// Cancel requests made by another process reach this one by event on PostgreSQL; this poll
/// covers a shared SQLite file (and a dropped LISTEN session).
async fn cancel_poll_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.settings.cancel_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids = running_ids(&shared.running);
        if ids.is_empty() {
            continue;
        }
        if let Ok(cancelled) = shared.queue.cancel_requested_among(&ids).await {
            for id in cancelled {
                stop_job(&shared.running, &id, StopReason::CancelRequested);
            }
        }
    }
}

/// Deletes finished jobs past retention, with their blobs.
async fn retention_loop(shared: Arc<Shared>) {
    let Some(retention) = shared.settings.retention else { return };
    // Often enough that nothing outlives retention by much, rarely enough to cost nothing.
    let every = (retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(600));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match shared.queue.cleanup(retention, Some(shared.blobs.as_ref())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "retention: deleted finished jobs and their blobs"),
            Err(e) => tracing::warn!(error = %e, "retention cleanup failed"),
        }
    }
}
