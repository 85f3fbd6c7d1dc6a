-- PostgreSQL dialect. migrations/sqlite/ holds the same versions for SQLite: add both together.

-- Songs uploaded for analysis (POST /v1/songs). The original file lives in the blob store under
-- `original_key`; the analysis (JSON) is written here by the `analyze_song` job, the waveform
-- peaks beside the original. Times are Unix milliseconds, like the jobs table.
CREATE TABLE songs (
    id            TEXT PRIMARY KEY,
    filename      TEXT,
    content_type  TEXT,
    bytes         BIGINT NOT NULL CHECK (bytes >= 0),
    original_key  TEXT NOT NULL,
    -- The analyze_song job that fills `analysis`; its status is the song's while it runs.
    job_id        TEXT,
    analysis      JSONB,
    duration      DOUBLE PRECISION,
    bpm           DOUBLE PRECISION,
    created_at    BIGINT NOT NULL,
    analyzed_at   BIGINT
);

CREATE INDEX songs_by_created ON songs (created_at DESC, id DESC);
