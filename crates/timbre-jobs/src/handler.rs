//! The seam a capability implements to run as a job: [`JobHandler`] for one `kind`, the
//! [`JobContext`] it runs with, and the [`JobError`] that says whether to retry.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use timbre_store::BlobStore;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::model::{Progress, blob_prefix};

/// Why an attempt did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Another attempt may succeed (a model still loading, storage briefly unreachable): the job
    /// is retried with backoff until `max_attempts`, then fails with this message.
    #[error("{0}")]
    Retryable(String),
    /// No attempt will do better (corrupt or silent input, a bad payload): the job fails now.
    #[error("{0}")]
    Permanent(String),
    /// The handler saw its cancellation token and stopped.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }
}

/// Runs jobs of one kind. Register it in [`Handlers`]; workers claim only kinds they have.
///
/// ```ignore
/// struct Transcode;
///
/// #[async_trait::async_trait]
/// impl JobHandler for Transcode {
///     fn kind(&self) -> &'static str { "transcode" }
///     async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
///         let input: Input = serde_json::from_value(payload).map_err(|e| JobError::permanent(e.to_string()))?;
///         for (i, chunk) in chunks.iter().enumerate() {
///             ctx.check_cancelled()?;
///             ctx.progress("encode", i as f64 / chunks.len() as f64);
///             // … ctx.blobs().put(&format!("{}out.mp3", ctx.blob_prefix()), …)
///         }
///         Ok(serde_json::json!({"ok": true}))
///     }
/// }
/// ```
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// The `kind` column this handler runs (`analyze_audio`, `analyze_song`, `noop`, …).
    fn kind(&self) -> &'static str;

    /// Runs one attempt. The returned JSON is stored as the job's `result`. Check
    /// [`JobContext::check_cancelled`] between steps: a cancelled job's handler that does not
    /// return within a second is dropped at its next `.await`.
    async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError>;
}

/// The handlers a worker runs, by kind.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler of its kind.
    pub fn register(&mut self, handler: impl JobHandler) -> &mut Self {
        self.by_kind.insert(handler.kind().to_owned(), Arc::new(handler));
        self
    }

    /// [`Handlers::register`] for builder-style setup.
    pub fn with(mut self, handler: impl JobHandler) -> Self {
        self.register(handler);
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.by_kind.get(kind).cloned()
    }

    pub fn kinds(&self) -> Vec<String> {
        self.by_kind.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// Only the kinds listed (`timbre worker --kinds …`); an unknown kind is an error naming
    /// the known ones. An empty list keeps them all.
    pub fn only(&self, kinds: &[String]) -> Result<Self, String> {
        if kinds.is_empty() {
            return Ok(self.clone());
        }
        let mut by_kind = BTreeMap::new();
        for kind in kinds {
            let handler = self
                .by_kind
                .get(kind)
                .ok_or_else(|| format!("unknown job kind `{kind}` (known: {})", self.kinds().join(", ")))?;
            by_kind.insert(kind.clone(), Arc::clone(handler));
        }
        Ok(Self { by_kind })
    }
}

/// A line a handler logs for whoever watches the job (SSE `log` events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// What a handler runs with: who it is, how to report, when to stop, where to store.
pub struct JobContext {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) worker_id: String,
    pub(crate) cancel: CancellationToken,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) progress: watch::Sender<Option<Progress>>,
    pub(crate) logs: mpsc::Sender<LogLine>,
    pub(crate) span: tracing::Span,
}

impl JobContext {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// 1 on the first attempt.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Reports progress. Never blocks: the latest report is written to the job and published
    /// (at most every 100 ms or so; the last one before the handler returns always lands).
    pub fn progress(&self, stage: &str, fraction: f64) {
        self.progress_with(stage, fraction, None);
    }

    pub fn progress_with(&self, stage: &str, fraction: f64, message: Option<String>) {
        self.progress.send_replace(Some(Progress::new(stage, fraction, message)));
    }

    /// Sends a log line to watchers (SSE `log` events) and to the process log. Lines beyond what
    /// watchers keep up with are dropped from the events (never from the process log).
    pub fn log(&self, message: impl Into<String>) {
        self.log_at("info", message.into());
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.log_at("warn", message.into());
    }

    fn log_at(&self, level: &'static str, message: String) {
        let _enter = self.span.enter();
        match level {
            "warn" => tracing::warn!(job_id = %self.id, "{message}"),
            _ => tracing::info!(job_id = %self.id, "{message}"),
        }
        let _ = self.logs.try_send(LogLine { level, message });
    }

    /// The tracing span of this attempt (job id, kind, attempt), for work spawned elsewhere.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once the job was cancelled (or its worker is shutting down): `?` it
    /// between steps.
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        if self.cancel.is_cancelled() { Err(JobError::Cancelled) } else { Ok(()) }
    }

    /// Resolves when the job is cancelled, for `select!` around long awaits.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// The token itself, for blocking work on other threads to poll.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// `jobs/<id>/`: blobs the job writes here are deleted with it at retention.
    pub fn blob_prefix(&self) -> String {
        blob_prefix(&self.id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Named(&'static str);

    #[async_trait]
    impl JobHandler for Named {
        fn kind(&self) -> &'static str {
            self.0
        }
        async fn run(&self, _: JobContext, _: serde_json::Value) -> Result<serde_json::Value, JobError> {
            Ok(serde_json::Value::Null)
        }
    }

    #[test]
    fn handlers_register_by_kind_and_restrict() {
        let handlers = Handlers::new().with(Named("a")).with(Named("b"));
        assert_eq!(handlers.kinds(), ["a", "b"]);
        assert!(handlers.get("a").is_some() && handlers.get("c").is_none());
        assert_eq!(handlers.only(&["b".into()]).unwrap().kinds(), ["b"]);
        assert_eq!(handlers.only(&[]).unwrap().kinds(), ["a", "b"]);
        let err = handlers.only(&["c".into()]).unwrap_err();
        assert!(err.contains("`c`") && err.contains("a, b"), "{err}");
    }
}
