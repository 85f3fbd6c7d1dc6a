-- PostgreSQL dialect. migrations/sqlite/ holds the same versions for SQLite: add both together.

-- Index of stored blobs, for capabilities that reference blobs from rows (songs, jobs, imports)
-- and for accounting. The blob store itself keeps its metadata next to the bytes.
CREATE TABLE blobs (
    key          TEXT PRIMARY KEY,
    size         BIGINT NOT NULL CHECK (size >= 0),
    content_type TEXT NOT NULL,
    sha256       TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX blobs_created_at ON blobs (created_at);

-- Small server-wide settings and markers (schema facts, first-run flags, …).
CREATE TABLE meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
