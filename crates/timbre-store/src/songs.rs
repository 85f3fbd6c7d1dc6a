//! The `songs` table: uploaded songs and their analyses (written by the `analyze_song` job).
//! One method per statement, each with its SQLite and PostgreSQL text side by side.

use serde::Serialize;
use sqlx::Row as _;

use crate::db::{Db, DbError};

/// A song row, without its analysis (which can be tens of kilobytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Song {
    pub id: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: i64,
    #[serde(skip)]
    pub original_key: String,
    pub job_id: Option<String>,
    pub duration: Option<f64>,
    pub bpm: Option<f64>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub analyzed_at: Option<i64>,
}

/// What `POST /v1/songs` stores before the job runs.
#[derive(Debug, Clone)]
pub struct NewSong {
    pub id: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: i64,
    pub original_key: String,
    pub job_id: String,
}

macro_rules! columns {
    () => {
        "id, filename, content_type, bytes, original_key, job_id, duration, bpm, created_at, analyzed_at"
    };
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

macro_rules! song_from_row {
    ($row:expr) => {{
        let row = $row;
        Song {
            id: row.try_get("id")?,
            filename: row.try_get("filename")?,
            content_type: row.try_get("content_type")?,
            bytes: row.try_get("bytes")?,
            original_key: row.try_get("original_key")?,
            job_id: row.try_get("job_id")?,
            duration: row.try_get("duration")?,
            bpm: row.try_get("bpm")?,
            created_at: row.try_get("created_at")?,
            analyzed_at: row.try_get("analyzed_at")?,
        }
    }};
}

impl Db {
    pub async fn song_insert(&self, s: &NewSong) -> Result<Song, DbError> {
        let created = now_ms();
        match self {
            Db::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO songs (id, filename, content_type, bytes, original_key, job_id, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .bind(&s.id)
                .bind(&s.filename)
                .bind(&s.content_type)
                .bind(s.bytes)
                .bind(&s.original_key)
                .bind(&s.job_id)
                .bind(created)
                .execute(pool)
                .await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO songs (id, filename, content_type, bytes, original_key, job_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.id)
                .bind(&s.filename)
                .bind(&s.content_type)
                .bind(s.bytes)
                .bind(&s.original_key)
                .bind(&s.job_id)
                .bind(created)
                .execute(pool)
                .await?;
            }
        }
        Ok(Song {
            id: s.id.clone(),
            filename: s.filename.clone(),
            content_type: s.content_type.clone(),
            bytes: s.bytes,
            original_key: s.original_key.clone(),
            job_id: Some(s.job_id.clone()),
            duration: None,
            bpm: None,
            created_at: created,
            analyzed_at: None,
        })
    }

    pub async fn song_get(&self, id: &str) -> Result<Option<Song>, DbError> {
        Ok(match self {
            Db::Sqlite(pool) => {
                let sql = concat!("SELECT ", columns!(), " FROM songs WHERE id = ?1");
                match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                    Some(row) => Some(song_from_row!(row)),
                    None => None,
                }
            }
            Db::Postgres(pool) => {
                let sql = concat!("SELECT ", columns!(), " FROM songs WHERE id = $1");
                match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                    Some(row) => Some(song_from_row!(row)),
                    None => None,
                }
            }
        })
    }

    /// Newest first; `before` is the (created_at, id) of the last song of the previous page.
    pub async fn song_list(&self, limit: i64, before: Option<(i64, String)>) -> Result<Vec<Song>, DbError> {
        let (at, id) = before.unwrap_or((i64::MAX, String::new()));
        let mut out = Vec::new();
        match self {
            Db::Sqlite(pool) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM songs WHERE created_at < ?1 OR (created_at = ?1 AND id < ?2) \
                     ORDER BY created_at DESC, id DESC LIMIT ?3"
                );
                let unbounded = id.is_empty();
                let rows = sqlx::query(sql)
                    .bind(at)
                    .bind(if unbounded { "\u{10FFFF}".to_string() } else { id })
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                for row in rows {
                    out.push(song_from_row!(row));
                }
            }
            Db::Postgres(pool) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM songs WHERE created_at < $1 OR (created_at = $1 AND id < $2) \
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                );
                let unbounded = id.is_empty();
                let rows = sqlx::query(sql)
                    .bind(at)
                    .bind(if unbounded { "\u{10FFFF}".to_string() } else { id })
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                for row in rows {
                    out.push(song_from_row!(row));
                }
            }
        }
        Ok(out)
    }

    /// The stored analysis JSON, once the job has written it.
    pub async fn song_analysis(&self, id: &str) -> Result<Option<String>, DbError> {
        Ok(match self {
            Db::Sqlite(pool) => sqlx::query_scalar::<_, Option<String>>("SELECT analysis FROM songs WHERE id = ?1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .flatten(),
            Db::Postgres(pool) => {
                sqlx::query_scalar::<_, Option<String>>("SELECT analysis::text FROM songs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                    .flatten()
            }
        })
    }

    /// Stores a finished analysis; false when the song was deleted meanwhile.
    pub async fn song_set_analysis(&self, id: &str, analysis: &str, duration: f64, bpm: f64) -> Result<bool, DbError> {
        let now = now_ms();
        let done = match self {
            Db::Sqlite(pool) => {
                sqlx::query("UPDATE songs SET analysis = ?2, duration = ?3, bpm = ?4, analyzed_at = ?5 WHERE id = ?1")
                    .bind(id)
                    .bind(analysis)
                    .bind(duration)
                    .bind(bpm)
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Db::Postgres(pool) => sqlx::query(
                "UPDATE songs SET analysis = $2::jsonb, duration = $3, bpm = $4, analyzed_at = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(analysis)
            .bind(duration)
            .bind(bpm)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(done > 0)
    }

    /// Deletes the row; false when there was none.
    pub async fn song_delete(&self, id: &str) -> Result<bool, DbError> {
        let done = match self {
            Db::Sqlite(pool) => {
                sqlx::query("DELETE FROM songs WHERE id = ?1").bind(id).execute(pool).await?.rows_affected()
            }
            Db::Postgres(pool) => {
                sqlx::query("DELETE FROM songs WHERE id = $1").bind(id).execute(pool).await?.rows_affected()
            }
        };
        Ok(done > 0)
    }
}
