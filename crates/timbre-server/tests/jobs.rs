//! The jobs API through the real server stack: create (`POST /v1/jobs/noop`, tagging with
//! `async=true` on the real CED-tiny model), read, list, follow over SSE, cancel, and the
//! `Idempotency-Key` header. SQLite in a temporary directory, in-process workers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use timbre_audio::OutputFormat;
use timbre_engines::ModelState;
use timbre_server::Config;

fn jobs_config() -> Config {
    Config {
        workers: 2,
        job_lease: 3.0,
        job_heartbeat: 0.3,
        job_poll_interval: 0.05,
        job_retry_base: 0.1,
        job_retry_max: 1.0,
        ..base_config()
    }
}

/// A server with storage and the job queue attached (workers started as `timbre serve` does).
async fn jobs_server(config: Config, dir: &Path) -> TestServer {
    let server = start(config).await;
    attach_store(&server, dir).await;
    let store = server.state.store.get().unwrap();
    timbre_server::jobs::attach(&server.state, &store).await.unwrap();
    server
}

/// Also loads the real `ced-tiny` from `models/`.
async fn tagging_jobs_server(dir: &Path) -> TestServer {
    let server = jobs_server(jobs_config(), dir).await;
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mdir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(models.join("ced-tiny"), mdir.path().join("ced-tiny")).unwrap();
    let plan = server.registry.discover(mdir.path());
    assert_eq!(plan.len(), 1, "run `make setup` first");
    let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings { threads: 1 });
    Arc::clone(&server.registry).load_all(plan, loader, 1).await;
    assert_eq!(server.registry.snapshot().models["ced-tiny"].state, ModelState::Ready);
    server
}

