//! One blob-store behaviour suite, run against the local backend (a temporary directory) and a
//! real S3 server (s3s-fs, started per test; `scripts/install-test-tools` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};
use timbre_store::{BlobError, BlobStore, ByteStream, ObjectBlobStore, StoreSettings};

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

async fn keys(store: &dyn BlobStore, prefix: &str) -> BTreeSet<String> {
    store.list(prefix).map_ok(|entry| entry.key).try_collect().await.unwrap()
}

/// `len` pseudo-random bytes in 64 KiB chunks, generated as they are pulled (never all in
/// memory), failing after `fail_after` bytes when set.
fn generated_body(len: usize, fail_after: Option<usize>) -> ByteStream {
    const CHUNK: usize = 64 * 1024;
    let start = Some((0usize, 0x2545_f491_4f6c_dd1d_u64));
    stream::unfold(start, move |state| async move {
        let (sent, mut rng) = state?;
        if fail_after.is_some_and(|limit| sent >= limit) {
            let err = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away");
            return Some((Err(err), None));
        }
        if sent >= len {
            return None;
        }
        let n = CHUNK.min(len - sent);
        let mut chunk = Vec::with_capacity(n + 8);
        while chunk.len() < n {
            // xorshift64: cheap, deterministic, incompressible.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            chunk.extend_from_slice(&rng.to_le_bytes());
        }
        chunk.truncate(n);
        Some((Ok(Bytes::from(chunk)), Some((sent + n, rng))))
    })
    .boxed()
}

/// sha256 and length of what `generated_body(len, None)` yields.
async fn generated_digest(len: usize) -> (String, u64) {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = generated_body(len, None);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (format!("{:x}", hasher.finalize()), size)
}

async fn round_trip(store: &dyn BlobStore) {
    let bytes = Bytes::from_static(b"RIFF....WAVEfmt fake audio");
    let put = store.put("songs/1/mix.wav", bytes.clone(), "audio/wav").await.unwrap();
    assert_eq!(put.key, "songs/1/mix.wav");
    assert_eq!(put.size, bytes.len() as u64);
    assert_eq!(put.content_type, "audio/wav");
    assert_eq!(put.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    let age = SystemTime::now().duration_since(put.created).unwrap_or_default();
    assert!(age < Duration::from_secs(60), "created {age:?} ago");

    // head reports exactly what put returned: content type and size were recorded.
    assert_eq!(store.head("songs/1/mix.wav").await.unwrap(), put);

    let body = store.get("songs/1/mix.wav").await.unwrap();
    assert_eq!(body.meta, put);
    let chunks: Vec<Bytes> = body.stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), bytes.to_vec());

    let (meta, read) = store.get_bytes("songs/1/mix.wav").await.unwrap();
    assert_eq!((meta, read), (put.clone(), bytes));

    // Replacing a blob replaces its metadata too.
    let flac = Bytes::from_static(b"fLaC not really");
    let replaced = store.put("songs/1/mix.wav", flac.clone(), "audio/flac").await.unwrap();
    let head = store.head("songs/1/mix.wav").await.unwrap();
    assert_eq!(head, replaced);
    assert_eq!(head.content_type, "audio/flac");
    assert_eq!(head.size, flac.len() as u64);
    assert_eq!(head.sha256.as_deref(), Some(sha256_hex(&flac).as_str()));
    assert_eq!(store.get_bytes("songs/1/mix.wav").await.unwrap().1, flac);

    // An empty blob is a blob.
    let empty = store.put("empty", Bytes::new(), "text/plain").await.unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(store.get_bytes("empty").await.unwrap().1.len(), 0);
}

async fn streamed_upload(store: &dyn BlobStore) {
    // 20 MB: more than two 8 MiB parts, so the backend sees a real multipart upload.
    const LEN: usize = 20 * 1000 * 1000 + 123;
    let (digest, size) = generated_digest(LEN).await;
    let put = store.put_stream("imports/big.raw", generated_body(LEN, None), "audio/L16").await.unwrap();
    assert_eq!(put.size, size);
    assert_eq!(put.sha256.as_deref(), Some(digest.as_str()));
    assert_eq!(put.content_type, "audio/L16");
    assert_eq!(store.head("imports/big.raw").await.unwrap(), put);

    // Read back as a stream and hash on the fly.
    let body = store.get("imports/big.raw").await.unwrap();
    assert_eq!(body.meta.size, size);
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    let mut chunks = body.stream;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(read, size);
    assert_eq!(format!("{:x}", hasher.finalize()), digest);

    // A small stream takes the single-request path.
    let small = store.put_stream("imports/small.raw", generated_body(1000, None), "audio/L16").await.unwrap();
    let (small_digest, _) = generated_digest(1000).await;
    assert_eq!(small.sha256.as_deref(), Some(small_digest.as_str()));
    assert_eq!(store.get_bytes("imports/small.raw").await.unwrap().1.len(), 1000);

    // A body failing halfway through its second part aborts the upload: the blob that was there
    // stays, and a new key never appears.
    for key in ["imports/small.raw", "imports/never.raw"] {
        let err = store.put_stream(key, generated_body(LEN, Some(12 * 1000 * 1000)), "audio/L16").await.unwrap_err();
        assert!(matches!(err, BlobError::Source(_)), "{err}");
    }
    assert_eq!(store.head("imports/small.raw").await.unwrap(), small);
    assert!(matches!(store.head("imports/never.raw").await, Err(BlobError::NotFound { .. })));
    assert_eq!(
        keys(store, "imports").await,
        BTreeSet::from(["imports/big.raw".to_owned(), "imports/small.raw".to_owned()])
    );
}

