//! Signify's deployment shape through `timbre serve`: the keypoint stream at `/` on
//! `TIMBRE_STREAM_PORT` and `/health` on `HEALTH_PORT`, beside the main port; a stream model
//! whose file is gone is `failed` in health and its stream answers 503. Needs
//! `scripts/fetch-runtime` and `scripts/train-stream-demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, http_get};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const MODEL: &str = "signify-letters-test";

fn repo_model() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(MODEL);
    assert!(dir.join("model.toml").is_file(), "run scripts/train-stream-demo first");
    dir
}

fn body(resp: &str) -> serde_json::Value {
    serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// Start with both seed ports on free ports; returns (server, main, stream, health) addresses.
fn start(models: &Path) -> (Server, String, String, String) {
    let envs = [("TIMBRE_STREAM_PORT", "0"), ("HEALTH_PORT", "0"), ("TIMBRE_STREAM_MODEL", MODEL)];
    let (mut server, main, _) = Server::start(&envs, models);
    let stream = address(&mut server, "\"stream listener\"");
    let health = address(&mut server, "\"health listener\"");
    (server, main, stream, health)
}

/// The `address` of a log line containing `what` (logged right after `listening`).
fn address(server: &mut Server, what: &str) -> String {
    let line = match server.seen.iter().find(|l| l.contains(what)) {
        Some(l) => l.clone(),
        None => server.wait_for(|l| l.contains(what), Duration::from_secs(10)).unwrap_or_else(|| panic!("no {what}")),
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["address"].as_str().unwrap().to_string()
}

fn settled(addr: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, resp) = http_get(addr, "/health", &[]);
        assert_eq!(status, 200);
        let h = body(&resp);
        // Components (the data directory's store) report "connecting" briefly after models load.
        let connecting = h["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r.as_str().is_some_and(|r| r.ends_with("connecting"))));
        if h["status"] != "starting" && !connecting {
            return h;
        }
        assert!(Instant::now() < deadline, "never settled: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_ports_serve_the_stream_at_root_and_health_apart() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo_model(), dir.path().join(MODEL)).unwrap();
    let (mut server, main, stream, health) = start(dir.path());
    assert_ne!(stream, main);
    assert_ne!(health, main);
    let h = tokio::task::spawn_blocking(move || settled(&health)).await.unwrap();
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["models"][MODEL]["state"], "ready");

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{stream}/")).await.unwrap();
    // The 'A' prototype: an open hand (every finger straight) is letter A.
    let frame =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx/stream_letters_input.f32"))
            .unwrap();
    ws.send(Message::Binary(frame[..63 * 4].to_vec().into())).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!((v["type"].as_str(), v["label"].as_str()), (Some("prediction"), Some("A")), "{v}");
    // The main port serves the same model under /v1/streams.
    let (mut ws2, _) = tokio_tungstenite::connect_async(format!("ws://{main}/v1/streams/{MODEL}")).await.unwrap();
    ws2.send(Message::Binary(frame[26 * 4 * 63..27 * 4 * 63].to_vec().into())).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), ws2.next()).await.unwrap().unwrap().unwrap();
    assert!(msg.to_text().unwrap().contains("\"prediction\""));
    drop((ws, ws2));
    assert_eq!(tokio::task::spawn_blocking(move || server.sigterm()).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_model_is_failed_and_refused_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join(MODEL);
    std::fs::create_dir(&broken).unwrap();
    for f in ["model.toml", "labels.txt"] {
        std::fs::copy(repo_model().join(f), broken.join(f)).unwrap(); // model.onnx "deleted"
    }
    let (mut server, _, stream, health) = start(dir.path());
    let h = tokio::task::spawn_blocking(move || settled(&health)).await.unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["models"][MODEL]["state"], "failed");
    assert!(h["models"][MODEL]["reason"].as_str().unwrap().contains("model.onnx"), "{h}");
    match tokio_tungstenite::connect_async(format!("ws://{stream}/")).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status().as_u16(), 503);
            let body: serde_json::Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "model_unavailable", "{body}");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(tokio::task::spawn_blocking(move || server.sigterm()).await.unwrap(), 0);
}