async fn wait_done(c: &reqwest::Client, server: &TestServer, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = json(c.get(server.url(&format!("/v1/jobs/{id}"))).send().await.unwrap()).await;
        if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} not finished within {within:?}: {job}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn post_noop(c: &reqwest::Client, server: &TestServer, body: Value, key: Option<&str>) -> reqwest::Response {
    let mut req = c.post(server.url("/v1/jobs/noop")).json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

/// Reads a whole SSE response into (event, data) pairs; the server ends it after `done`.
async fn sse_events(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(20), resp.text()).await.expect("the stream ended").unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if let Some(e) = event {
            out.push((e, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_jobs_run_and_idempotency_keys_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let server = jobs_server(jobs_config(), dir.path()).await;
    let c = client();
    let r = post_noop(&c, &server, json!({"sleep_ms": 50}), Some("order-1")).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(r.headers().get("idempotent-replayed").is_none());
    let body = json(r).await;
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!((body["kind"].as_str(), body["url"].as_str()), (Some("noop"), Some(location.as_str())));
    assert_eq!(body["events_url"], format!("/v1/jobs/{id}/events"));

    // The same key again: the same job, marked as a replay, nothing new enqueued.
    let r = post_noop(&c, &server, json!({"sleep_ms": 50}), Some("order-1")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(json(r).await["job_id"], id.as_str());
    let other = json(post_noop(&c, &server, json!({}), Some("order-2")).await).await;
    assert_ne!(other["job_id"], id.as_str());
    let job = wait_done(&c, &server, &id, Duration::from_secs(10)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!((job["attempts"].as_i64(), job["result"]["attempt"].as_i64()), (Some(1), Some(1)));
    assert!(job["created_at"].as_f64().unwrap() > 1.6e9 && job["finished_at"].as_f64().is_some());
    assert_eq!(job["progress"]["fraction"], 1.0);
    // After it finished, the key still returns it (now succeeded).
    let again = json(post_noop(&c, &server, json!({}), Some("order-1")).await).await;
    assert_eq!((again["job_id"].as_str(), again["status"].as_str()), (Some(id.as_str()), Some("succeeded")));
    let list = json(c.get(server.url("/v1/jobs?kind=noop")).send().await.unwrap()).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "two jobs for three requests: {list}");

    // Retries through HTTP: two failing attempts, then success.
    let flaky = json(post_noop(&c, &server, json!({"fail_attempts": 2}), None).await).await;
    let job = wait_done(&c, &server, flaky["job_id"].as_str().unwrap(), Duration::from_secs(10)).await;
    assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(3)), "{job}");

    // Bad requests.
    let r = post_noop(&c, &server, json!({}), Some("has space")).await;
    let v = assert_envelope(r, 422, "invalid_value").await;
    assert_eq!(v["error"]["param"], "Idempotency-Key");
    assert_envelope(post_noop(&c, &server, json!({"sleep_ms": 10_000_000}), None).await, 422, "invalid_value").await;
    let r = c.post(server.url("/v1/jobs/noop")).header("content-type", "application/json").body("{").send().await;
    assert_envelope(r.unwrap(), 400, "invalid_json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = jobs_server(Config { workers: 0, ..jobs_config() }, dir.path()).await;
    let c = client();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(json(post_noop(&c, &server, json!({}), None).await).await["job_id"].as_str().unwrap().to_owned());
    }
    // No workers (an API-only replica): everything stays queued.
    let page = json(c.get(server.url("/v1/jobs?limit=2&status=queued")).send().await.unwrap()).await;
    assert_eq!(page["object"], "list");
    assert_eq!(page["has_more"], true);
    let first: Vec<&str> = page["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(first, [ids[4].as_str(), ids[3].as_str()], "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2 =
        json(c.get(server.url(&format!("/v1/jobs?limit=2&status=queued&cursor={cursor}"))).send().await.unwrap()).await;
    let second: Vec<&str> = page2["data"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(second, [ids[2].as_str(), ids[1].as_str()]);
    let none = json(c.get(server.url("/v1/jobs?status=succeeded")).send().await.unwrap()).await;
    assert_eq!((none["data"].as_array().unwrap().len(), none["has_more"].as_bool()), (0, Some(false)));
    let v =
        assert_envelope(c.get(server.url("/v1/jobs?status=done")).send().await.unwrap(), 422, "invalid_value").await;
    assert_eq!(v["error"]["param"], "status");
    assert_envelope(c.get(server.url("/v1/jobs?limit=0")).send().await.unwrap(), 422, "invalid_value").await;
    assert_envelope(c.get(server.url("/v1/jobs?cursor=x")).send().await.unwrap(), 422, "invalid_value").await;
    assert_envelope(c.get(server.url("/v1/jobs/nope")).send().await.unwrap(), 404, "not_found").await;
    let unknown = "0".repeat(32);
    assert_envelope(c.get(server.url(&format!("/v1/jobs/{unknown}"))).send().await.unwrap(), 404, "not_found").await;

    // Cancelling a queued job: 200 and cancelled; again: 409; unknown: 404.
    let r = c.delete(server.url(&format!("/v1/jobs/{}", ids[0]))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["status"], "cancelled");
    let r = c.delete(server.url(&format!("/v1/jobs/{}", ids[0]))).send().await.unwrap();
    assert_envelope(r, 409, "job_finished").await;
    let r = c.delete(server.url(&format!("/v1/jobs/{unknown}"))).send().await.unwrap();
    assert_envelope(r, 404, "not_found").await;
    // The OpenAPI document lists the routes.
    let doc = json(c.get(server.url("/openapi.json")).send().await.unwrap()).await;
    for path in ["/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/jobs/noop"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from OpenAPI");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_progress_until_done_and_running_jobs_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let server = jobs_server(jobs_config(), dir.path()).await;
    let c = client();
    let id = json(post_noop(&c, &server, json!({"sleep_ms": 600, "steps": 3}), None).await).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = sse_events(c.get(server.url(&format!("/v1/jobs/{id}/events"))).send().await.unwrap()).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"status"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let fractions: Vec<f64> =
        events.iter().filter(|(e, _)| e == "progress").map(|(_, d)| d["fraction"].as_f64().unwrap()).collect();
    assert!(fractions.len() >= 2 && fractions.windows(2).all(|w| w[0] < w[1]), "{events:?}");
    assert_eq!(fractions.last(), Some(&1.0));
    let done = &events.last().unwrap().1;
    assert_eq!((done["id"].as_str(), done["status"].as_str()), (Some(id.as_str()), Some("succeeded")));
    assert_eq!(done["result"]["attempt"], 1);

    // Connecting after the end: the final state at once, then the stream ends.
    let events = sse_events(c.get(server.url(&format!("/v1/jobs/{id}/events"))).send().await.unwrap()).await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].0.as_str(), events[0].1["status"].as_str()), ("done", Some("succeeded")));

    // A running job: DELETE answers 202 and the job is cancelled within a second; its stream
    // ends with `done` / cancelled.
    let long = json(post_noop(&c, &server, json!({"sleep_ms": 30_000, "steps": 30}), None).await).await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while json(c.get(server.url(&format!("/v1/jobs/{long}"))).send().await.unwrap()).await["status"] != "running" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stream = c.get(server.url(&format!("/v1/jobs/{long}/events"))).send().await.unwrap();
    let asked = Instant::now();
    let r = c.delete(server.url(&format!("/v1/jobs/{long}"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(json(r).await["cancel_requested"], true);
    let events = sse_events(stream).await;
    let (last, data) = events.last().unwrap();
    assert_eq!((last.as_str(), data["status"].as_str()), ("done", Some("cancelled")), "{events:?}");
    assert!(asked.elapsed() < Duration::from_secs(1), "cancelled after {:?}", asked.elapsed());
    assert_envelope(c.delete(server.url(&format!("/v1/jobs/{long}"))).send().await.unwrap(), 409, "job_finished").await;
    let unknown = "f".repeat(32);
    assert_envelope(c.get(server.url(&format!("/v1/jobs/{unknown}/events"))).send().await.unwrap(), 404, "not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_queue_shows_in_health_and_jobs_answer_503_before_storage() {
    // Before storage connects, job endpoints say so (503 + Retry-After), never 500.
    let server = start(jobs_config()).await;
    let c = client();
    let r = c.get(server.url("/v1/jobs")).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    assert_envelope(r, 503, "jobs_unavailable").await;
    assert_envelope(post_noop(&c, &server, json!({}), None).await, 503, "jobs_unavailable").await;

    // Workers whose database goes away report it as the `jobs` component of /health.
    let dir = tempfile::tempdir().unwrap();
    let server = jobs_server(jobs_config(), dir.path()).await;
    server.registry.finish_first_pass();
    let health = json(c.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(health["status"], "healthy", "{health}");
    server.state.store.get().unwrap().db.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let health = json(c.get(server.url("/health")).send().await.unwrap()).await;
        let reasons = health["reasons"].to_string();
        if reasons.contains("jobs: job queue unavailable") {
            assert_eq!(health["status"], "degraded");
            break;
        }
        assert!(Instant::now() < deadline, "{health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 16 kHz: silence with a 440 Hz tone from `on` to `off` (what CED calls "Sine wave").
fn tone(seconds: f32, on: f32, off: f32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            if (on..off).contains(&t) { 0.4 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() } else { 0.0 }
        })
        .collect()
}

fn wav_form(bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name("clip.wav")).text("top_k", "5")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_audio_jobs_match_the_inline_report_and_bad_uploads_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = tagging_jobs_server(dir.path()).await;
    let c = client();
    let audio = timbre_audio::encode(&tone(24.0, 3.0, 15.0), 16_000, OutputFormat::Wav).unwrap();

    let inline =
        c.post(server.url("/v1/audio/classification")).multipart(wav_form(audio.clone())).send().await.unwrap();
    assert_eq!(inline.status(), 200);
    let inline = json(inline).await;

    let r = c
        .post(server.url("/v1/audio/classification?async=true"))
        .header("Idempotency-Key", "upload-1")
        .multipart(wav_form(audio.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let accepted = json(r).await;
    assert_eq!(accepted["kind"], "analyze_audio");
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    let events = sse_events(c.get(server.url(&format!("/v1/jobs/{id}/events"))).send().await.unwrap()).await;
    let stages: Vec<&str> =
        events.iter().filter(|(e, _)| e == "progress").map(|(_, d)| d["stage"].as_str().unwrap()).collect();
    assert!(stages.contains(&"tag"), "{events:?}");
    let job = &events.last().unwrap().1;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The job's result is the report the inline route returns for the same file and options.
    assert_eq!(job["result"], inline);
    assert_eq!(job["result"]["detections"][0]["label"], "Sine wave", "{}", job["result"]["detections"]);
    // The upload lives under the job's prefix.
    let store = server.state.store.get().unwrap();
    assert!(store.blobs.head(&format!("jobs/{id}/input")).await.is_ok());
    // Same key: same job, no second upload stored.
    let r = c
        .post(server.url("/classify?async=yes"))
        .header("Idempotency-Key", "upload-1")
        .multipart(wav_form(audio.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(json(r).await["job_id"], id.as_str());

    // Not audio, and silence: the job fails at once (one attempt) with a clear error…
    let garbage = Form::new()
        .part("file", Part::bytes(b"this is not audio at all".repeat(40)).file_name("x.wav"))
        .text("async", "true");
    let bad = json(c.post(server.url("/v1/audio/classification")).multipart(garbage).send().await.unwrap()).await;
    let silent = timbre_audio::encode(&vec![0.0; 32_000], 16_000, OutputFormat::Wav).unwrap();
    let quiet =
        json(c.post(server.url("/v1/audio/classification?async=1")).multipart(wav_form(silent)).send().await.unwrap())
            .await;
    for (what, id, needle) in [("garbage", &bad, "not usable audio"), ("silence", &quiet, "silent")] {
        let job = wait_done(&c, &server, id["job_id"].as_str().unwrap(), Duration::from_secs(20)).await;
        assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("failed"), Some(1)), "{what}: {job}");
        assert!(job["error"].as_str().unwrap().contains(needle), "{what}: {job}");
    }
    // …and the queue is not poisoned: the next job succeeds.
    let next = json(
        c.post(server.url("/v1/audio/classification?async=true")).multipart(wav_form(audio)).send().await.unwrap(),
    )
    .await;
    let job = wait_done(&c, &server, next["job_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(job["status"], "succeeded");
    let v = assert_envelope(
        c.post(server.url("/v1/audio/classification?async=maybe"))
            .multipart(wav_form(vec![1, 2]))
            .send()
            .await
            .unwrap(),
        422,
        "invalid_value",
    )
    .await;
    assert_eq!(v["error"]["param"], "async");
}
