//! The job queue over the shared [`Db`]: enqueue, claim, heartbeat, finish, cancel, reap,
//! clean up — one method each, one statement per dialect each.
//!
//! # Atomicity
//!
//! - **Claims** on PostgreSQL lock the chosen rows with `FOR UPDATE SKIP LOCKED`, so concurrent
//!   claimers (threads or processes) take disjoint jobs without waiting on each other. On SQLite
//!   the claim is one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …` statement: a write
//!   statement takes SQLite's single write lock before it reads, so claims are serialised and
//!   never overlap (`busy_timeout` makes the others wait rather than fail).
//! - **Every write after the claim is guarded** by `(id, worker_id, attempts, status = 'running')`:
//!   a worker whose lease expired and whose job was claimed again can no longer record anything,
//!   so each job ends once, with the result of the attempt that held the lease.
//! - **Times** are the database clock's, so workers on hosts with skewed clocks agree on leases.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use timbre_store::{BlobError, BlobStore, Db};

use crate::events::{CHANNEL, EventHub, JobEvent, clip};
use crate::model::{
    CancelOutcome, Enqueued, Job, JobStatus, ListQuery, NewJob, Page, Progress, blob_prefix, new_job_id,
};
use crate::policy::{CancelEffect, Next, after_lease_expiry, cancel_effect, lease_expired_error};
use crate::sql::{job_from_row, pg_cols, pg_now, sqlite_cols, sqlite_now};

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("job database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("job blobs: {0}")]
    Blob(#[from] BlobError),
    #[error("stored job is unreadable: {0}")]
    Corrupt(String),
    #[error("invalid job: {0}")]
    Invalid(String),
}

/// Queue-wide defaults.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// `max_attempts` of jobs enqueued without one.
    pub default_max_attempts: i32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self { default_max_attempts: 3 }
    }
}

/// A job a worker holds: enough to guard every later write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub worker_id: String,
    pub attempt: i32,
}

impl Claim {
    pub fn of(job: &Job) -> Option<Self> {
        Some(Self { id: job.id.clone(), worker_id: job.worker_id.clone()?, attempt: job.attempts })
    }
}

/// How an attempt ended, with what the queue records.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Succeeded(serde_json::Value),
    /// Final failure with its error.
    Failed(String),
    /// Back to the queue after `delay`, keeping `error` as the last error.
    Retry {
        error: String,
        delay: Duration,
    },
    Cancelled(String),
}

/// Kinds a claim may take. A worker only claims kinds it has handlers for.
fn kinds_json(kinds: &[String]) -> String {
    serde_json::to_string(kinds).unwrap_or_else(|_| "[]".into())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The queue. Cheap to clone; clones share the event hub (and the LISTEN session).
#[derive(Clone)]
pub struct Queue {
    db: Db,
    hub: EventHub,
    settings: QueueSettings,
    _listener: Option<Arc<AbortOnDrop>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("db", &self.db).field("settings", &self.settings).finish()
    }
}

