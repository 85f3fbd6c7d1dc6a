-- SQLite dialect. migrations/postgres/ holds the same versions for PostgreSQL: add both together.

-- The durable job queue (crates/timbre-jobs). Times are Unix milliseconds (INTEGER): claims and
-- lease checks compare them with the database clock, `unixepoch('subsec')`.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority          INTEGER NOT NULL DEFAULT 0,
    -- Claims so far; a claim counts even when its worker dies (the lease then expires).
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    -- Not claimable before this (retry backoff, delayed jobs).
    run_at            INTEGER NOT NULL,
    -- While running: the claim is the worker's until then; heartbeats extend it.
    lease_until       INTEGER,
    worker_id         TEXT,
    -- DELETE on a running job sets this; the worker's handler sees its token cancelled.
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    progress_stage    TEXT,
    progress_fraction REAL,
    progress_message  TEXT,
    result            TEXT,
    error             TEXT,
    idempotency_key   TEXT UNIQUE,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
-- What a claim scans: queued jobs by priority, then due time.
CREATE INDEX jobs_claimable ON jobs (priority DESC, run_at, id) WHERE status = 'queued';
-- What the lease reaper scans.
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
-- Retention cleanup.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Listing by status and kind, newest first.
CREATE INDEX jobs_status_kind ON jobs (status, kind, id);
CREATE INDEX jobs_kind ON jobs (kind, id);
