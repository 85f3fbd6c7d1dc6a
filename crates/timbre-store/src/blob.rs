//! Blobs: uploaded audio, generated audio, imports, model caches — anything too big for a row.
//!
//! [`BlobStore`] is the seam capabilities use; [`ObjectBlobStore`] implements it over
//! `object_store` with either a local directory or an S3-compatible bucket, so the same code runs
//! embedded and scaled out.
//!
//! # Layout and metadata
//!
//! Inside the store root (the local directory, or the bucket), the bytes of key `k` live at
//! `objects/k` and its metadata in a JSON sidecar at `meta/k.json`:
//! `{"content_type", "sha256", "size", "etag"}`. Size and modification time always come from the
//! backend itself; the sidecar adds what backends do not record uniformly:
//!
//! - `LocalFileSystem` refuses object attributes (`put_opts` with attributes is "not
//!   implemented"), so the content type has nowhere else to go locally;
//! - the sha256 of a streamed upload is only known once the last byte is sent, after S3 has
//!   fixed the object's metadata at `CreateMultipartUpload`;
//! - metadata that lives next to the bytes survives a bucket copy or restore, needs no database
//!   transaction spanning two systems, and keeps this store usable without a database.
//!
//! The sidecar is written after the bytes and records the backend's ETag of the bytes it
//! describes; a reader that finds a different ETag (a crash between the two writes, or a racing
//! overwrite) ignores the stale sidecar and reports `application/octet-stream` and no sha256 rather
//! than wrong values. On S3 the content type is also set natively, so presigned URLs and CDNs serve
//! the right `Content-Type`. Deletion removes the sidecar first: a crash in between leaves bytes
//! without metadata, which TTL cleanup still finds, rather than an orphan sidecar nobody lists.

use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

/// Longest key accepted, in bytes (S3 allows 1024; the sidecar and prefixes need headroom).
pub const MAX_KEY_LEN: usize = 512;

/// Content type reported for a blob whose metadata is missing or stale.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Streamed uploads larger than this become multipart uploads in parts of this size (S3 wants
/// at least 5 MiB per part but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one streamed upload in flight at once: bounds its memory to about
/// `(PART_UPLOADS + 1) * PART_SIZE`.
const PART_UPLOADS: usize = 2;

/// Concurrent deletions in [`BlobStore::delete_older_than`].
const DELETE_CONCURRENCY: usize = 8;

/// A body to upload: chunks in order, `Err` aborts the upload. Build one from an `AsyncRead`
/// with [`reader_stream`], or from an HTTP body by mapping its errors to `std::io::Error`.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Wraps an `AsyncRead` (a file, a decoder's output, …) as a [`ByteStream`] for
/// [`BlobStore::put_stream`], read in 64 KiB chunks.
pub fn reader_stream<R>(reader: R) -> ByteStream
where
    R: AsyncRead + Send + 'static,
{
    tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).boxed()
}

/// What is known about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    /// Bytes stored, as the backend reports them.
    pub size: u64,
    /// As given at upload; [`DEFAULT_CONTENT_TYPE`] when the metadata is missing or stale.
    pub content_type: String,
    /// Lower-case hex sha256 of the bytes, computed while uploading; `None` when the metadata is
    /// missing or stale.
    pub sha256: Option<String>,
    /// When the backend last wrote the bytes (what TTL cleanup compares against).
    pub created: SystemTime,
}

/// One listed blob: what a listing returns without reading each blob's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// A blob being read: its metadata, then its bytes as they arrive.
pub struct BlobBody {
    pub meta: BlobMeta,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobBody").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// Errors of the blob store. Backend errors name bucket and key, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found: {key}")]
    NotFound { key: String },
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("reading the upload failed: {0}")]
    Source(#[source] std::io::Error),
    #[error("blob store configuration: {0}")]
    Config(String),
    #[error("blob store backend: {0}")]
    Backend(#[source] object_store::Error),
}

impl BlobError {
    fn backend(key: &str, err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => Self::NotFound { key: key.to_owned() },
            other => Self::Backend(other),
        }
    }
}

