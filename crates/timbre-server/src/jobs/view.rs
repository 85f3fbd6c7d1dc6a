//! The public shape of a job (`GET /v1/jobs/{id}`, list items, SSE `status`/`done` data).

use serde::Serialize;
use timbre_jobs::Job;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProgressView {
    /// What the handler is doing (`decode`, `tag`, … and `done` once it succeeded).
    pub stage: String,
    /// 0 to 1.
    pub fraction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    #[schema(example = "analyze_audio")]
    pub kind: String,
    /// queued | running | succeeded | failed | cancelled
    #[schema(example = "running")]
    pub status: String,
    pub progress: Option<ProgressView>,
    /// What the handler returned (`succeeded` only).
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// Why the job failed, or the last attempt's error while it is retried.
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i32,
    /// A cancel was requested while it ran; it turns `cancelled` when the handler stops.
    pub cancel_requested: bool,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Unix seconds.
    pub created_at: f64,
    /// Not claimed before this (retry backoff), Unix seconds.
    pub run_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// The worker holding it while it runs.
    pub worker_id: Option<String>,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            status: j.status.as_str().to_owned(),
            progress: j.progress.map(|p| ProgressView { stage: p.stage, fraction: p.fraction, message: p.message }),
            result: j.result,
            error: j.error,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            priority: j.priority,
            cancel_requested: j.cancel_requested,
            payload: j.payload,
            created_at: secs(j.created_at),
            run_at: secs(j.run_at),
            started_at: j.started_at.map(secs),
            finished_at: j.finished_at.map(secs),
            worker_id: j.worker_id,
            kind: j.kind,
            id: j.id,
        }
    }
}