impl Queue {
    /// A queue on a migrated database. On PostgreSQL this starts the `LISTEN` session and waits
    /// (up to 5 s) until it is in place, so events raised right after are not missed.
    pub async fn open(db: Db, settings: QueueSettings) -> Result<Self, JobsError> {
        let hub = EventHub::new();
        let listener = match &db {
            Db::Postgres(pool) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let task = hub.spawn_listener(pool.clone(), tx);
                if tokio::time::timeout(Duration::from_secs(5), rx).await.is_err() {
                    tracing::warn!("job events: LISTEN not ready after 5 s; continuing (events may lag)");
                }
                Some(Arc::new(AbortOnDrop(task)))
            }
            Db::Sqlite(_) => None,
        };
        Ok(Self { db, hub, settings, _listener: listener })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Events of every job (filter by `job_id`). Subscribe before reading a job's row, so nothing
    /// that happens in between is missed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobEvent> {
        self.hub.subscribe()
    }

    /// Publishes an event: straight to local subscribers on SQLite, through `NOTIFY` on
    /// PostgreSQL (the listener of every process, this one included, rebroadcasts it).
    pub async fn publish(&self, event: JobEvent) -> Result<(), JobsError> {
        match &self.db {
            Db::Sqlite(_) => self.hub.send(event),
            Db::Postgres(pool) => {
                let payload = serde_json::to_string(&event).map_err(|e| JobsError::Invalid(e.to_string()))?;
                sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Enqueues a job, or — when its idempotency key was used before — returns that job.
    pub async fn enqueue(&self, new: NewJob) -> Result<Enqueued, JobsError> {
        let id = new.id.clone().unwrap_or_else(new_job_id);
        if new.kind.is_empty() {
            return Err(JobsError::Invalid("kind is empty".into()));
        }
        let max_attempts = new.max_attempts.unwrap_or(self.settings.default_max_attempts).max(1);
        let delay = new.delay.map(ms).unwrap_or(0);
        let payload = serde_json::to_string(&new.payload).map_err(|e| JobsError::Invalid(e.to_string()))?;
        let inserted = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "INSERT INTO jobs (id, kind, payload, priority, max_attempts, run_at, idempotency_key, created_at) \
                     SELECT ?1, ?2, ?3, ?4, ?5, t.now + ?6, ?7, t.now FROM (SELECT ",
                    sqlite_now!(),
                    " AS now) t WHERE true ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
                    sqlite_cols!()
                );
                let row = sqlx::query(sql)
                    .bind(&id)
                    .bind(&new.kind)
                    .bind(&payload)
                    .bind(new.priority)
                    .bind(max_attempts)
                    .bind(delay)
                    .bind(&new.idempotency_key)
                    .fetch_optional(pool)
                    .await?;
                let job = row.as_ref().map(sqlite_job).transpose()?;
                if let Some(job) = &job {
                    self.hub.send(JobEvent::Enqueued { job_id: job.id.clone(), kind: job.kind.clone() });
                }
                job
            }
            Db::Postgres(pool) => {
                // The notification rides on the insert: one round trip, sent at commit.
                let sql = concat!(
                    "WITH t AS (SELECT ",
                    pg_now!(),
                    " AS now), ins AS (INSERT INTO jobs (id, kind, payload, priority, max_attempts, run_at, \
                     idempotency_key, created_at) SELECT $1, $2, $3::jsonb, $4, $5, t.now + $6, $7, t.now FROM t \
                     ON CONFLICT (idempotency_key) DO NOTHING RETURNING *) \
                     SELECT ",
                    pg_cols!(),
                    ", pg_notify('timbre_jobs', json_build_object('type', 'enqueued', 'job_id', jobs.id, \
                     'kind', jobs.kind)::text)::text AS notified FROM ins jobs"
                );
                let row = sqlx::query(sql)
                    .bind(&id)
                    .bind(&new.kind)
                    .bind(&payload)
                    .bind(new.priority)
                    .bind(max_attempts)
                    .bind(delay)
                    .bind(&new.idempotency_key)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(pg_job).transpose()?
            }
        };
        if let Some(job) = inserted {
            return Ok(Enqueued { job, created: true });
        }
        let key = new.idempotency_key.as_deref().unwrap_or_default();
        match self.find_by_idempotency_key(key).await? {
            Some(job) => Ok(Enqueued { job, created: false }),
            // Deleted by retention between the two statements: nothing left to dedupe against.
            None => Err(JobsError::Invalid(format!("idempotency key {key:?} conflicted but no job holds it"))),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<Job>, JobsError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!("SELECT ", sqlite_cols!(), " FROM jobs WHERE id = ?1");
                sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(sqlite_job).transpose()?
            }
            Db::Postgres(pool) => {
                let sql = concat!("SELECT ", pg_cols!(), " FROM jobs WHERE id = $1");
                sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(pg_job).transpose()?
            }
        })
    }

    pub async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Job>, JobsError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!("SELECT ", sqlite_cols!(), " FROM jobs WHERE idempotency_key = ?1");
                sqlx::query(sql).bind(key).fetch_optional(pool).await?.as_ref().map(sqlite_job).transpose()?
            }
            Db::Postgres(pool) => {
                let sql = concat!("SELECT ", pg_cols!(), " FROM jobs WHERE idempotency_key = $1");
                sqlx::query(sql).bind(key).fetch_optional(pool).await?.as_ref().map(pg_job).transpose()?
            }
        })
    }

    /// Newest first; `next_cursor` continues after the last job of this page.
    pub async fn list(&self, q: &ListQuery) -> Result<Page, JobsError> {
        let limit = q.effective_limit();
        let status = q.status.map(JobStatus::as_str);
        let fetch = i64::from(limit) + 1;
        let mut jobs = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "SELECT ",
                    sqlite_cols!(),
                    " FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) \
                     AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
                );
                let rows =
                    sqlx::query(sql).bind(status).bind(&q.kind).bind(&q.cursor).bind(fetch).fetch_all(pool).await?;
                rows.iter().map(sqlite_job).collect::<Result<Vec<_>, _>>()?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "SELECT ",
                    pg_cols!(),
                    " FROM jobs WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) \
                     AND ($3::text IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
                );
                let rows =
                    sqlx::query(sql).bind(status).bind(&q.kind).bind(&q.cursor).bind(fetch).fetch_all(pool).await?;
                rows.iter().map(pg_job).collect::<Result<Vec<_>, _>>()?
            }
        };
        let next_cursor = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.id.clone())
        } else {
            None
        };
        Ok(Page { jobs, next_cursor })
    }

    /// Claims up to `limit` due jobs of `kinds` for `worker_id`, highest priority first, each
    /// leased for `lease` and counted as an attempt.
    pub async fn claim(
        &self,
        worker_id: &str,
        kinds: &[String],
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Job>, JobsError> {
        if limit == 0 || kinds.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = ?1, \
                     lease_until = ",
                    sqlite_now!(),
                    " + ?2, started_at = COALESCE(started_at, ",
                    sqlite_now!(),
                    "), progress_stage = NULL, progress_fraction = NULL, progress_message = NULL \
                     WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= ",
                    sqlite_now!(),
                    " AND kind IN (SELECT value FROM json_each(?3)) ORDER BY priority DESC, run_at, id LIMIT ?4) \
                     RETURNING ",
                    sqlite_cols!()
                );
                let rows = sqlx::query(sql)
                    .bind(worker_id)
                    .bind(ms(lease))
                    .bind(kinds_json(kinds))
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_job).collect::<Result<Vec<_>, _>>()?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "WITH t AS (SELECT ",
                    pg_now!(),
                    " AS now), c AS (SELECT id FROM jobs, t WHERE status = 'queued' AND run_at <= t.now \
                     AND kind = ANY($3) ORDER BY priority DESC, run_at, id LIMIT $4 FOR UPDATE OF jobs SKIP LOCKED) \
                     UPDATE jobs SET status = 'running', attempts = jobs.attempts + 1, worker_id = $1, \
                     lease_until = t.now + $2, started_at = COALESCE(jobs.started_at, t.now), \
                     progress_stage = NULL, progress_fraction = NULL, progress_message = NULL \
                     FROM c, t WHERE jobs.id = c.id RETURNING ",
                    pg_cols!()
                );
                let rows = sqlx::query(sql)
                    .bind(worker_id)
                    .bind(ms(lease))
                    .bind(kinds)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_job).collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(jobs)
    }

    /// Extends the leases of `ids` held by `worker_id`. Returns the ids still held, each with
    /// whether a cancel was requested; an id missing from the answer lost its lease.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<(String, bool)>, JobsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET lease_until = ",
                    sqlite_now!(),
                    " + ?3 WHERE id IN (SELECT value FROM json_each(?1)) AND worker_id = ?2 AND status = 'running' \
                     RETURNING id, cancel_requested"
                );
                sqlx::query_as(sql).bind(kinds_json(ids)).bind(worker_id).bind(ms(lease)).fetch_all(pool).await?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET lease_until = ",
                    pg_now!(),
                    " + $3 WHERE id = ANY($1) AND worker_id = $2 AND status = 'running' RETURNING id, cancel_requested"
                );
                sqlx::query_as(sql).bind(ids).bind(worker_id).bind(ms(lease)).fetch_all(pool).await?
            }
        })
    }

    /// Records progress of a held job and publishes it. `false`: the claim is no longer valid.
    pub async fn progress(&self, claim: &Claim, progress: &Progress) -> Result<bool, JobsError> {
        let message = progress.message.as_deref().map(clip);
        let n = match &self.db {
            Db::Sqlite(pool) => sqlx::query(
                "UPDATE jobs SET progress_stage = ?4, progress_fraction = ?5, progress_message = ?6 \
                 WHERE id = ?1 AND worker_id = ?2 AND attempts = ?3 AND status = 'running'",
            )
            .bind(&claim.id)
            .bind(&claim.worker_id)
            .bind(claim.attempt)
            .bind(&progress.stage)
            .bind(progress.fraction)
            .bind(&message)
            .execute(pool)
            .await?
            .rows_affected(),
            Db::Postgres(pool) => sqlx::query(
                "UPDATE jobs SET progress_stage = $4, progress_fraction = $5, progress_message = $6 \
                 WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'",
            )
            .bind(&claim.id)
            .bind(&claim.worker_id)
            .bind(claim.attempt)
            .bind(&progress.stage)
            .bind(progress.fraction)
            .bind(&message)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        if n == 0 {
            return Ok(false);
        }
        let progress = Progress { message, ..progress.clone() };
        self.publish(JobEvent::Progress { job_id: claim.id.clone(), progress }).await?;
        Ok(true)
    }

    /// Ends a held attempt. `false`: the claim was no longer valid (lease lost) and nothing was
    /// recorded — another attempt owns the job now.
    pub async fn finish(&self, claim: &Claim, finish: Finish) -> Result<bool, JobsError> {
        let (status, result, error, delay) = match &finish {
            Finish::Succeeded(v) => {
                let text = serde_json::to_string(v).map_err(|e| JobsError::Invalid(e.to_string()))?;
                (JobStatus::Succeeded, Some(text), None, 0)
            }
            Finish::Failed(e) => (JobStatus::Failed, None, Some(e.clone()), 0),
            Finish::Cancelled(e) => (JobStatus::Cancelled, None, Some(e.clone()), 0),
            Finish::Retry { error, delay } => (JobStatus::Queued, None, Some(error.clone()), ms(*delay)),
        };
        let status_str = status.as_str();
        let done = status.is_terminal();
        let n = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET status = ?4, result = ?5, error = ?6, lease_until = NULL, \
                     worker_id = CASE WHEN ?4 = 'queued' THEN NULL ELSE worker_id END, \
                     run_at = CASE WHEN ?4 = 'queued' THEN ",
                    sqlite_now!(),
                    " + ?7 ELSE run_at END, \
                     finished_at = CASE WHEN ?4 = 'queued' THEN NULL ELSE ",
                    sqlite_now!(),
                    " END, \
                     progress_stage = CASE WHEN ?4 = 'succeeded' THEN 'done' ELSE progress_stage END, \
                     progress_fraction = CASE WHEN ?4 = 'succeeded' THEN 1.0 ELSE progress_fraction END, \
                     progress_message = CASE WHEN ?4 = 'succeeded' THEN NULL ELSE progress_message END \
                     WHERE id = ?1 AND worker_id = ?2 AND attempts = ?3 AND status = 'running'"
                );
                let n = sqlx::query(sql)
                    .bind(&claim.id)
                    .bind(&claim.worker_id)
                    .bind(claim.attempt)
                    .bind(status_str)
                    .bind(&result)
                    .bind(&error)
                    .bind(delay)
                    .execute(pool)
                    .await?
                    .rows_affected();
                if n > 0 && done {
                    self.hub.send(JobEvent::Done { job_id: claim.id.clone(), status });
                }
                n
            }
            Db::Postgres(pool) => {
                // The final status notification rides on the update (one round trip).
                let sql = concat!(
                    "WITH t AS (SELECT ",
                    pg_now!(),
                    " AS now), u AS (UPDATE jobs SET status = $4, result = $5::jsonb, error = $6, \
                     lease_until = NULL, \
                     worker_id = CASE WHEN $4 = 'queued' THEN NULL ELSE jobs.worker_id END, \
                     run_at = CASE WHEN $4 = 'queued' THEN t.now + $7 ELSE jobs.run_at END, \
                     finished_at = CASE WHEN $4 = 'queued' THEN NULL ELSE t.now END, \
                     progress_stage = CASE WHEN $4 = 'succeeded' THEN 'done' ELSE jobs.progress_stage END, \
                     progress_fraction = CASE WHEN $4 = 'succeeded' THEN 1.0 ELSE jobs.progress_fraction END, \
                     progress_message = CASE WHEN $4 = 'succeeded' THEN NULL ELSE jobs.progress_message END \
                     FROM t WHERE jobs.id = $1 AND jobs.worker_id = $2 AND jobs.attempts = $3 \
                     AND jobs.status = 'running' RETURNING jobs.id) \
                     SELECT count(*) AS n, count(CASE WHEN $8 THEN pg_notify('timbre_jobs', \
                     json_build_object('type', 'done', 'job_id', u.id, 'status', $4::text)::text) END) AS notified FROM u"
                );
                let (n, _): (i64, i64) = sqlx::query_as(sql)
                    .bind(&claim.id)
                    .bind(&claim.worker_id)
                    .bind(claim.attempt)
                    .bind(status_str)
                    .bind(&result)
                    .bind(&error)
                    .bind(delay)
                    .bind(done)
                    .fetch_one(pool)
                    .await?;
                u64::try_from(n).unwrap_or(0)
            }
        };
        if n > 0
            && let Finish::Retry { error, delay } = &finish
        {
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            let event =
                JobEvent::Retrying { job_id: claim.id.clone(), attempt: claim.attempt, error: clip(error), delay_ms };
            self.publish(event).await?;
        }
        Ok(n > 0)
    }

    /// Gives a held job back without counting the attempt (a worker shutting down); a job whose
    /// cancel was requested ends `cancelled` instead.
    pub async fn release(&self, claim: &Claim) -> Result<bool, JobsError> {
        let row: Option<(bool,)> = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, \
                     attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END, \
                     finished_at = CASE WHEN cancel_requested THEN ",
                    sqlite_now!(),
                    " ELSE NULL END, \
                     error = CASE WHEN cancel_requested THEN 'cancelled' ELSE error END, \
                     worker_id = NULL, lease_until = NULL, run_at = ",
                    sqlite_now!(),
                    " WHERE id = ?1 AND worker_id = ?2 AND attempts = ?3 AND status = 'running' \
                     RETURNING cancel_requested"
                );
                sqlx::query_as(sql)
                    .bind(&claim.id)
                    .bind(&claim.worker_id)
                    .bind(claim.attempt)
                    .fetch_optional(pool)
                    .await?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "WITH t AS (SELECT ",
                    pg_now!(),
                    " AS now) UPDATE jobs SET \
                     status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, \
                     attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END, \
                     finished_at = CASE WHEN cancel_requested THEN t.now ELSE NULL END, \
                     error = CASE WHEN cancel_requested THEN 'cancelled' ELSE error END, \
                     worker_id = NULL, lease_until = NULL, run_at = t.now \
                     FROM t WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running' \
                     RETURNING cancel_requested"
                );
                sqlx::query_as(sql)
                    .bind(&claim.id)
                    .bind(&claim.worker_id)
                    .bind(claim.attempt)
                    .fetch_optional(pool)
                    .await?
            }
        };
        match row {
            None => Ok(false),
            Some((cancelled,)) => {
                let event = if cancelled {
                    JobEvent::Done { job_id: claim.id.clone(), status: JobStatus::Cancelled }
                } else {
                    JobEvent::Enqueued { job_id: claim.id.clone(), kind: String::new() }
                };
                self.publish(event).await?;
                Ok(true)
            }
        }
    }

    /// Cancels a job: a queued one at once; a running one by flagging it (its worker stops it).
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, JobsError> {
        // A job can move between reading and writing; three rounds settle any race.
        for _ in 0..3 {
            let Some(job) = self.get(id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            match cancel_effect(job.status) {
                CancelEffect::None => return Ok(CancelOutcome::AlreadyFinished(job)),
                CancelEffect::CancelNow => {
                    if let Some(job) = self.cancel_queued(id).await? {
                        self.publish(JobEvent::Done { job_id: id.to_owned(), status: JobStatus::Cancelled }).await?;
                        return Ok(CancelOutcome::Cancelled(job));
                    }
                }
                CancelEffect::Request => {
                    if let Some(job) = self.request_cancel(id).await? {
                        self.publish(JobEvent::CancelRequested { job_id: id.to_owned() }).await?;
                        return Ok(CancelOutcome::Requested(job));
                    }
                }
            }
        }
        match self.get(id).await? {
            Some(job) if job.status.is_terminal() => Ok(CancelOutcome::AlreadyFinished(job)),
            Some(job) => Err(JobsError::Invalid(format!("job {id} kept changing state ({})", job.status))),
            None => Ok(CancelOutcome::NotFound),
        }
    }

    async fn cancel_queued(&self, id: &str) -> Result<Option<Job>, JobsError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET status = 'cancelled', error = 'cancelled before it ran', finished_at = ",
                    sqlite_now!(),
                    " WHERE id = ?1 AND status = 'queued' RETURNING ",
                    sqlite_cols!()
                );
                sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(sqlite_job).transpose()?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET status = 'cancelled', error = 'cancelled before it ran', finished_at = ",
                    pg_now!(),
                    " WHERE id = $1 AND status = 'queued' RETURNING ",
                    pg_cols!()
                );
                sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(pg_job).transpose()?
            }
        })
    }

    async fn request_cancel(&self, id: &str) -> Result<Option<Job>, JobsError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running' RETURNING ",
                    sqlite_cols!()
                );
                sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(sqlite_job).transpose()?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running' RETURNING ",
                    pg_cols!()
                );
                sqlx::query(sql).bind(id).fetch_optional(pool).await?.as_ref().map(pg_job).transpose()?
            }
        })
    }

    /// Ids among `ids` whose cancel was requested (what a worker polls for its running jobs).
    pub async fn cancel_requested_among(&self, ids: &[String]) -> Result<Vec<String>, JobsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?1)) AND cancel_requested \
                     AND status = 'running'",
                )
                .bind(kinds_json(ids))
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT id FROM jobs WHERE id = ANY($1) AND cancel_requested AND status = 'running'")
                    .bind(ids)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// Returns jobs whose lease expired (their worker died) to the queue, or ends them when no
    /// attempts remain or a cancel was requested. Returns how many were handled.
    pub async fn reap_expired(&self) -> Result<usize, JobsError> {
        type Expired = (String, i32, i32, bool);
        let expired: Vec<Expired> = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "SELECT id, attempts, max_attempts, cancel_requested FROM jobs WHERE status = 'running' \
                     AND lease_until < ",
                    sqlite_now!(),
                    " LIMIT 200"
                );
                sqlx::query_as(sql).fetch_all(pool).await?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "SELECT id, attempts, max_attempts, cancel_requested FROM jobs WHERE status = 'running' \
                     AND lease_until < ",
                    pg_now!(),
                    " LIMIT 200"
                );
                sqlx::query_as(sql).fetch_all(pool).await?
            }
        };
        let mut handled = 0;
        for (id, attempts, max_attempts, cancel_requested) in expired {
            let next = after_lease_expiry(attempts, max_attempts, cancel_requested);
            let (status, error) = match next {
                Next::Retry(_) => (JobStatus::Queued, format!("attempt {attempts}: the worker stopped heartbeating")),
                Next::Finish(JobStatus::Cancelled) => (JobStatus::Cancelled, "cancelled".to_owned()),
                Next::Finish(status) => (status, lease_expired_error(attempts)),
            };
            // Guarded by the same conditions that selected it: a heartbeat that got in first wins.
            let n = match &self.db {
                Db::Sqlite(pool) => {
                    let sql = concat!(
                        "UPDATE jobs SET status = ?3, error = ?4, worker_id = NULL, lease_until = NULL, \
                         run_at = ",
                        sqlite_now!(),
                        ", finished_at = CASE WHEN ?3 = 'queued' THEN NULL ELSE ",
                        sqlite_now!(),
                        " END WHERE id = ?1 AND attempts = ?2 AND status = 'running' AND lease_until < ",
                        sqlite_now!()
                    );
                    sqlx::query(sql)
                        .bind(&id)
                        .bind(attempts)
                        .bind(status.as_str())
                        .bind(&error)
                        .execute(pool)
                        .await?
                        .rows_affected()
                }
                Db::Postgres(pool) => {
                    let sql = concat!(
                        "WITH t AS (SELECT ",
                        pg_now!(),
                        " AS now) UPDATE jobs SET status = $3, error = $4, worker_id = NULL, lease_until = NULL, \
                         run_at = t.now, finished_at = CASE WHEN $3 = 'queued' THEN NULL ELSE t.now END \
                         FROM t WHERE id = $1 AND attempts = $2 AND status = 'running' AND lease_until < t.now"
                    );
                    sqlx::query(sql)
                        .bind(&id)
                        .bind(attempts)
                        .bind(status.as_str())
                        .bind(&error)
                        .execute(pool)
                        .await?
                        .rows_affected()
                }
            };
            if n == 0 {
                continue;
            }
            handled += 1;
            tracing::warn!(job_id = %id, attempt = attempts, next = %status, "job lease expired");
            let event = if status.is_terminal() {
                JobEvent::Done { job_id: id, status }
            } else {
                JobEvent::Enqueued { job_id: id, kind: String::new() }
            };
            self.publish(event).await?;
        }
        Ok(handled)
    }

    /// Retention: deletes jobs that finished more than `age` ago, and their blobs (everything
    /// under `jobs/<id>/`). Blobs go first, so a crash in between leaves a row to retry, never
    /// orphaned blobs. Returns how many jobs were deleted.
    pub async fn cleanup(&self, age: Duration, blobs: Option<&dyn BlobStore>) -> Result<usize, JobsError> {
        let ids: Vec<String> = match &self.db {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ",
                    sqlite_now!(),
                    " - ?1 ORDER BY finished_at LIMIT 500"
                );
                sqlx::query_scalar(sql).bind(ms(age)).fetch_all(pool).await?
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ",
                    pg_now!(),
                    " - $1 ORDER BY finished_at LIMIT 500"
                );
                sqlx::query_scalar(sql).bind(ms(age)).fetch_all(pool).await?
            }
        };
        if ids.is_empty() {
            return Ok(0);
        }
        if let Some(blobs) = blobs {
            for id in &ids {
                delete_prefix(blobs, &blob_prefix(id)).await?;
            }
        }
        let n = match &self.db {
            Db::Sqlite(pool) => sqlx::query(
                "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?1)) AND finished_at IS NOT NULL",
            )
            .bind(kinds_json(&ids))
            .execute(pool)
            .await?
            .rows_affected(),
            Db::Postgres(pool) => sqlx::query("DELETE FROM jobs WHERE id = ANY($1) AND finished_at IS NOT NULL")
                .bind(&ids)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Jobs per status (diagnostics, metrics).
    pub async fn counts(&self) -> Result<Vec<(JobStatus, i64)>, JobsError> {
        let rows: Vec<(String, i64)> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status").fetch_all(pool).await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status").fetch_all(pool).await?
            }
        };
        rows.into_iter()
            .map(|(s, n)| s.parse().map(|s| (s, n)).map_err(|e| JobsError::Corrupt(format!("{e}"))))
            .collect()
    }
}

async fn delete_prefix(blobs: &dyn BlobStore, prefix: &str) -> Result<(), JobsError> {
    let keys: Vec<String> = blobs.list(prefix).map_ok(|e| e.key).try_collect().await?;
    for key in keys {
        blobs.delete(&key).await?;
    }
    Ok(())
}

fn sqlite_job(row: &SqliteRow) -> Result<Job, JobsError> {
    Ok(job_from_row!(row))
}

fn pg_job(row: &PgRow) -> Result<Job, JobsError> {
    Ok(job_from_row!(row))
}

/// Which pool, for callers that need dialect-specific SQL of their own (tests, benchmarks).
pub enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

impl Queue {
    pub fn pool(&self) -> Pool<'_> {
        match &self.db {
            Db::Sqlite(p) => Pool::Sqlite(p),
            Db::Postgres(p) => Pool::Postgres(p),
        }
    }
}
