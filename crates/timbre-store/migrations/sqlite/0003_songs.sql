-- SQLite dialect. migrations/postgres/ holds the same versions for PostgreSQL: add both together.

-- Songs uploaded for analysis (POST /v1/songs). The original file lives in the blob store under
-- `original_key`; the analysis (JSON) is written here by the `analyze_song` job, the waveform
-- peaks beside the original. Times are Unix milliseconds, like the jobs table.
CREATE TABLE songs (
    id            TEXT PRIMARY KEY NOT NULL,
    filename      TEXT,
    content_type  TEXT,
    bytes         INTEGER NOT NULL CHECK (bytes >= 0),
    original_key  TEXT NOT NULL,
    -- The analyze_song job that fills `analysis`; its status is the song's while it runs.
    job_id        TEXT,
    analysis      TEXT,
    duration      REAL,
    bpm           REAL,
    created_at    INTEGER NOT NULL,
    analyzed_at   INTEGER
);

CREATE INDEX songs_by_created ON songs (created_at DESC, id DESC);
