-- PostgreSQL dialect. migrations/sqlite/ holds the same versions for SQLite: add both together.

-- The durable job queue (crates/timbre-jobs). Times are Unix milliseconds (BIGINT), as on
-- SQLite, so one row type serves both; claims and lease checks compare them with the database
-- clock, never a worker's.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    payload           JSONB NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority          INTEGER NOT NULL DEFAULT 0,
    -- Claims so far; a claim counts even when its worker dies (the lease then expires).
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    -- Not claimable before this (retry backoff, delayed jobs).
    run_at            BIGINT NOT NULL,
    -- While running: the claim is the worker's until then; heartbeats extend it.
    lease_until       BIGINT,
    worker_id         TEXT,
    -- DELETE on a running job sets this; the worker's handler sees its token cancelled.
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    progress_stage    TEXT,
    progress_fraction DOUBLE PRECISION,
    progress_message  TEXT,
    result            JSONB,
    error             TEXT,
    idempotency_key   TEXT UNIQUE,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);
-- What a claim scans (FOR UPDATE SKIP LOCKED): queued jobs by priority, then due time.
CREATE INDEX jobs_claimable ON jobs (priority DESC, run_at, id) WHERE status = 'queued';
-- What the lease reaper scans.
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
-- Retention cleanup.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Listing by status and kind, newest first.
CREATE INDEX jobs_status_kind ON jobs (status, kind, id);
CREATE INDEX jobs_kind ON jobs (kind, id);
