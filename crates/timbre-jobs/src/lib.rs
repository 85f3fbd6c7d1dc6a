//! timbre's durable job queue: one implementation per database (SQLite by default, PostgreSQL
//! for replicas and worker fleets) behind one [`Queue`], and the [`Worker`] that runs jobs.
//!
//! Guarantees, as the queues people trust (Oban, River, graphile-worker, RQ) give them:
//! at-least-once execution, leases that survive a dead worker (an expired lease returns the job
//! to the queue with the attempt counted), retries with exponential backoff and jitter up to
//! `max_attempts`, cancellation of queued and running jobs, progress events, idempotency keys,
//! and retention of finished jobs with their blobs.
//!
//! # Adding a job kind
//!
//! A capability that wants long work off the request path implements [`JobHandler`] in its own
//! crate or module and registers it; the queue needs no change:
//!
//! ```ignore
//! let handlers = Handlers::new().with(Noop).with(AnalyzeSong::new(registry.clone()));
//! let worker = Worker::start(queue.clone(), handlers, store.blobs.clone(), WorkerSettings::default());
//! // Enqueue from an HTTP handler (timbre-server's `jobs::submit` adds Idempotency-Key handling):
//! queue.enqueue(NewJob::new("analyze_song", json!({"song_id": id}))).await?;
//! ```
//!
//! The handler gets a [`JobContext`]: progress reporting (`ctx.progress(stage, fraction)`), log
//! lines for watchers, the cancellation token (`ctx.check_cancelled()?` between steps), the
//! blob store and a per-job blob prefix that retention cleans, the attempt number, and a
//! tracing span. It returns the result JSON, or a [`JobError`] saying whether a retry could help.

pub mod events;
pub mod handler;
pub mod model;
pub mod noop;
pub mod policy;
pub mod queue;
mod sql;
pub mod worker;

/// Handlers implement [`JobHandler`] with this attribute; re-exported so they need no dependency of their own.
pub use async_trait::async_trait;
pub use events::{EventHub, JobEvent};
pub use handler::{Handlers, JobContext, JobError, JobHandler};
pub use model::{CancelOutcome, Enqueued, Job, JobStatus, ListQuery, NewJob, Page, Progress, blob_prefix, new_job_id};
pub use noop::{Noop, NoopPayload};
pub use policy::RetryPolicy;
pub use queue::{Claim, Finish, JobsError, Queue, QueueSettings};
pub use worker::{HealthSink, Worker, WorkerSettings, default_worker_id};