/// The blob store capabilities use. Keys are `/`-separated paths (see [`validate_key`]).
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `bytes` under `key` (replacing any blob there) with its content type and sha256.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<BlobMeta, BlobError>;

    /// Stores a body of any length without holding it in memory: small bodies are sent in one
    /// request, larger ones as a multipart upload (parts of 8 MiB, two in flight). An error from
    /// `body` aborts the upload and leaves any previous blob under `key` in place.
    async fn put_stream(&self, key: &str, body: ByteStream, content_type: &str) -> Result<BlobMeta, BlobError>;

    /// Opens a blob for reading.
    async fn get(&self, key: &str) -> Result<BlobBody, BlobError>;

    /// Reads a whole blob into memory; for blobs known to be small.
    async fn get_bytes(&self, key: &str) -> Result<(BlobMeta, Bytes), BlobError> {
        let body = self.get(key).await?;
        let chunks: Vec<Bytes> = body.stream.try_collect().await?;
        let mut out = Vec::with_capacity(usize::try_from(body.meta.size).unwrap_or(0));
        for chunk in chunks {
            out.extend_from_slice(&chunk);
        }
        Ok((body.meta, Bytes::from(out)))
    }

    /// Metadata of a blob, without its bytes.
    async fn head(&self, key: &str) -> Result<BlobMeta, BlobError>;

    /// Removes a blob; removing a missing blob is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Blobs whose key starts with the whole segments of `prefix` (`songs/1` lists `songs/1/a`
    /// but not `songs/10/a`); `""` lists everything. Unordered.
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobEntry, BlobError>>;

    /// TTL cleanup: removes the blobs under `prefix` last written more than `age` ago and
    /// returns how many were removed.
    async fn delete_older_than(&self, prefix: &str, age: Duration) -> Result<u64, BlobError>;
}

/// Checks a key and converts it to an `object_store` path.
///
/// Accepted: 1 to [`MAX_KEY_LEN`] bytes of `/`-separated, non-empty segments. Rejected: a leading
/// `/`, empty segments (`a//b`, a trailing `/`), `.` and `..` segments, backslashes, control
/// characters, and `#` and `%` (the local backend treats a `#<digits>` suffix as an unfinished
/// upload and hides it, and `%` invites percent-decoding surprises between backends).
pub fn validate_key(key: &str) -> Result<Path, BlobError> {
    let invalid = |reason| Err(BlobError::InvalidKey { key: shorten(key), reason });
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("longer than 512 bytes");
    }
    if key.starts_with('/') {
        return invalid("starts with '/'");
    }
    if key.chars().any(char::is_control) {
        return invalid("contains a control character");
    }
    if key.contains('\\') {
        return invalid("contains a backslash");
    }
    if key.contains(['#', '%']) {
        return invalid("contains '#' or '%'");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("contains an empty segment"),
            "." | ".." => return invalid("contains a '.' or '..' segment"),
            _ => {}
        }
    }
    Path::parse(key).or_else(|_| invalid("rejected by the object store"))
}

/// A listing prefix: `""` for everything, else a key (a trailing `/` is allowed).
fn validate_prefix(prefix: &str) -> Result<Option<Path>, BlobError> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() && prefix.len() <= 1 {
        return Ok(None);
    }
    validate_key(trimmed).map(Some)
}

/// Keys can be long and hostile; error messages carry the first 80 characters.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_owned(),
    }
}

fn sidecar_path(key: &str) -> Result<Path, BlobError> {
    Path::parse(format!("{key}.json"))
        .map_err(|_| BlobError::InvalidKey { key: shorten(key), reason: "rejected by the object store" })
}

/// The JSON sidecar at `meta/<key>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    content_type: String,
    sha256: Option<String>,
    size: u64,
    /// Backend ETag of the bytes this sidecar describes.
    etag: Option<String>,
}

