//! The Hugging Face client against a fake hub served on 127.0.0.1 inside each test: token
//! checks, gated and missing files, redirects to a "CDN" on another port, interrupted and
//! resumed downloads, checksum mismatches, the offline cache, and the registry integration.
//! Nothing here leaves the loopback interface.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use timbre_engines::hub::{EntryFile, HubClient, HubError, HubSettings, ModelEntry, RepoRef};
use timbre_engines::registry::check_files;
use timbre_engines::state::{ModelState, ModelStatus};
use timbre_engines::{Engine, Loader, Manifest, Registry};

const GOOD: &str = "hf_good_token_0123456789";
const BAD: &str = "hf_bad_token_9876543210";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "acme/tiny-audio";

fn sha256(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

/// Deterministic bytes, `n` long.
fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed).collect()
}

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
    auth: Option<String>,
    cdn: bool,
}

#[derive(Default)]
struct Switches {
    /// 401 without a token (a gated repo, as the hub answers anonymous requests).
    gated: bool,
    /// 403 even with the good token (license not accepted).
    forbidden: bool,
    /// The next body response drops the connection after this many bytes (one-shot).
    drop_after: Option<usize>,
    /// Serve bytes whose sha256 is not the ETag.
    wrong_body: bool,
    /// Answer 200 with the whole file to a Range request.
    ignore_range: bool,
    /// Sleep this long between 4 KiB chunks.
    slow: Option<Duration>,
    /// LFS style: the hub answers 302 to the "CDN" listener, metadata in X-Linked-* headers.
    lfs_redirect: bool,
    /// Leave out X-Repo-Commit.
    no_commit: bool,
    /// Send this ETag instead of the sha256.
    etag: Option<String>,
}

struct FakeHub {
    /// `org/repo/file` → content.
    files: HashMap<String, Vec<u8>>,
    switches: Mutex<Switches>,
    log: Mutex<Vec<Seen>>,
    cdn_port: Mutex<u16>,
}

impl FakeHub {
    fn new(files: &[(&str, Vec<u8>)]) -> Arc<Self> {
        Arc::new(Self {
            files: files.iter().map(|(p, b)| (format!("{REPO}/{p}"), b.clone())).collect(),
            switches: Mutex::new(Switches::default()),
            log: Mutex::new(Vec::new()),
            cdn_port: Mutex::new(0),
        })
    }
    fn set(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.switches.lock().unwrap());
    }
    fn log(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
    fn gets(&self) -> Vec<Seen> {
        self.log().into_iter().filter(|s| s.method == "GET" && !s.path.starts_with("/api/")).collect()
    }
    fn record(&self, method: &Method, path: String, headers: &HeaderMap, cdn: bool) {
        let h = |n: header::HeaderName| headers.get(n).map(|v| v.to_str().unwrap_or("?").to_string());
        self.log.lock().unwrap().push(Seen {
            method: method.to_string(),
            path,
            range: h(header::RANGE),
            auth: h(header::AUTHORIZATION),
            cdn,
        });
    }
}

async fn whoami(State(hub): State<Arc<FakeHub>>, method: Method, headers: HeaderMap) -> Response {
    hub.record(&method, "/api/whoami-v2".into(), &headers, false);
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if auth == Some(&format!("Bearer {GOOD}")) {
        ([(header::CONTENT_TYPE, "application/json")], r#"{"type":"user","name":"tester"}"#).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"Invalid credentials in Authorization header"}"#,
        )
            .into_response()
    }
}

