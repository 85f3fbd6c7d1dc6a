-- SQLite dialect. migrations/postgres/ holds the same versions for PostgreSQL: add both together.

-- Index of stored blobs, for capabilities that reference blobs from rows (songs, jobs, imports)
-- and for accounting. The blob store itself keeps its metadata next to the bytes.
CREATE TABLE blobs (
    key          TEXT PRIMARY KEY NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    content_type TEXT NOT NULL,
    sha256       TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
    -- RFC 3339 UTC with milliseconds, so text order is time order.
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX blobs_created_at ON blobs (created_at);

-- Small server-wide settings and markers (schema facts, first-run flags, …).
CREATE TABLE meta (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
