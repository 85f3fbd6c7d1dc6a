//! `[[models]]` entries with `hf:` sources through `timbre serve`: the real downloader fetches a
//! real model (Silero VAD, served by a fake hub on 127.0.0.1) and the normal loader makes it
//! ready; a missing repo file and a rejected token fail only their model, naming the repo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{Server, http_get};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct Hub {
    files: PathBuf,
}

async fn whoami(headers: HeaderMap) -> Response {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some("Bearer good-token") => axum::Json(serde_json::json!({"name": "tester", "type": "user"})).into_response(),
        _ => (StatusCode::UNAUTHORIZED, "Invalid credentials").into_response(),
    }
}

async fn resolve(
    State(hub): State<Hub>,
    UrlPath((org, repo, _rev, file)): UrlPath<(String, String, String, String)>,
) -> Response {
    let path = hub.files.join(&file);
    if org != "acme" || repo != "silero" || !path.is_file() {
        let mut r = (StatusCode::NOT_FOUND, "Entry not found").into_response();
        r.headers_mut().insert("x-error-code", "EntryNotFound".parse().unwrap());
        return r;
    }
    let bytes = std::fs::read(path).unwrap();
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert("etag", format!("\"{sha}\"").parse().unwrap());
    h.insert("x-repo-commit", "0123456789abcdef0123456789abcdef01234567".parse().unwrap());
    r
}

async fn start_hub(files: &Path) -> String {
    let app = Router::new()
        .route("/api/whoami-v2", get(whoami))
        .route("/{org}/{repo}/resolve/{rev}/{*file}", get(resolve))
        .with_state(Hub { files: files.to_path_buf() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn settled(addr: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, resp) = http_get(addr, "/health", &[]);
        let h: serde_json::Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        if h["status"] != "starting" {
            return h;
        }
        assert!(Instant::now() < deadline, "never settled: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn config(dir: &Path, endpoint: &str, token: &str) -> PathBuf {
    let file = dir.join("timbre.toml");
    std::fs::write(
        &file,
        format!(
            r#"hf_endpoint = "{endpoint}"
hugging_face_hub_token = "{token}"

[[models]]
name = "vad-from-hub"
source = "hf:acme/silero"
family = "vad"
capability = "vad"
files = ["silero_vad.onnx"]

[[models]]
name = "missing-file"
source = "hf:acme/silero"
family = "vad"
capability = "vad"
required = false
files = ["nope.onnx"]
"#
        ),
    )
    .unwrap();
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn hub_models_download_load_and_fail_honestly() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/silero-vad");
    assert!(models.join("silero_vad.onnx").is_file(), "run `make setup` first");
    let endpoint = start_hub(&models).await;
    let work = tempfile::tempdir().unwrap();
    let empty_models = tempfile::tempdir().unwrap();

    let file = config(work.path(), &endpoint, "good-token");
    let data = work.path().join("data");
    let (h, cache_has_blob) = tokio::task::spawn_blocking({
        let (file, data, empty) = (file.clone(), data.clone(), empty_models.path().to_path_buf());
        move || {
            let (mut server, addr, _) = Server::start(
                &[("TIMBRE_CONFIG", file.to_str().unwrap()), ("TIMBRE_DATA_DIR", data.to_str().unwrap())],
                &empty,
            );
            let h = settled(&addr);
            assert_eq!(server.sigterm(), 0);
            let blobs = data.join("hf-cache/models--acme--silero/blobs");
            (h, std::fs::read_dir(blobs).map(|d| d.count()).unwrap_or(0))
        }
    })
    .await
    .unwrap();
    assert_eq!(h["models"]["vad-from-hub"]["state"], "ready", "{h}");
    assert_eq!(h["models"]["missing-file"]["state"], "failed");
    let reason = h["models"]["missing-file"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("hf:acme/silero") && reason.contains("nope.onnx"), "{reason}");
    assert_eq!(h["ready"], true, "the failed entry is optional");
    assert!(!h["reasons"].to_string().contains("no models found"), "an empty models dir is fine with [[models]]: {h}");
    assert_eq!(cache_has_blob, 1, "the blob is cached in the data dir");

    // A rejected token fails the hub models with a reason naming the repo; the server serves on.
    let file = config(work.path(), &endpoint, "bad-token");
    let h = tokio::task::spawn_blocking({
        let (file, empty) = (file.clone(), empty_models.path().to_path_buf());
        let data = work.path().join("data2");
        move || {
            let (mut server, addr, _) = Server::start(
                &[("TIMBRE_CONFIG", file.to_str().unwrap()), ("TIMBRE_DATA_DIR", data.to_str().unwrap())],
                &empty,
            );
            let h = settled(&addr);
            assert_eq!(http_get(&addr, "/ping", &[]).0, 200);
            assert_eq!(server.sigterm(), 0);
            h
        }
    })
    .await
    .unwrap();
    let vad = &h["models"]["vad-from-hub"];
    assert_eq!(vad["state"], "failed", "{h}");
    let reason = vad["reason"].as_str().unwrap();
    assert!(reason.starts_with("hf:acme/silero") && reason.contains("token"), "{reason}");
    assert!(!reason.contains("bad-token"), "the token never appears: {reason}");
}