async fn head_and_list(store: &dyn BlobStore) {
    for key in ["songs/1/a", "songs/1/b", "songs/10/a", "jobs/x/out.wav"] {
        store.put(key, Bytes::from(key.to_owned()), "application/octet-stream").await.unwrap();
    }
    let set = |keys: &[&str]| keys.iter().map(|k| (*k).to_owned()).collect::<BTreeSet<_>>();
    // Whole segments: songs/1 does not match songs/10.
    assert_eq!(keys(store, "songs/1").await, set(&["songs/1/a", "songs/1/b"]));
    assert_eq!(keys(store, "songs/1/").await, set(&["songs/1/a", "songs/1/b"]));
    assert_eq!(keys(store, "songs").await, set(&["songs/1/a", "songs/1/b", "songs/10/a"]));
    // Everything, and nothing but the blobs (no metadata sidecars).
    assert_eq!(keys(store, "").await, set(&["songs/1/a", "songs/1/b", "songs/10/a", "jobs/x/out.wav"]));
    assert!(keys(store, "nothing/here").await.is_empty());

    let listed: Vec<_> = store.list("jobs").try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, "jobs/x/out.wav".len() as u64);

    let head = store.head("songs/10/a").await.unwrap();
    assert_eq!(head.size, "songs/10/a".len() as u64);
    assert!(matches!(
        store.head("songs/2/a").await,
        Err(BlobError::NotFound { key }) if key == "songs/2/a"
    ));
}

async fn delete_then_not_found(store: &dyn BlobStore) {
    store.put("tmp/x", Bytes::from_static(b"x"), "text/plain").await.unwrap();
    store.put("tmp/y", Bytes::from_static(b"y"), "text/plain").await.unwrap();
    store.delete("tmp/x").await.unwrap();
    assert!(matches!(store.get("tmp/x").await, Err(BlobError::NotFound { .. })));
    assert!(matches!(store.get_bytes("tmp/x").await, Err(BlobError::NotFound { .. })));
    assert!(matches!(store.head("tmp/x").await, Err(BlobError::NotFound { .. })));
    // Deleting again is not an error; the neighbour is untouched.
    store.delete("tmp/x").await.unwrap();
    assert_eq!(keys(store, "tmp").await, BTreeSet::from(["tmp/y".to_owned()]));
    // A blob put again after deletion has fresh metadata (no stale sidecar confusion).
    let again = store.put("tmp/x", Bytes::from_static(b"xx"), "text/csv").await.unwrap();
    assert_eq!(store.head("tmp/x").await.unwrap(), again);
}

async fn invalid_keys_rejected(store: &dyn BlobStore) {
    for key in ["../x", "a/../../etc/passwd", "/abs", "a//b", "a\\b", "a/", "", "x\u{0}y"] {
        let is_invalid = |r: Result<(), BlobError>| matches!(r, Err(BlobError::InvalidKey { .. }));
        let put = store.put(key, Bytes::from_static(b"x"), "text/plain").await;
        assert!(is_invalid(put.map(drop)), "put {key:?}");
        let put_stream = store.put_stream(key, generated_body(10, None), "text/plain").await;
        assert!(is_invalid(put_stream.map(drop)), "put_stream {key:?}");
        assert!(is_invalid(store.get(key).await.map(drop)), "get {key:?}");
        assert!(is_invalid(store.head(key).await.map(drop)), "head {key:?}");
        assert!(is_invalid(store.delete(key).await), "delete {key:?}");
    }
    let listed: Vec<_> = store.list("../x").collect().await;
    assert!(matches!(listed.as_slice(), [Err(BlobError::InvalidKey { .. })]));
    assert!(matches!(store.delete_older_than("/abs", Duration::ZERO).await, Err(BlobError::InvalidKey { .. })));
    // Nothing was written anywhere.
    assert!(keys(store, "").await.is_empty());
}

