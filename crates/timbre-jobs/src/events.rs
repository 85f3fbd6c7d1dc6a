//! Job events fanned out to whoever listens: SSE clients, waiting callers, workers watching for
//! cancellation.
//!
//! In-process the hub is a `tokio::sync::broadcast` channel. With PostgreSQL every event is
//! published with `pg_notify` instead, and one `LISTEN` connection per process rebroadcasts what
//! arrives — including the process's own events, so each event reaches local subscribers exactly
//! once whichever process raised it. SQLite is single-process: events go straight to the channel.
//!
//! Events are hints, not the record: a subscriber that lags (or a worker in another process on a
//! shared SQLite file) reads the job row for the truth.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;

use crate::model::{JobStatus, Progress};

/// The `LISTEN`/`NOTIFY` channel of job events.
pub const CHANNEL: &str = "timbre_jobs";

/// `NOTIFY` payloads must stay under 8000 bytes; log lines and messages are cut to this.
pub const MAX_TEXT: usize = 2000;

/// Subscribers that fall this many events behind skip ahead (and should re-read the job).
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// A job was enqueued: idle workers wake up and claim.
    Enqueued {
        job_id: String,
        kind: String,
    },
    /// A worker claimed the job (attempt `attempt`).
    Started {
        job_id: String,
        attempt: i32,
    },
    Progress {
        job_id: String,
        progress: Progress,
    },
    /// A line from the handler for whoever watches (not stored).
    Log {
        job_id: String,
        level: String,
        message: String,
    },
    /// A retryable attempt failed; the job is queued again.
    Retrying {
        job_id: String,
        attempt: i32,
        error: String,
        delay_ms: u64,
    },
    /// The job reached a final status; read the row for result and error.
    Done {
        job_id: String,
        status: JobStatus,
    },
    /// Someone asked a running job to stop.
    CancelRequested {
        job_id: String,
    },
}

impl JobEvent {
    pub fn job_id(&self) -> &str {
        match self {
            Self::Enqueued { job_id, .. }
            | Self::Started { job_id, .. }
            | Self::Progress { job_id, .. }
            | Self::Log { job_id, .. }
            | Self::Retrying { job_id, .. }
            | Self::Done { job_id, .. }
            | Self::CancelRequested { job_id } => job_id,
        }
    }
}

/// Cuts `text` to at most [`MAX_TEXT`] bytes on a character boundary.
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The in-process side of the fan-out. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<JobEvent>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.tx.subscribe()
    }

    /// Delivers to local subscribers (none listening is fine).
    pub fn send(&self, event: JobEvent) {
        let _ = self.tx.send(event);
    }

    /// Rebroadcasts PostgreSQL notifications on [`CHANNEL`] until the pool closes; reconnects
    /// after errors. `ready` fires once the first `LISTEN` is in place.
    pub fn spawn_listener(&self, pool: PgPool, ready: tokio::sync::oneshot::Sender<()>) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready);
            let mut pause = Duration::from_millis(200);
            while !pool.is_closed() {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "job events: cannot connect the LISTEN session; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(10));
                        continue;
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "job events: LISTEN failed; retrying");
                    tokio::time::sleep(pause).await;
                    continue;
                }
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
                pause = Duration::from_millis(200);
                loop {
                    match listener.recv().await {
                        Ok(n) => match serde_json::from_str::<JobEvent>(n.payload()) {
                            Ok(event) => hub.send(event),
                            Err(e) => tracing::debug!(error = %e, "job events: ignoring an unreadable notification"),
                        },
                        Err(e) => {
                            if !pool.is_closed() {
                                tracing::warn!(error = %e, "job events: LISTEN session lost; reconnecting");
                            }
                            break;
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_type_tag() {
        let e = JobEvent::Progress { job_id: "j".into(), progress: Progress::new("decode", 0.5, None) };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "progress");
        assert_eq!(v["progress"]["stage"], "decode");
        assert_eq!(serde_json::from_value::<JobEvent>(v).unwrap(), e);
        let done = JobEvent::Done { job_id: "j".into(), status: JobStatus::Succeeded };
        assert_eq!(serde_json::to_value(&done).unwrap()["status"], "succeeded");
        assert_eq!(done.job_id(), "j");
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        let long = "é".repeat(MAX_TEXT);
        let c = clip(&long);
        assert!(c.len() <= MAX_TEXT + "…".len());
        assert!(c.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