async fn resolve(
    State(hub): State<Arc<FakeHub>>,
    UrlPath((org, repo, rev, file)): UrlPath<(String, String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    hub.record(&method, format!("/{org}/{repo}/resolve/{rev}/{file}"), &headers, false);
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let good = format!("Bearer {GOOD}");
    let repo_id = format!("{org}/{repo}");
    let error = |status: StatusCode, code: &str, message: String| {
        (status, [("x-error-code", code.to_string()), ("x-error-message", message)]).into_response()
    };
    if auth.is_some() && auth != Some(good.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "", "Invalid credentials in Authorization header".into());
    }
    let (gated, forbidden, lfs) = {
        let s = hub.switches.lock().unwrap();
        (s.gated, s.forbidden, s.lfs_redirect)
    };
    if gated && auth.is_none() {
        return error(
            StatusCode::UNAUTHORIZED,
            "GatedRepo",
            format!("Access to model {repo_id} is restricted. You must be authenticated to access it."),
        );
    }
    if forbidden {
        return error(
            StatusCode::FORBIDDEN,
            "GatedRepo",
            format!("Access to model {repo_id} is restricted and you are not in the authorized list."),
        );
    }
    if rev != "main" && rev != COMMIT {
        return error(StatusCode::NOT_FOUND, "RevisionNotFound", format!("Invalid rev id: {rev}"));
    }
    let key = format!("{repo_id}/{file}");
    let Some(bytes) = hub.files.get(&key) else {
        return error(StatusCode::NOT_FOUND, "EntryNotFound", format!("{file} does not exist on \"{rev}\""));
    };
    let etag = sha256(bytes);
    if lfs {
        let port = *hub.cdn_port.lock().unwrap();
        return (
            StatusCode::FOUND,
            [
                (header::LOCATION, format!("http://127.0.0.1:{port}/cdn/{key}")),
                (header::HeaderName::from_static("x-linked-etag"), format!("\"{etag}\"")),
                (header::HeaderName::from_static("x-linked-size"), bytes.len().to_string()),
                (header::HeaderName::from_static("x-repo-commit"), COMMIT.to_string()),
                (header::ETAG, "\"git-blob-id-of-the-pointer\"".to_string()),
            ],
        )
            .into_response();
    }
    serve_bytes(&hub, &method, &headers, bytes, &etag, true)
}

