//! SQL fragments as macros, so whole statements are `concat!`-ed into `&'static str` (what
//! sqlx 0.9 accepts without `AssertSqlSafe`) and each dialect's statement reads in one place.

/// Now, in Unix milliseconds of the database clock.
macro_rules! pg_now {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

macro_rules! sqlite_now {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

/// The columns a [`crate::Job`] is read from; JSON columns come back as text on PostgreSQL.
macro_rules! pg_cols {
    () => {
        "jobs.id, jobs.kind, jobs.payload::text AS payload, jobs.status, jobs.priority, jobs.attempts, \
         jobs.max_attempts, jobs.run_at, jobs.lease_until, jobs.worker_id, jobs.cancel_requested, \
         jobs.progress_stage, jobs.progress_fraction, jobs.progress_message, jobs.result::text AS result, \
         jobs.error, jobs.idempotency_key, jobs.created_at, jobs.started_at, jobs.finished_at"
    };
}

macro_rules! sqlite_cols {
    () => {
        "id, kind, payload, status, priority, attempts, max_attempts, run_at, lease_until, worker_id, \
         cancel_requested, progress_stage, progress_fraction, progress_message, result, error, \
         idempotency_key, created_at, started_at, finished_at"
    };
}

/// Builds a [`crate::Job`] from a row of either dialect (the column names and Rust types agree;
/// only the row type differs, hence a macro rather than a generic function with a page of bounds).
macro_rules! job_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        let status: String = row.try_get("status")?;
        let payload: String = row.try_get("payload")?;
        let result: Option<String> = row.try_get("result")?;
        let stage: Option<String> = row.try_get("progress_stage")?;
        let fraction: Option<f64> = row.try_get("progress_fraction")?;
        let message: Option<String> = row.try_get("progress_message")?;
        let id: String = row.try_get("id")?;
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| crate::queue::JobsError::Corrupt(format!("job {id}: {what}: {e}"));
        crate::model::Job {
            kind: row.try_get("kind")?,
            payload: serde_json::from_str(&payload).map_err(|e| corrupt("payload", &e))?,
            status: status.parse().map_err(|e| corrupt("status", &e))?,
            priority: row.try_get("priority")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_at: row.try_get("run_at")?,
            lease_until: row.try_get("lease_until")?,
            worker_id: row.try_get("worker_id")?,
            cancel_requested: row.try_get("cancel_requested")?,
            progress: stage.map(|stage| crate::model::Progress { stage, fraction: fraction.unwrap_or(0.0), message }),
            result: result.map(|r| serde_json::from_str(&r)).transpose().map_err(|e| corrupt("result", &e))?,
            error: row.try_get("error")?,
            idempotency_key: row.try_get("idempotency_key")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            id,
        }
    }};
}

pub(crate) use {job_from_row, pg_cols, pg_now, sqlite_cols, sqlite_now};
