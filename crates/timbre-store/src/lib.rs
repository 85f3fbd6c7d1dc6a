//! Storage shared by every timbre capability: a blob store (a local directory or any S3-compatible
//! bucket, through `object_store`).
//!
//! This crate knows nothing of the server's `Config`: the caller fills [`StoreSettings`] (the
//! server maps its configuration onto it) so the dependency points one way only.

pub mod blob;

use std::path::PathBuf;
use std::sync::Arc;

pub use blob::{
    BlobBody, BlobEntry, BlobError, BlobMeta, BlobStore, ByteStream, ObjectBlobStore, S3Settings,
    reader_stream, validate_key,
};

/// What the storage layer needs to know, filled by the caller (the server maps its `Config`).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Root of the embedded deployment: `<data_dir>/blobs` holds local blobs, used only when no
    /// S3 bucket is set.
    pub data_dir: PathBuf,
    /// `Some` stores blobs in S3 (or MinIO, R2, …) instead of `<data_dir>/blobs`.
    pub s3: Option<S3Settings>,
}

impl StoreSettings {
    /// Embedded defaults under `data_dir`: local blobs.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            s3: None,
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