/// Connection settings of an S3-compatible bucket (AWS, MinIO, R2, …).
#[derive(Clone, Default)]
pub struct S3Settings {
    pub bucket: String,
    /// `None`: `us-east-1` (R2 wants `auto`).
    pub region: Option<String>,
    /// `S3_ENDPOINT_URL` for non-AWS services; requests are then path-style
    /// (`<endpoint>/<bucket>/<key>`), which MinIO, R2 and test servers all accept.
    pub endpoint: Option<String>,
    /// Both keys, or neither to use the instance or pod credentials of the environment.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Permit a plain `http://` endpoint (local MinIO, tests).
    pub allow_http: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// [`BlobStore`] over an `object_store` backend (see the module docs for the layout).
pub struct ObjectBlobStore {
    objects: Arc<dyn ObjectStore>,
    meta: Arc<dyn ObjectStore>,
    /// Whether the backend stores a native `Content-Type` (S3 does, `LocalFileSystem` refuses).
    native_content_type: bool,
    /// `local:<dir>` or `s3://<bucket>`, for logs and `Debug`.
    location: String,
}

impl fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlobStore").field("location", &self.location).finish_non_exhaustive()
    }
}

impl ObjectBlobStore {
    /// Blobs in the directory `root` (created if missing), e.g. `<data_dir>/blobs`.
    pub fn local(root: impl AsRef<FsPath>) -> Result<Self, BlobError> {
        let root = root.as_ref();
        for sub in ["objects", "meta"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| BlobError::Config(format!("cannot create {}: {e}", root.join(sub).display())))?;
        }
        let fs = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| BlobError::Config(format!("blob directory {}: {e}", root.display())))?
            // Deleting the last blob of a job removes its now-empty directories too.
            .with_automatic_cleanup(true);
        Ok(Self::over(Arc::new(fs), false, format!("local:{}", root.display())))
    }

    /// Blobs in an S3-compatible bucket. Builds the client only; nothing is contacted yet.
    pub fn s3(settings: &S3Settings) -> Result<Self, BlobError> {
        if settings.bucket.is_empty() {
            return Err(BlobError::Config("S3 bucket name is empty".into()));
        }
        // reqwest is built with `rustls-no-provider`: the process-wide provider must be ring
        // (the server installs it too; a provider already installed is left alone).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        match (&settings.access_key, &settings.secret_key) {
            (Some(access), Some(secret)) => {
                builder = builder.with_access_key_id(access).with_secret_access_key(secret);
            }
            (None, None) => {}
            _ => {
                return Err(BlobError::Config("S3 access key and secret key must be set together".into()));
            }
        }
        let s3 = builder.build().map_err(|e| BlobError::Config(format!("S3 bucket {}: {e}", settings.bucket)))?;
        Ok(Self::over(Arc::new(s3), true, format!("s3://{}", settings.bucket)))
    }

    fn over(root: Arc<dyn ObjectStore>, native_content_type: bool, location: String) -> Self {
        Self {
            objects: Arc::new(PrefixStore::new(Arc::clone(&root), "objects")),
            meta: Arc::new(PrefixStore::new(root, "meta")),
            native_content_type,
            location,
        }
    }

    /// `local:<dir>` or `s3://<bucket>`.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn attributes(&self, content_type: &str) -> Attributes {
        let mut attributes = Attributes::new();
        if self.native_content_type {
            attributes.insert(Attribute::ContentType, content_type.to_owned().into());
        }
        attributes
    }

    /// Second half of every upload: record the sidecar, then read back the backend's view.
    async fn finish_put(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        size: u64,
        sha256: String,
        put: PutResult,
    ) -> Result<BlobMeta, BlobError> {
        let sidecar = Sidecar {
            content_type: content_type.to_owned(),
            sha256: Some(sha256.clone()),
            size,
            etag: put.e_tag.clone(),
        };
        let json =
            serde_json::to_vec(&sidecar).map_err(|e| BlobError::Config(format!("encoding blob metadata: {e}")))?;
        self.meta.put(&sidecar_path(key)?, PutPayload::from(json)).await.map_err(|e| BlobError::backend(key, e))?;
        let created = match self.objects.head(path).await {
            Ok(head) if head.e_tag == put.e_tag => head.last_modified.into(),
            // Overwritten (or deleted) by someone else already: ours was written just now.
            Ok(_) | Err(object_store::Error::NotFound { .. }) => SystemTime::now(),
            Err(e) => return Err(BlobError::backend(key, e)),
        };
        Ok(BlobMeta { key: key.to_owned(), size, content_type: content_type.to_owned(), sha256: Some(sha256), created })
    }

    async fn read_sidecar(&self, key: &str) -> Result<Option<Sidecar>, BlobError> {
        let bytes = match self.meta.get(&sidecar_path(key)?).await {
            Ok(result) => result.bytes().await,
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(sidecar) => Ok(Some(sidecar)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "ignoring unreadable blob metadata");
                    Ok(None)
                }
            },
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(BlobError::backend(key, e)),
        }
    }

    /// Combines the backend's metadata with the sidecar, if it describes these very bytes.
    fn describe(key: &str, object: &ObjectMeta, sidecar: Option<Sidecar>) -> BlobMeta {
        let (content_type, sha256) = match sidecar {
            Some(s) if s.etag == object.e_tag && s.size == object.size => (s.content_type, s.sha256),
            _ => (DEFAULT_CONTENT_TYPE.to_owned(), None),
        };
        BlobMeta { key: key.to_owned(), size: object.size, content_type, sha256, created: object.last_modified.into() }
    }
}

