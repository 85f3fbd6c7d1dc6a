//! Storage shared by every timbre capability: a blob store (a local directory or any S3-compatible
//! bucket, through `object_store`) and a database (SQLite file by default, PostgreSQL for
//! scale-out, through `sqlx`).
//!
//! This crate knows nothing of the server's `Config`: the caller fills [`StoreSettings`] (the
//! server maps its configuration onto it) so the dependency points one way only.

pub mod blob;
pub mod db;
pub mod songs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use blob::{
    BlobBody, BlobEntry, BlobError, BlobMeta, BlobStore, ByteStream, ObjectBlobStore, S3Settings, reader_stream,
    validate_key,
};
pub use db::{Db, DbError, DbKind, redact_url};
pub use songs::{NewSong, Song};

/// What the storage layer needs to know, filled by the caller (the server maps its `Config`).
#[derive(Clone)]
pub struct StoreSettings {
    /// Root of the embedded deployment: `<data_dir>/blobs` holds local blobs and
    /// `<data_dir>/timbre.db` the SQLite database, each used only when no remote one is set.
    pub data_dir: PathBuf,
    /// `postgres://…`/`postgresql://…` for PostgreSQL, `sqlite:…` for an explicit SQLite file,
    /// `None` for `<data_dir>/timbre.db`. Never logged unredacted.
    pub database_url: Option<String>,
    /// `Some` stores blobs in S3 (or MinIO, R2, …) instead of `<data_dir>/blobs`.
    pub s3: Option<S3Settings>,
    /// How many times to try reaching the database at start before giving up (at least 1).
    pub connect_attempts: u32,
    /// Wait after the first failed attempt; doubles after each further one (capped at 30 s).
    pub connect_backoff: Duration,
}

impl StoreSettings {
    /// Embedded defaults under `data_dir`: SQLite, local blobs, 5 attempts from 500 ms.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            s3: None,
            connect_attempts: 5,
            connect_backoff: Duration::from_millis(500),
        }
    }

    /// The blob store these settings describe: S3 when `s3` is set, else `<data_dir>/blobs`.
    pub fn blob_store(&self) -> Result<Arc<dyn BlobStore>, BlobError> {
        let store = match &self.s3 {
            Some(s3) => ObjectBlobStore::s3(s3)?,
            None => ObjectBlobStore::local(self.data_dir.join("blobs"))?,
        };
        Ok(Arc::new(store))
    }
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("s3", &self.s3)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_backoff", &self.connect_backoff)
            .finish()
    }
}

/// Either half of the storage layer failed to open.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The opened storage layer: what capabilities, jobs and workers share.
#[derive(Debug, Clone)]
pub struct Store {
    pub blobs: Arc<dyn BlobStore>,
    pub db: Db,
}

impl Store {
    /// Opens the blob store, connects to the database (retrying as configured) and applies the
    /// pending migrations.
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let blobs = settings.blob_store()?;
        let db = Db::connect_with_retry(
            settings.database_url.as_deref(),
            &settings.data_dir,
            settings.connect_attempts,
            settings.connect_backoff,
        )
        .await?;
        db.migrate().await?;
        Ok(Self { blobs, db })
    }
}
