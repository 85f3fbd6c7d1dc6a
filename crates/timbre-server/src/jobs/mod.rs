//! Durable jobs in the server: the queue handle handlers use, the job kinds this build runs,
//! the in-process workers of `timbre serve`, and the helpers every job-creating endpoint shares
//! (`Idempotency-Key`, the 202 answer, the public job shape).
//!
//! # Adding a job kind
//!
//! 1. Implement [`timbre_jobs::JobHandler`] in the capability's module (see
//!    [`analyze_audio::AnalyzeAudio`]): parse the payload, report progress, check cancellation,
//!    return the result JSON or a [`timbre_jobs::JobError`] (permanent for bad input).
//! 2. Register it in [`handlers`] (one line). `timbre serve` and `timbre worker` both use it.
//! 3. In the endpoint, call [`submit::submit`] with the request's [`submit::IdempotencyKey`]:
//!    it dedupes, lets you store inputs under the job's blob prefix before enqueuing, and
//!    [`submit::Submitted`] renders the 202 answer.

pub mod analyze_audio;
pub mod analyze_song;
pub mod submit;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use timbre_engines::Registry;
use timbre_jobs::{Handlers, Noop, Queue, QueueSettings, RetryPolicy, Worker, WorkerSettings};
use timbre_store::Store;
use tokio::sync::{Mutex, OnceCell};

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::StoreHandle;

/// The health component the queue reports under.
pub const COMPONENT: &str = "jobs";

/// Every job kind this build runs. Capabilities add theirs here. `store` may still be
/// connecting (handlers that write rows retry until it is).
pub fn handlers(registry: &Arc<Registry>, store: &StoreHandle) -> Handlers {
    Handlers::new()
        .with(Noop)
        .with(analyze_audio::AnalyzeAudio::new(Arc::clone(registry)))
        .with(analyze_song::AnalyzeSong::new(Arc::clone(registry), store.clone()))
}

pub fn queue_settings(config: &Config) -> QueueSettings {
    QueueSettings { default_max_attempts: i32::try_from(config.job_max_attempts).unwrap_or(3) }
}

/// Worker timings from the configuration; `health` feeds the `jobs` component of `/health`.
pub fn worker_settings(config: &Config, registry: &Arc<Registry>) -> WorkerSettings {
    let secs = Duration::from_secs_f64;
    let health = Arc::clone(registry);
    WorkerSettings {
        concurrency: config.workers.max(1),
        lease: secs(config.job_lease),
        heartbeat: secs(config.job_heartbeat),
        poll_interval: secs(config.job_poll_interval),
        retry: RetryPolicy { base: secs(config.job_retry_base), max: secs(config.job_retry_max) },
        retention: (config.job_retention > 0.0).then(|| secs(config.job_retention)),
        health: Some(Arc::new(move |problem| health.set_component_problem(COMPONENT, problem))),
        ..WorkerSettings::default()
    }
}

/// The queue once storage is connected, and this process's workers.
#[derive(Clone, Default)]
pub struct JobsHandle {
    queue: Arc<OnceCell<Queue>>,
    worker: Arc<Mutex<Option<Worker>>>,
}

impl JobsHandle {
    /// The queue; 503 until storage is connected.
    pub fn queue(&self) -> Result<Queue, ApiError> {
        self.queue.get().cloned().ok_or_else(|| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "jobs_unavailable",
                "the job queue is not connected yet; see /health",
            )
            .with_retry_after(Duration::from_secs(5))
        })
    }

    pub fn set(&self, queue: Queue) {
        let _ = self.queue.set(queue);
    }

    /// Runs `worker` until [`JobsHandle::shutdown`].
    pub async fn run(&self, worker: Worker) {
        *self.worker.lock().await = Some(worker);
    }

    /// Drains this process's workers (if any) within `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let worker = self.worker.lock().await.take();
        if let Some(worker) = worker {
            worker.shutdown(grace).await;
        }
    }
}

/// Opens the queue on the connected store and, when `config.workers > 0`, starts in-process
/// workers. Until this runs the `jobs` component reports `connecting`.
pub async fn attach(state: &AppState, store: &Store) -> Result<(), String> {
    let queue = Queue::open(store.db.clone(), queue_settings(&state.config)).await.map_err(|e| e.to_string())?;
    state.jobs.set(queue.clone());
    state.registry.set_component_problem(COMPONENT, None);
    if state.config.workers == 0 {
        tracing::info!("no in-process job workers (workers = 0): this replica only serves the API");
        return Ok(());
    }
    let handlers = handlers(&state.registry, &state.store).only(&state.config.job_kinds)?;
    let worker =
        Worker::start(queue, handlers, Arc::clone(&store.blobs), worker_settings(&state.config, &state.registry));
    state.jobs.run(worker).await;
    Ok(())
}