async fn cdn(
    State(hub): State<Arc<FakeHub>>,
    UrlPath(key): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    hub.record(&method, format!("/cdn/{key}"), &headers, true);
    match hub.files.get(&key) {
        Some(bytes) => {
            let etag = format!("cdn-{}", &sha256(bytes)[..8]);
            serve_bytes(&hub, &method, &headers, bytes, &etag, false)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve_bytes(
    hub: &FakeHub,
    method: &Method,
    headers: &HeaderMap,
    bytes: &[u8],
    etag: &str,
    hub_headers: bool,
) -> Response {
    let (no_commit, etag_override) = {
        let s = hub.switches.lock().unwrap();
        (s.no_commit, s.etag.clone())
    };
    let etag = etag_override.as_deref().unwrap_or(etag);
    let (drop_after, wrong, ignore_range, slow) = {
        let mut s = hub.switches.lock().unwrap();
        let drop_after = if *method == Method::GET { s.drop_after.take() } else { None };
        (drop_after, s.wrong_body, s.ignore_range, s.slow)
    };
    let mut body = bytes.to_vec();
    if wrong {
        body[0] ^= 0xff;
    }
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|_| !ignore_range);
    let mut resp =
        Response::builder().header(header::ETAG, format!("\"{etag}\"")).header(header::ACCEPT_RANGES, "bytes");
    if hub_headers && !no_commit {
        resp = resp.header("x-repo-commit", COMMIT);
    }
    let part = match start {
        Some(n) if n >= body.len() => {
            return resp
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", body.len()))
                .body(Body::empty())
                .unwrap();
        }
        Some(n) => {
            resp = resp
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {n}-{}/{}", body.len() - 1, body.len()));
            body[n..].to_vec()
        }
        None => body,
    };
    resp = resp.header(header::CONTENT_LENGTH, part.len());
    if *method == Method::HEAD {
        return resp.body(Body::empty()).unwrap();
    }
    let cut = drop_after.map_or(part.len(), |n| n.min(part.len()));
    let mut chunks: Vec<Result<Bytes, std::io::Error>> =
        part[..cut].chunks(4096).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    if drop_after.is_some() {
        chunks.push(Err(std::io::Error::other("fake hub drops the connection")));
    }
    let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let next = it.next()?;
        if let Some(pause) = slow {
            tokio::time::sleep(pause).await;
        }
        if next.is_err() {
            // Let the bytes before the cut reach the client, as on a real broken connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some((next, it))
    });
    resp.body(Body::from_stream(stream)).unwrap()
}

struct Server {
    endpoint: String,
    hub: Arc<FakeHub>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(hub: Arc<FakeHub>) -> Server {
        let app = Router::new()
            .route("/api/whoami-v2", get(whoami))
            .route("/{org}/{repo}/resolve/{rev}/{*file}", get(resolve))
            .route("/cdn/{*key}", get(cdn))
            .with_state(Arc::clone(&hub));
        let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *hub.cdn_port.lock().unwrap() = other.local_addr().unwrap().port();
        let endpoint = format!("http://{}", main.local_addr().unwrap());
        let tasks = [main, other]
            .into_iter()
            .map(|l| {
                let app = app.clone();
                tokio::spawn(async move {
                    axum::serve(l, app).await.unwrap();
                })
            })
            .collect();
        Server { endpoint, hub, tasks }
    }

    fn settings(&self, cache: &Path, token: Option<&str>) -> HubSettings {
        HubSettings {
            endpoint: self.endpoint.clone(),
            retry_backoff: Duration::from_millis(20),
            timeout: Duration::from_secs(10),
            offline: false,
            ..HubSettings::new(cache, token.map(str::to_string))
        }
    }

    fn client(&self, cache: &Path, token: Option<&str>) -> HubClient {
        HubClient::new(self.settings(cache, token)).unwrap()
    }

    fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// An endpoint where nothing listens.
async fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn repo() -> RepoRef {
    REPO.parse().unwrap()
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--acme--tiny-audio")
}

fn blob_names(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(repo_dir(cache).join("blobs")) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_verifies_caches_and_second_call_does_not_hit_the_hub() {
    let weights = payload(100_000, 1);
    let config = br#"{"sample_rate": 44100}"#.to_vec();
    let srv =
        Server::start(FakeHub::new(&[("model.safetensors", weights.clone()), ("sub/config.json", config.clone())]))
            .await;
    let cache = tempfile::tempdir().unwrap();
    let client = srv.client(cache.path(), Some(GOOD));

    let last = Mutex::new((0u64, None));
    let path = client
        .download(&repo(), "model.safetensors", |done, total| *last.lock().unwrap() = (done, total))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    assert_eq!(
        *last.lock().unwrap(),
        (weights.len() as u64, Some(weights.len() as u64)),
        "progress ends at done == total, and the total came from the hub"
    );
    let dir = repo_dir(cache.path());
    assert_eq!(path, dir.join("snapshots").join(COMMIT).join("model.safetensors"));
    assert_eq!(std::fs::read_link(&path).unwrap(), PathBuf::from(format!("../../blobs/{}", sha256(&weights))));
    assert_eq!(std::fs::read_to_string(dir.join("refs/main")).unwrap(), COMMIT);
    assert_eq!(blob_names(cache.path()), vec![sha256(&weights)]);

    let nested = client.download(&repo(), "sub/config.json", |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&nested).unwrap(), config);
    assert!(nested.ends_with(format!("snapshots/{COMMIT}/sub/config.json")));
    // The second file was asked for at the commit the first one resolved to.
    assert!(
        srv.hub.gets().iter().any(|s| s.path == format!("/{REPO}/resolve/{COMMIT}/sub/config.json")),
        "{:?}",
        srv.hub.log()
    );
    assert!(
        srv.hub.log().iter().all(|s| s.auth.as_deref() == Some(&format!("Bearer {GOOD}"))),
        "every request to the hub carries the token"
    );

    // Same client again: served from the cache without a single request.
    let before = srv.hub.log().len();
    let again = client.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(again, path);
    assert_eq!(srv.hub.log().len(), before, "cache hit must not hit the hub");

    // A new process (new client, same cache) asks only for metadata: one HEAD, no GET.
    let fresh = srv.client(cache.path(), Some(GOOD));
    let again = fresh.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(again, path);
    let new: Vec<Seen> = srv.hub.log()[before..].to_vec();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].method, "HEAD");

    // Pinned to the commit: no request at all, even from a new client.
    let pinned: RepoRef = format!("{REPO}@{COMMIT}").parse().unwrap();
    let before = srv.hub.log().len();
    let p = srv.client(cache.path(), None).download(&pinned, "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(p, path);
    assert_eq!(srv.hub.log().len(), before);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_token_accepts_rejects_and_reports_unreachable() {
    let srv = Server::start(FakeHub::new(&[])).await;
    let cache = tempfile::tempdir().unwrap();

    assert_eq!(srv.client(cache.path(), Some(GOOD)).validate_token().await.unwrap(), "tester");
    // Whitespace around a token (a trailing newline from a secrets file) is not part of it.
    assert_eq!(srv.client(cache.path(), Some(&format!("  {GOOD}\n"))).validate_token().await.unwrap(), "tester");

    let err = srv.client(cache.path(), Some(BAD)).validate_token().await.unwrap_err();
    assert!(matches!(err, HubError::BadToken { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("rejected the token"), "{msg}");
    assert!(msg.contains("HUGGING_FACE_HUB_TOKEN"), "{msg}");
    assert!(!msg.contains(BAD) && !format!("{err:?}").contains(BAD));

    let err = srv.client(cache.path(), None).validate_token().await.unwrap_err();
    assert!(matches!(err, HubError::NoToken), "{err:?}");

    let dead = dead_endpoint().await;
    let client =
        HubClient::new(HubSettings { endpoint: dead.clone(), ..HubSettings::new(cache.path(), Some(GOOD.into())) })
            .unwrap();
    match client.validate_token().await.unwrap_err() {
        HubError::Unreachable { endpoint, .. } => assert_eq!(endpoint, dead),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_repo_needs_a_good_token_and_an_accepted_license() {
    let srv = Server::start(FakeHub::new(&[("model.safetensors", payload(1000, 2))])).await;
    srv.hub.set(|s| s.gated = true);
    let cache = tempfile::tempdir().unwrap();

    let err = srv.client(cache.path(), None).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::TokenRequired { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(REPO) && msg.contains("HUGGING_FACE_HUB_TOKEN"), "{msg}");
    assert!(msg.contains("401"), "{msg}");

    let err = srv.client(cache.path(), Some(BAD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::BadToken { .. }), "{err:?}");
    assert!(!err.to_string().contains(BAD));

    srv.hub.set(|s| s.forbidden = true);
    let err = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::Forbidden { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("accept the license") && msg.contains(REPO), "{msg}");
    assert!(blob_names(cache.path()).is_empty());
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_is_not_found_naming_repo_and_file() {
    let srv = Server::start(FakeHub::new(&[("model.safetensors", payload(10, 3))])).await;
    let cache = tempfile::tempdir().unwrap();
    let err = srv.client(cache.path(), Some(GOOD)).download(&repo(), "nope.safetensors", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(REPO) && msg.contains("nope.safetensors"), "{msg}");
    assert!(msg.contains("404"), "{msg}");

    let err = srv
        .client(cache.path(), Some(GOOD))
        .download(&"acme/tiny-audio@v9".parse().unwrap(), "model.safetensors", |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revision `v9`"), "{err}");
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_download_resumes_with_a_range_request() {
    let weights = payload(50_000, 4);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();
    let cut = 12_288;
    srv.hub.set(|s| s.drop_after = Some(cut));

    // No automatic retry: the first call fails and leaves the partial file behind.
    let client = HubClient::new(HubSettings { retries: 0, ..srv.settings(cache.path(), Some(GOOD)) }).unwrap();
    let err = client.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    match &err {
        HubError::Interrupted { received, .. } => assert_eq!(*received, cut as u64),
        other => panic!("expected Interrupted, got {other:?}"),
    }
    let partial = repo_dir(cache.path()).join("blobs").join(format!("{}.incomplete", sha256(&weights)));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut as u64);

    // The next call (even from a new process) sends `Range: bytes=N-` and completes the file.
    let path = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    assert!(!partial.exists());
    let gets = srv.hub.gets();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range, None);
    assert_eq!(gets[1].range.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert_eq!(blob_names(cache.path()), vec![sha256(&weights)]);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_download_call_retries_and_resumes_by_itself() {
    let weights = payload(40_000, 5);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();
    srv.hub.set(|s| s.drop_after = Some(8192));
    let path = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    let ranges: Vec<_> = srv.hub.gets().into_iter().map(|s| s.range).collect();
    assert_eq!(ranges, vec![None, Some("bytes=8192-".to_string())]);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_ignores_range_restarts_from_zero() {
    let weights = payload(30_000, 6);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();
    srv.hub.set(|s| {
        s.drop_after = Some(10_000);
        s.ignore_range = true;
    });
    let path = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights, "200 to a Range request: start over");
    assert_eq!(srv.hub.gets().len(), 2);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_fails_and_leaves_nothing_behind() {
    let weights = payload(20_000, 7);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    srv.hub.set(|s| s.wrong_body = true);
    let cache = tempfile::tempdir().unwrap();
    let err = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    match &err {
        HubError::ChecksumMismatch { file, expected, actual } => {
            assert_eq!(file, "model.safetensors");
            assert_eq!(*expected, sha256(&weights));
            let mut served = weights.clone();
            served[0] ^= 0xff;
            assert_eq!(*actual, sha256(&served));
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    assert!(blob_names(cache.path()).is_empty(), "{:?}", blob_names(cache.path()));
    assert!(!repo_dir(cache.path()).join("snapshots").join(COMMIT).join("model.safetensors").exists());
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_use_of_the_cache() {
    let weights = payload(5_000, 8);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();
    let path = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    srv.stop();

    // The hub is gone: a new client falls back to the cached snapshot of `main`.
    let dead = dead_endpoint().await;
    let settings =
        |offline| HubSettings { endpoint: dead.clone(), offline, ..HubSettings::new(cache.path(), Some(GOOD.into())) };
    let client = HubClient::new(settings(false)).unwrap();
    let p = client.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(p, path);
    assert_eq!(std::fs::read(&p).unwrap(), weights);
    // A file that was never fetched cannot come from anywhere.
    let err = client.download(&repo(), "other.bin", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::Unreachable { .. }), "{err:?}");

    // HF_HUB_OFFLINE-style: the cache only, not even an attempt to connect.
    let client = HubClient::new(settings(true)).unwrap();
    assert_eq!(client.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap(), path);
    let err = client.download(&repo(), "other.bin", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    assert!(err.to_string().contains("other.bin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_hub_answers_no_commit_header_and_a_hostile_etag() {
    let weights = payload(3_000, 14);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();

    // Without X-Repo-Commit the snapshot is named after the revision, and still serves offline.
    srv.hub.set(|s| s.no_commit = true);
    let path = srv.client(cache.path(), None).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert!(path.ends_with("snapshots/main/model.safetensors"), "{path:?}");
    let offline = HubClient::new(HubSettings { offline: true, ..srv.settings(cache.path(), None) }).unwrap();
    assert_eq!(offline.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap(), path);

    // An ETag that would name a path outside blobs/ is refused before anything is written.
    let other = tempfile::tempdir().unwrap();
    srv.hub.set(|s| s.etag = Some("../../../escape".into()));
    let err = srv.client(other.path(), None).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("unusable ETag"), "{err}");
    assert!(!other.path().join("escape").exists());
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lfs_redirect_to_a_cdn_never_carries_the_token() {
    let weights = payload(70_000, 9);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    srv.hub.set(|s| {
        s.lfs_redirect = true;
        s.drop_after = Some(20_000);
    });
    let cache = tempfile::tempdir().unwrap();
    let path = srv.client(cache.path(), Some(GOOD)).download(&repo(), "model.safetensors", |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    // The etag came from X-Linked-Etag on the hub's 302, not from the CDN's own ETag.
    assert_eq!(blob_names(cache.path()), vec![sha256(&weights)]);
    let log = srv.hub.log();
    let (cdn, hub): (Vec<Seen>, Vec<Seen>) = log.into_iter().partition(|s| s.cdn);
    assert!(cdn.iter().all(|s| s.auth.is_none()), "{cdn:?}");
    assert!(hub.iter().all(|s| s.auth.is_some()), "{hub:?}");
    // The resumed request was redirected too and kept its Range header.
    let cdn_ranges: Vec<_> = cdn.iter().map(|s| s.range.clone()).collect();
    assert_eq!(cdn_ranges, vec![None, Some("bytes=20000-".to_string())]);
    assert!(hub.iter().any(|s| s.method == "HEAD"));
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_size_limit_are_refused() {
    let srv = Server::start(FakeHub::new(&[("model.safetensors", payload(10_000, 10))])).await;
    let cache = tempfile::tempdir().unwrap();
    let client = HubClient::new(HubSettings { max_bytes: 4096, ..srv.settings(cache.path(), Some(GOOD)) }).unwrap();
    let err = client.download(&repo(), "model.safetensors", |_, _| {}).await.unwrap_err();
    assert!(matches!(err, HubError::TooLarge { size: 10_000, max: 4096, .. }), "{err:?}");
    assert!(srv.hub.gets().is_empty(), "refused before downloading");
    assert!(blob_names(cache.path()).is_empty());
    srv.stop();
}

fn entry(files: &[&str]) -> ModelEntry {
    ModelEntry {
        name: "tiny-gen".into(),
        source: format!("hf:{REPO}").parse().unwrap(),
        family: "stable-audio".into(),
        capability: "generate".into(),
        required: false,
        files: files.iter().map(|f| EntryFile::Path(f.to_string())).collect(),
        sample_rate: Some(44_100),
        license: Some("test".into()),
        description: None,
        labels: None,
    }
}

type Published = Arc<Mutex<Vec<(ModelState, Option<f32>)>>>;

/// Every distinct (state, progress) the registry published for `name`, in order.
fn watch_model(registry: &Registry, name: &'static str) -> (Published, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut rx = registry.subscribe();
    let out = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let m: Option<ModelStatus> = rx.borrow_and_update().models.get(name).cloned();
            if let Some(m) = m {
                let mut v = out.lock().unwrap();
                if v.last() != Some(&(m.state, m.progress)) {
                    v.push((m.state, m.progress));
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_downloads_with_progress_then_writes_a_manifest() {
    let weights = payload(96 * 1024, 11);
    let config = br#"{"model_type": "diffusion_cond"}"#.to_vec();
    let srv =
        Server::start(FakeHub::new(&[("model.safetensors", weights.clone()), ("model_config.json", config.clone())]))
            .await;
    srv.hub.set(|s| s.slow = Some(Duration::from_millis(25))); // ~24 chunks, ~0.6 s
    let cache = tempfile::tempdir().unwrap();
    let client = srv.client(cache.path(), Some(GOOD));
    let registry = Registry::new();
    let (seen, watcher) = watch_model(&registry, "tiny-gen");

    let started = Instant::now();
    let manifest =
        registry.fetch_hub_model(&entry(&["model_config.json", "model.safetensors"]), &client).await.unwrap();
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(50)).await;
    watcher.abort();

    // The manifest is a normal model.toml in the snapshot directory.
    let snapshot = repo_dir(cache.path()).join("snapshots").join(COMMIT);
    assert_eq!(manifest.dir, snapshot);
    let reread = Manifest::from_file(&snapshot.join("model.toml")).unwrap();
    assert_eq!(reread, manifest);
    assert_eq!(manifest.name, "tiny-gen");
    assert_eq!(manifest.family, "stable-audio");
    assert_eq!(manifest.capability, "generate");
    assert!(!manifest.required);
    assert_eq!(manifest.sample_rate, Some(44_100));
    let source = manifest.source.as_ref().unwrap();
    assert_eq!(
        (source.registry.as_str(), source.package.as_str(), source.version.as_str()),
        ("huggingface", REPO, COMMIT)
    );
    let files: Vec<_> =
        manifest.files.iter().map(|f| (f.path.as_str(), f.role.as_deref(), f.sha256.clone(), f.bytes)).collect();
    assert_eq!(
        files,
        vec![
            ("model_config.json", Some("config"), Some(sha256(&config)), Some(config.len() as u64)),
            ("model.safetensors", Some("weights"), Some(sha256(&weights)), Some(weights.len() as u64)),
        ]
    );
    check_files(&manifest).unwrap();
    assert_eq!(std::fs::read(manifest.file_with_role("weights").unwrap()).unwrap(), weights);

    // States: downloading with rising progress, then loading (the loader's turn).
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first().map(|s| s.0), Some(ModelState::Downloading), "{seen:?}");
    assert_eq!(seen.last(), Some(&(ModelState::Loading, None)), "{seen:?}");
    let progress: Vec<f32> = seen.iter().filter(|s| s.0 == ModelState::Downloading).filter_map(|s| s.1).collect();
    assert!(progress.iter().any(|p| *p > 0.0 && *p < 1.0), "some intermediate progress was published: {seen:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    let max_updates = (elapsed.as_millis() / 100) as usize + 3;
    assert!(progress.len() <= max_updates, "at most ~10 updates a second: {} in {elapsed:?}", progress.len());
    let snap = registry.snapshot();
    assert_eq!(snap.models["tiny-gen"].state, ModelState::Loading);
    assert_eq!(snap.models["tiny-gen"].progress, None);
    srv.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_failures_name_the_repo() {
    let weights = payload(2_000, 12);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let e = entry(&["model.safetensors"]);
    let reason = |registry: &Registry| {
        let snap = registry.snapshot();
        let m = &snap.models["tiny-gen"];
        assert_eq!(m.state, ModelState::Failed);
        m.reason.clone().unwrap()
    };

    // A bad token is caught by whoami before any file is asked for.
    let err = registry.fetch_hub_model(&e, &srv.client(cache.path(), Some(BAD))).await.unwrap_err();
    let r = reason(&registry);
    assert_eq!(err, r);
    assert!(r.starts_with(&format!("hf:{REPO}: ")), "{r}");
    assert!(r.contains("rejected the token") && !r.contains(BAD), "{r}");
    assert!(srv.hub.log().iter().all(|s| s.path == "/api/whoami-v2"), "{:?}", srv.hub.log());

    // No token and a gated repo: the 401 says a token is needed.
    srv.hub.set(|s| s.gated = true);
    registry.fetch_hub_model(&e, &srv.client(cache.path(), None)).await.unwrap_err();
    let r = reason(&registry);
    assert!(r.contains(REPO) && r.contains("needs a Hugging Face token"), "{r}");
    srv.hub.set(|s| s.gated = false);

    // 404 names repo and file — and fails before the existing file is downloaded.
    registry
        .fetch_hub_model(&entry(&["model.safetensors", "missing.json"]), &srv.client(cache.path(), Some(GOOD)))
        .await
        .unwrap_err();
    let r = reason(&registry);
    assert!(r.contains(REPO) && r.contains("missing.json") && r.contains("404"), "{r}");
    assert!(srv.hub.gets().is_empty(), "nothing downloaded: {:?}", srv.hub.gets());

    // Checksum mismatch.
    srv.hub.set(|s| s.wrong_body = true);
    registry.fetch_hub_model(&e, &srv.client(cache.path(), Some(GOOD))).await.unwrap_err();
    let r = reason(&registry);
    assert!(r.contains(REPO) && r.contains("checksum mismatch"), "{r}");
    assert!(blob_names(cache.path()).is_empty());
    srv.hub.set(|s| s.wrong_body = false);

    // A sha256 pinned in the entry that the hub's file does not match.
    let mut pinned = e.clone();
    pinned.files = vec![EntryFile::Spec(timbre_engines::hub::FileSpec {
        path: "model.safetensors".into(),
        role: None,
        sha256: Some("ab".repeat(32)),
    })];
    registry.fetch_hub_model(&pinned, &srv.client(cache.path(), Some(GOOD))).await.unwrap_err();
    let r = reason(&registry);
    assert!(r.contains(REPO) && r.contains("pinned"), "{r}");
    srv.stop();
}

struct Echo;
impl Loader for Echo {
    fn load(&self, m: &Manifest, progress: &dyn Fn(ModelState)) -> Result<Engine, String> {
        progress(ModelState::Warming);
        let weights = m.file_with_role("weights").ok_or("no weights")?;
        let bytes = std::fs::read(weights).map_err(|e| e.to_string())?;
        Ok(Arc::new(bytes.len()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_entries_go_through_the_normal_loader() {
    let weights = payload(3_000, 13);
    let srv = Server::start(FakeHub::new(&[("model.safetensors", weights.clone())])).await;
    let cache = tempfile::tempdir().unwrap();
    let client = srv.client(cache.path(), Some(GOOD));
    let registry = Registry::new();
    let mut gone = entry(&["model.safetensors", "gone.bin"]);
    gone.name = "broken".into();
    gone.required = true;
    let plan = registry.prepare_entries(&[entry(&["model.safetensors"]), gone], Some(&client)).await;
    assert_eq!(plan.len(), 1);
    Arc::clone(&registry).load_all(plan, Arc::new(Echo), 2).await;
    let snap = registry.snapshot();
    assert_eq!(snap.models["tiny-gen"].state, ModelState::Ready);
    assert_eq!(registry.engine::<usize>("tiny-gen").as_deref(), Some(&weights.len()));
    assert_eq!(snap.models["broken"].state, ModelState::Failed);
    assert!(!snap.ready(), "a required hub model that failed blocks readiness");
    let before = srv.hub.log().len();
    let skipped = Registry::new();
    skipped.skip_entries(&[entry(&["model.safetensors"])]);
    skipped.skip_all(&[]);
    assert_eq!(skipped.snapshot().models["tiny-gen"].state, ModelState::Skipped);
    assert_eq!(srv.hub.log().len(), before, "skipping downloads nothing");
    assert!(
        snap.reasons().iter().any(|r| r.contains("broken") && r.contains("gone.bin") && r.contains(REPO)),
        "{:?}",
        snap.reasons()
    );
    srv.stop();
}