async fn delete_older_than(store: &dyn BlobStore) {
    for key in ["ttl/old/1", "ttl/old/2", "kept/old"] {
        store.put(key, Bytes::from_static(b"old"), "text/plain").await.unwrap();
    }
    // S3 reports modification times in whole seconds: keep old and new well apart.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let boundary = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.put("ttl/new", Bytes::from_static(b"new"), "text/plain").await.unwrap();

    let age = boundary.elapsed().unwrap();
    assert_eq!(store.delete_older_than("ttl", age).await.unwrap(), 2);
    assert_eq!(keys(store, "ttl").await, BTreeSet::from(["ttl/new".to_owned()]));
    assert!(matches!(store.head("ttl/old/1").await, Err(BlobError::NotFound { .. })));
    // Outside the prefix: untouched although old.
    assert_eq!(store.get_bytes("kept/old").await.unwrap().1, "old");
    // Nothing is that old.
    assert_eq!(store.delete_older_than("", Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(keys(store, "").await.len(), 2);
}

/// A streamed upload sends its first parts while the body is still arriving (it never holds the
/// whole blob), and a failing body leaves no parts behind. `staged_bytes` reads the backend's
/// unfinished-upload storage.
async fn streaming_sends_parts_before_the_body_ends(store: Arc<dyn BlobStore>, staged_bytes: impl Fn() -> u64) {
    const FIRST: usize = 12 * 1000 * 1000;
    const LEN: usize = 20 * 1000 * 1000;
    assert_eq!(staged_bytes(), 0);
    // The body: 12 MB, then nothing until `release` fires, then the remaining 8 MB.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let head = generated_body(LEN, None).take(FIRST / (64 * 1024) + 1);
    let gate = stream::once(async move {
        let _ = released.await;
        Ok(Bytes::new())
    });
    let tail = generated_body(LEN, None).skip(FIRST / (64 * 1024) + 1);
    let body: ByteStream = head.chain(gate).chain(tail).boxed();
    let upload = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.put_stream("big/one", body, "audio/L16").await }
    });

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while staged_bytes() < 8 * 1024 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "no 8 MiB part reached the backend while the body was paused ({} bytes staged)",
            staged_bytes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!upload.is_finished());
    release.send(()).unwrap();
    let meta = upload.await.unwrap().unwrap();
    let (digest, size) = generated_digest(LEN).await;
    assert_eq!((meta.size, meta.sha256.as_deref()), (size, Some(digest.as_str())));
    assert_eq!(staged_bytes(), 0, "parts left behind after completing");

    // A failure after the first part was sent aborts the upload there and then.
    let err = store.put_stream("big/two", generated_body(LEN, Some(FIRST)), "audio/L16").await.unwrap_err();
    assert!(matches!(err, BlobError::Source(_)), "{err}");
    assert_eq!(staged_bytes(), 0, "parts left behind after a failed upload");
}

/// Each suite function, against each backend, as its own test.
macro_rules! blob_suite {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = timbre_store::ObjectBlobStore::local(dir.path().join("blobs")).unwrap();
                    super::$case(&store).await;
                }
            )*

            #[tokio::test]
            async fn streaming_sends_parts_before_the_body_ends() {
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path().join("blobs");
                let store = timbre_store::ObjectBlobStore::local(&root).unwrap();
                super::streaming_sends_parts_before_the_body_ends(
                    std::sync::Arc::new(store),
                    || crate::common::local_staged_bytes(&root),
                )
                .await;
            }
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = crate::common::S3Server::start();
                    let store = server.store();
                    super::$case(&store).await;
                }
            )*

            #[tokio::test]
            async fn streaming_sends_parts_before_the_body_ends() {
                let server = crate::common::S3Server::start();
                super::streaming_sends_parts_before_the_body_ends(
                    std::sync::Arc::new(server.store()),
                    || server.staged_bytes(),
                )
                .await;
            }
        }
    };
}

blob_suite!(
    round_trip,
    streamed_upload,
    head_and_list,
    delete_then_not_found,
    invalid_keys_rejected,
    delete_older_than,
);

#[tokio::test]
async fn local_store_lives_in_data_dir_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let store = StoreSettings::new(&data_dir).blob_store().unwrap();
    store.put("a/b.txt", Bytes::from_static(b"hi"), "text/plain").await.unwrap();
    let file = data_dir.join("blobs/objects/a/b.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"hi");
    // Deleting the last blob of a directory prunes the directory.
    store.delete("a/b.txt").await.unwrap();
    assert!(!data_dir.join("blobs/objects/a").exists());
}

/// Bytes replaced behind the store's back (a crash between the two writes of an upload) must not
/// be described by the old metadata.
#[tokio::test]
async fn stale_metadata_is_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobStore::local(dir.path()).unwrap();
    store.put("k", Bytes::from_static(b"original"), "audio/wav").await.unwrap();
    std::fs::write(dir.path().join("objects/k"), b"replaced!").unwrap();
    let head = store.head("k").await.unwrap();
    assert_eq!(head.size, 9);
    assert_eq!(head.content_type, timbre_store::blob::DEFAULT_CONTENT_TYPE);
    assert_eq!(head.sha256, None);
    assert_eq!(store.get_bytes("k").await.unwrap().1, "replaced!");
}

#[tokio::test]
async fn s3_settings_are_checked() {
    let mut settings = timbre_store::S3Settings { bucket: String::new(), ..Default::default() };
    assert!(matches!(ObjectBlobStore::s3(&settings), Err(BlobError::Config(_))));
    settings.bucket = "b".into();
    settings.access_key = Some("only-one".into());
    assert!(matches!(ObjectBlobStore::s3(&settings), Err(BlobError::Config(_))));
}
