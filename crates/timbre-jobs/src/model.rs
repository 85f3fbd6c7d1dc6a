//! What a job is: its row, its status, its progress, and what enqueuing and listing take.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a job is in its life. `queued` and `running` are live; the other three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Final: nothing will change it again (only retention deletes it).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status `{0}` (expected queued, running, succeeded, failed or cancelled)")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The last progress a handler reported: which stage, how far (0–1), and an optional note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: String,
    pub fraction: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Progress {
    pub fn new(stage: impl Into<String>, fraction: f64, message: Option<String>) -> Self {
        let fraction = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
        Self { stage: stage.into(), fraction, message }
    }
}

/// One job as stored. Times are Unix milliseconds of the database clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: JobStatus,
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub worker_id: Option<String>,
    pub cancel_requested: bool,
    pub progress: Option<Progress>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl Job {
    /// Blobs under this prefix belong to the job: retention deletes them with it.
    pub fn blob_prefix(&self) -> String {
        blob_prefix(&self.id)
    }
}

/// `jobs/<id>/`: where a job keeps its blobs (uploads, outputs), deleted with the job.
pub fn blob_prefix(id: &str) -> String {
    format!("jobs/{id}/")
}

/// A job to enqueue. [`NewJob::new`] fills the defaults; the setters read like the options.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// `None`: a fresh time-ordered UUID. Callers that store blobs under the job's prefix before
    /// enqueuing pick it with [`new_job_id`].
    pub id: Option<String>,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Higher runs first.
    pub priority: i32,
    /// `None`: the queue's default.
    pub max_attempts: Option<i32>,
    /// Not before this long from now.
    pub delay: Option<Duration>,
    /// A second enqueue with the same key returns the first job instead of a new one.
    pub idempotency_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            id: None,
            kind: kind.into(),
            payload,
            priority: 0,
            max_attempts: None,
            delay: None,
            idempotency_key: None,
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A fresh job id: a UUIDv7 in simple form, so ids sort by creation time (what list cursors use).
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// What [`crate::Queue::enqueue`] did: a new job, or the existing one with the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub job: Job,
    pub created: bool,
}

/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 200;

/// A listing: newest first, filtered, one page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    /// 1..=[`MAX_PAGE`]; 0 means the default of 50.
    pub limit: u32,
    /// The `next_cursor` of the previous page: jobs older than that id.
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn effective_limit(&self) -> u32 {
        if self.limit == 0 { 50 } else { self.limit.min(MAX_PAGE) }
    }
}

/// One page of a listing; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<String>,
}

/// What cancelling did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was queued: now `cancelled`, it will never run.
    Cancelled(Job),
    /// It is running: its handler's token is being cancelled; it turns `cancelled` when the
    /// handler stops (or its lease expires).
    Requested(Job),
    /// It had already finished; nothing changed.
    AlreadyFinished(Job),
    NotFound,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_three_are_final() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let finals: Vec<_> = JobStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(finals, [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled]);
        assert!("done".parse::<JobStatus>().unwrap_err().to_string().contains("queued, running"));
    }

    #[test]
    fn progress_fraction_is_clamped() {
        assert_eq!(Progress::new("s", 1.5, None).fraction, 1.0);
        assert_eq!(Progress::new("s", -1.0, None).fraction, 0.0);
        assert_eq!(Progress::new("s", f64::NAN, None).fraction, 0.0);
        assert_eq!(Progress::new("s", 0.25, None).fraction, 0.25);
    }

    #[test]
    fn ids_sort_by_creation() {
        let ids: Vec<String> = (0..50).map(|_| new_job_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(ids[0].len(), 32);
    }

    #[test]
    fn page_limits() {
        assert_eq!(ListQuery::default().effective_limit(), 50);
        assert_eq!(ListQuery { limit: 1000, ..Default::default() }.effective_limit(), MAX_PAGE);
        assert_eq!(ListQuery { limit: 7, ..Default::default() }.effective_limit(), 7);
    }
}
