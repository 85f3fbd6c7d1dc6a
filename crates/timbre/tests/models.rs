//! Real models through `timbre serve`: they load in the background and health tells the truth
//! about each — a deleted file fails only its model, a missing runtime fails only ONNX models,
//! SKIP_MODEL_LOADING skips them. Needs `make setup` (runtime + models).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, http_get};

fn repo_models() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    assert!(dir.join("silero-vad/model.toml").is_file(), "run `make setup` (scripts/fetch-models) first");
    dir
}

fn body(resp: &str) -> serde_json::Value {
    serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// Poll /health until the registry's first pass is over.
fn settled_health(addr: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, resp) = http_get(addr, "/health", &[]);
        assert_eq!(status, 200, "/health is always 200");
        let h = body(&resp);
        if h["status"] != "starting" {
            return h;
        }
        assert!(Instant::now() < deadline, "models never settled: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_deleted_model_file_fails_only_that_model() {
    let models = repo_models();
    let dir = tempfile::tempdir().unwrap();
    for name in ["silero-vad", "whisper-tiny.en"] {
        std::os::unix::fs::symlink(models.join(name), dir.path().join(name)).unwrap();
    }
    // ced-tiny with its weights "deleted": manifest and labels present, tiny.onnx not.
    let ced = dir.path().join("ced-tiny");
    std::fs::create_dir(&ced).unwrap();
    for entry in std::fs::read_dir(models.join("ced-tiny")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "onnx") {
            continue;
        }
        std::fs::copy(&path, ced.join(path.file_name().unwrap())).unwrap();
    }

    let (mut server, addr, _) = Server::start(&[], dir.path());
    let h = settled_health(&addr);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["models"]["silero-vad"]["state"], "ready", "{h}");
    assert_eq!(h["models"]["whisper-tiny.en"]["state"], "ready", "{h}");
    assert!(h["models"]["silero-vad"]["load_ms"].as_u64().is_some());
    let ced = &h["models"]["ced-tiny"];
    assert_eq!(ced["state"], "failed");
    let missing = dir.path().join("ced-tiny").join("tiny.onnx");
    assert!(ced["reason"].as_str().unwrap().contains(&missing.display().to_string()), "reason names the path: {ced}");
    assert_eq!(h["ready"], false, "ced-tiny is required");
    assert_eq!(http_get(&addr, "/readyz", &[]).0, 503);

    let (status, resp) = http_get(&addr, "/v1/models", &[]);
    assert_eq!(status, 200);
    let list = body(&resp);
    let states: Vec<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_string(), m["state"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("ced-tiny".into(), "failed".into()),
            ("silero-vad".into(), "ready".into()),
            ("whisper-tiny.en".into(), "ready".into())
        ]
    );
    assert_eq!(server.sigterm(), 0);
}

#[test]
fn every_fetched_model_becomes_ready() {
    let (mut server, addr, _) = Server::start(&[], &repo_models());
    let h = settled_health(&addr);
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["ready"], true);
    for name in ["whisper-tiny.en", "silero-vad", "piper-en_US-joe-medium", "ced-tiny", "beatnet", "hibari"] {
        assert_eq!(h["models"][name]["state"], "ready", "{name}: {h}");
    }
    assert_eq!(http_get(&addr, "/readyz", &[]).0, 200);
    let (_, metrics) = http_get(&addr, "/metrics", &[]);
    assert!(metrics.contains(r#"timbre_model_state{model="ced-tiny",state="ready"} 1"#));
    assert_eq!(server.sigterm(), 0);
}

#[test]
fn skip_model_loading_marks_models_skipped() {
    let (mut server, addr, _) = Server::start(&[("SKIP_MODEL_LOADING", "true")], &repo_models());
    let h = settled_health(&addr);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["models"]["ced-tiny"]["state"], "skipped");
    let reasons: Vec<&str> = h["reasons"].as_array().unwrap().iter().filter_map(|r| r.as_str()).collect();
    assert!(reasons.contains(&"model loading skipped by configuration"), "{reasons:?}");
    assert_eq!(server.sigterm(), 0);
}

#[test]
fn a_missing_onnx_runtime_fails_onnx_models_and_the_server_keeps_serving() {
    let models = repo_models();
    let dir = tempfile::tempdir().unwrap();
    for name in ["silero-vad", "whisper-tiny.en"] {
        std::os::unix::fs::symlink(models.join(name), dir.path().join(name)).unwrap();
    }
    let (mut server, addr, _) = Server::start(&[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")], dir.path());
    let h = settled_health(&addr);
    let vad = &h["models"]["silero-vad"];
    assert_eq!(vad["state"], "failed", "{h}");
    let reason = vad["reason"].as_str().unwrap();
    assert!(reason.contains("ONNX Runtime") && reason.contains("/nonexistent/libonnxruntime.so"), "{reason}");
    assert_eq!(h["models"]["whisper-tiny.en"]["state"], "ready", "CTranslate2 weights do not need ONNX Runtime");
    assert_eq!(http_get(&addr, "/ping", &[]).0, 200);
    assert_eq!(server.sigterm(), 0);
}

#[test]
fn verify_deploy_passes_on_a_healthy_server_and_names_what_fails() {
    let models = repo_models();
    let dir = tempfile::tempdir().unwrap();
    for name in ["silero-vad", "whisper-tiny.en"] {
        std::os::unix::fs::symlink(models.join(name), dir.path().join(name)).unwrap();
    }
    let (mut server, addr, _) = Server::start(&[("SERVICE_TOKEN", "deploy-tok")], dir.path());
    settled_health(&addr);
    let url = format!("http://{addr}");

    let (code, out, _) = common::stdout_of(common::timbre().args(["verify-deploy", &url, "--token", "deploy-tok"]));
    assert_eq!(code, 0, "{out}");
    for line in [
        "✅ connectivity",
        "✅ health",
        "✅ model silero-vad",
        "✅ ready",
        "✅ auth: no key rejected",
        "✅ auth: key accepted",
        "✅ websocket",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }

    let (code, out, _) = common::stdout_of(common::timbre().args(["verify-deploy", &url, "--token", "wrong"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("❌ auth: key accepted") && out.contains("❌ websocket"), "{out}");

    let (code, out, _) = common::stdout_of(common::timbre().args(["verify-deploy", "http://127.0.0.1:1"]));
    assert_eq!(code, 1);
    assert!(out.contains("❌ connectivity"), "{out}");
    assert_eq!(server.sigterm(), 0);
}
