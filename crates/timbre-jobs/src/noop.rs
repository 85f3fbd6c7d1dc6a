//! `noop`: a job that does nothing useful on purpose — for the queue benchmark, for checking a
//! deployment's workers end to end (`POST /v1/jobs/noop`), and for tests that need a job with
//! controllable duration, progress, failures and an observable side effect.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

use crate::handler::{JobContext, JobError, JobHandler};

pub const KIND: &str = "noop";

/// Longest `sleep_ms` accepted (a diagnostic job should not hold a slot for long).
pub const MAX_SLEEP_MS: u64 = 600_000;

/// The payload; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NoopPayload {
    /// Total time to spend, split evenly over `steps`.
    pub sleep_ms: u64,
    /// Progress reports (`sleep` stage, one per step); 0 reports none.
    pub steps: u32,
    /// Attempts up to this number fail with a retryable error (exercises retries and backoff).
    pub fail_attempts: i32,
    /// Fail with a permanent error instead (exercises "no retry for bad input").
    pub fail_permanently: bool,
    /// Write a blob `jobs/<id>/runs/<attempt>-<worker>` when the work is done, so tests can
    /// count how many attempts ran to completion (exactly once, unless a worker dies between
    /// this write and recording the result).
    pub mark: bool,
}

impl NoopPayload {
    pub fn validate(&self) -> Result<(), String> {
        if self.sleep_ms > MAX_SLEEP_MS {
            return Err(format!("sleep_ms must be at most {MAX_SLEEP_MS}"));
        }
        if self.steps > 1000 {
            return Err("steps must be at most 1000".into());
        }
        if !(0..=100).contains(&self.fail_attempts) {
            return Err("fail_attempts must be between 0 and 100".into());
        }
        Ok(())
    }
}

/// The `noop` handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

#[async_trait]
impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let p: NoopPayload =
            serde_json::from_value(payload).map_err(|e| JobError::permanent(format!("invalid noop payload: {e}")))?;
        p.validate().map_err(JobError::permanent)?;
        let steps = p.steps.max(1);
        let per_step = Duration::from_millis(p.sleep_ms / u64::from(steps));
        for step in 0..steps {
            if !per_step.is_zero() {
                tokio::select! {
                    () = ctx.cancelled() => return Err(JobError::Cancelled),
                    () = tokio::time::sleep(per_step) => {}
                }
            }
            ctx.check_cancelled()?;
            if p.steps > 0 {
                ctx.progress("sleep", f64::from(step + 1) / f64::from(steps));
            }
        }
        if p.fail_permanently {
            return Err(JobError::permanent("noop asked to fail permanently"));
        }
        if ctx.attempt() <= p.fail_attempts {
            return Err(JobError::retryable(format!("noop asked to fail attempt {}", ctx.attempt())));
        }
        if p.mark {
            let key = format!("{}runs/{}-{}", ctx.blob_prefix(), ctx.attempt(), ctx.worker_id());
            ctx.blobs()
                .put(&key, Bytes::from_static(b"done"), "text/plain")
                .await
                .map_err(|e| JobError::retryable(format!("cannot write the run marker: {e}")))?;
        }
        Ok(serde_json::json!({
            "attempt": ctx.attempt(),
            "worker_id": ctx.worker_id(),
            "slept_ms": p.sleep_ms,
        }))
    }
}