/// Holds a multipart upload in progress. Errors abort it explicitly (awaited); if the upload
/// future is dropped instead (the caller gave up, a client disconnected), `Drop` aborts it in the
/// background, so no half-written parts or staging files are left behind either way.
struct AbortOnDrop(Option<WriteMultipart>);

impl AbortOnDrop {
    async fn abort(&mut self) {
        if let Some(upload) = self.0.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(error = %e, "aborting a failed multipart upload failed");
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(upload) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "aborting an unfinished multipart upload failed");
                }
            });
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<BlobMeta, BlobError> {
        let path = validate_key(key)?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let options = PutOptions { attributes: self.attributes(content_type), ..PutOptions::default() };
        let put = self
            .objects
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(|e| BlobError::backend(key, e))?;
        self.finish_put(key, &path, content_type, size, sha256, put).await
    }

    async fn put_stream(&self, key: &str, mut body: ByteStream, content_type: &str) -> Result<BlobMeta, BlobError> {
        let path = validate_key(key)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut upload = AbortOnDrop(None);
        let sent = async {
            // Until PART_SIZE bytes have arrived the body may still fit in one plain PUT.
            let mut pending: Vec<Bytes> = Vec::new();
            let mut pending_len = 0usize;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(BlobError::Source)?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                if let Some(writer) = upload.0.as_mut() {
                    // Backpressure: at most PART_UPLOADS parts in flight.
                    writer.wait_for_capacity(PART_UPLOADS).await.map_err(|e| BlobError::backend(key, e))?;
                    writer.put(chunk);
                    continue;
                }
                pending_len += chunk.len();
                pending.push(chunk);
                if pending_len >= PART_SIZE {
                    let options = PutMultipartOptions {
                        attributes: self.attributes(content_type),
                        ..PutMultipartOptions::default()
                    };
                    let multipart = self
                        .objects
                        .put_multipart_opts(&path, options)
                        .await
                        .map_err(|e| BlobError::backend(key, e))?;
                    let mut writer = WriteMultipart::new_with_chunk_size(multipart, PART_SIZE);
                    for buffered in pending.drain(..) {
                        writer.put(buffered);
                    }
                    upload.0 = Some(writer);
                }
            }
            match upload.0.take() {
                Some(writer) => writer.finish().await,
                None => {
                    let options = PutOptions { attributes: self.attributes(content_type), ..PutOptions::default() };
                    self.objects.put_opts(&path, pending.into_iter().collect(), options).await
                }
            }
            .map_err(|e| BlobError::backend(key, e))
        }
        .await;
        let put = match sent {
            Ok(put) => put,
            Err(e) => {
                // Clean up now rather than in the background, so a failed upload leaves nothing.
                upload.abort().await;
                return Err(e);
            }
        };
        let sha256 = format!("{:x}", hasher.finalize());
        self.finish_put(key, &path, content_type, size, sha256, put).await
    }

    async fn get(&self, key: &str) -> Result<BlobBody, BlobError> {
        let path = validate_key(key)?;
        let (object, sidecar) = futures_util::future::join(self.objects.get(&path), self.read_sidecar(key)).await;
        let object = object.map_err(|e| BlobError::backend(key, e))?;
        let meta = Self::describe(key, &object.meta, sidecar?);
        let owned_key = key.to_owned();
        let stream = object.into_stream().map_err(move |e| BlobError::backend(&owned_key, e)).boxed();
        Ok(BlobBody { meta, stream })
    }

    async fn head(&self, key: &str) -> Result<BlobMeta, BlobError> {
        let path = validate_key(key)?;
        let (object, sidecar) = futures_util::future::join(self.objects.head(&path), self.read_sidecar(key)).await;
        let object = object.map_err(|e| BlobError::backend(key, e))?;
        Ok(Self::describe(key, &object, sidecar?))
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = validate_key(key)?;
        for (store, path) in [(&self.meta, sidecar_path(key)?), (&self.objects, path)] {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(BlobError::backend(key, e)),
            }
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<BlobEntry, BlobError>> {
        let prefix_path = match validate_prefix(prefix) {
            Ok(p) => p,
            Err(e) => return stream::once(async move { Err(e) }).boxed(),
        };
        let prefix = prefix.to_owned();
        self.objects
            .list(prefix_path.as_ref())
            .map(move |item| match item {
                Ok(object) => Ok(BlobEntry {
                    key: object.location.to_string(),
                    size: object.size,
                    modified: object.last_modified.into(),
                }),
                Err(e) => Err(BlobError::backend(&prefix, e)),
            })
            .boxed()
    }

    async fn delete_older_than(&self, prefix: &str, age: Duration) -> Result<u64, BlobError> {
        let Some(cutoff) = SystemTime::now().checked_sub(age) else {
            return Ok(0);
        };
        // Collect first, delete after: deleting (and pruning empty directories) while a local
        // listing walks them makes the walk trip over vanished directories.
        let expired: Vec<String> = self
            .list(prefix)
            .try_filter_map(|entry| async move { Ok((entry.modified < cutoff).then_some(entry.key)) })
            .try_collect()
            .await?;
        let removed = stream::iter(expired)
            .map(|key| async move { self.delete(&key).await })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
            .await?;
        if removed > 0 {
            tracing::info!(location = %self.location, prefix, removed, "removed expired blobs");
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for good in ["a", "songs/1/mix.wav", "a b/ü.flac", "x.y/z-_=+,;@!()"] {
            assert!(validate_key(good).is_ok(), "{good:?} should be accepted");
        }
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for bad in [
            "",
            "../x",
            "a/../b",
            "a/./b",
            "/abs",
            "a//b",
            "a/",
            "a\\b",
            "a\nb",
            "a\u{7f}b",
            "x#1",
            "50%",
            long.as_str(),
        ] {
            assert!(matches!(validate_key(bad), Err(BlobError::InvalidKey { .. })), "{bad:?} should be rejected");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn prefixes_allow_empty_and_trailing_slash() {
        assert!(validate_prefix("").unwrap().is_none());
        assert!(validate_prefix("/").unwrap().is_none());
        assert_eq!(validate_prefix("a/b/").unwrap().unwrap().as_ref(), "a/b");
        assert!(validate_prefix("a//").is_err());
        assert!(validate_prefix("../").is_err());
    }

    #[test]
    fn error_messages_shorten_long_keys() {
        let key = format!("{}\n", "k".repeat(400));
        let message = validate_key(&key).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn s3_settings_debug_hides_the_secret() {
        let settings = S3Settings {
            bucket: "b".into(),
            secret_key: Some("hunter2".into()),
            access_key: Some("AK".into()),
            ..S3Settings::default()
        };
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("AK"), "{debug}");
    }
}
