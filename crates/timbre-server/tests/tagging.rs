//! Sound tagging through the real server stack and the real CED-tiny model: tags, timeline,
//! events, prompt heatmaps, the SonoTag aliases, live tagging over WebSocket, and bad input.
//! Needs `make setup` (runtime + models).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::multipart::{Form, Part};
use timbre_audio::OutputFormat;
use timbre_engines::ModelState;
use timbre_server::Config;
use tokio_tungstenite::tungstenite::Message;

/// A server whose registry loaded the real `ced-tiny` from `models/`.
async fn tagging_server(config: Config) -> TestServer {
    let server = start(config).await;
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(models.join("ced-tiny"), dir.path().join("ced-tiny")).unwrap();
    let plan = server.registry.discover(dir.path());
    assert_eq!(plan.len(), 1, "run `make setup` first");
    let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings {
        threads: 1,
        ..Default::default()
    });
    Arc::clone(&server.registry).load_all(plan, loader, 1).await;
    let snap = server.registry.snapshot();
    assert_eq!(snap.models["ced-tiny"].state, ModelState::Ready, "{:?}", snap.models["ced-tiny"].reason);
    server
}

/// `seconds` at 16 kHz: silence, with a 440 Hz tone from `on` to `off` (CED calls it "Sine
/// wave"; a 1 kHz tone it calls "Beep, bleep").
fn tone(seconds: f32, on: f32, off: f32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            if (on..off).contains(&t) { 0.4 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() } else { 0.0 }
        })
        .collect()
}

fn wav(samples: &[f32]) -> Vec<u8> {
    timbre_audio::encode(samples, 16_000, OutputFormat::Wav).unwrap()
}

fn form(bytes: Vec<u8>, name: &str) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()))
}

#[tokio::test]
async fn tags_a_file_with_timeline_events_and_prompts() {
    let server = tagging_server(base_config()).await;
    let c = client();
    let audio = wav(&tone(8.0, 2.0, 6.0));
    let f = form(audio, "tone.wav").text("prompts", "sine tone; barking dog").text("hop", "0.5");
    let r = c.post(server.url("/v1/audio/classification")).multipart(f).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-inference-time") && r.headers().contains_key("x-queue-time"));
    let v = json(r).await;
    assert_eq!(v["model"], "ced-tiny");
    assert_eq!(v["method"], "label-match");
    assert!((v["duration"].as_f64().unwrap() - 8.0).abs() < 0.01);
    assert_eq!(v["detections"][0]["label"], "Sine wave", "{}", v["detections"]);
    let scores: Vec<f64> = v["detections"].as_array().unwrap().iter().map(|d| d["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score: {scores:?}");

    // Timeline: frames every 0.5 s; the tone row is high in the middle, low at the edges.
    let times = v["frames"]["times"].as_array().unwrap();
    assert!(times.len() >= 13, "{}", times.len());
    let row = v["frames"]["labels"].as_array().unwrap().iter().position(|l| l == "Sine wave").unwrap();
    let sine: Vec<f64> = v["frames"]["scores"][row].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(sine.len(), times.len());
    let at = |t: f64| sine[times.iter().position(|x| (x.as_f64().unwrap() - t).abs() < 0.01).unwrap()];
    assert!(at(4.0) > 0.3 && at(1.0) < at(4.0) / 2.0 && at(7.0) < at(4.0) / 2.0, "{sine:?}");

    // One "Sine wave" event, boundaries within 0.5 s of the truth (2.0–6.0 s).
    let events: Vec<&serde_json::Value> =
        v["events"].as_array().unwrap().iter().filter(|e| e["label"] == "Sine wave").collect();
    assert_eq!(events.len(), 1, "{}", v["events"]);
    let (start, end) = (events[0]["start"].as_f64().unwrap(), events[0]["end"].as_f64().unwrap());
    assert!((start - 2.0).abs() <= 0.5 && (end - 6.0).abs() <= 0.5, "event {start}–{end}");

    // Prompts: the tone prompt maps to "Sine wave" and follows its row; the dog prompt stays low.
    let p = &v["prompts"];
    assert_eq!(p["text"][0], "sine tone");
    assert!(p["matched_labels"][0].as_array().unwrap().iter().any(|l| l == "Sine wave"), "{p}");
    assert!(p["matched_labels"][1].as_array().unwrap().iter().any(|l| l == "Dog"), "{p}");
    let prompt_row: Vec<f64> = p["scores"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(prompt_row.iter().zip(&sine).all(|(p, s)| p >= s), "max over matched labels ≥ the Sine wave row");
    assert!(p["scores"][1].as_array().unwrap().iter().all(|x| x.as_f64().unwrap() < 0.2));

    // Hierarchy: detections carry their AudioSet groups.
    assert!(v["detections"][0]["groups"].as_array().unwrap().iter().any(|g| g == "Source-ambiguous sounds"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sonotag_aliases_and_other_formats_work() {
    let server = tagging_server(base_config()).await;
    let c = client();
    let samples = tone(3.0, 0.0, 3.0);
    for (path, format, name) in
        [("/classify", OutputFormat::Flac, "t.flac"), ("/classify-local", OutputFormat::Mp3, "t.mp3")]
    {
        let bytes = timbre_audio::encode(&samples, 16_000, format).unwrap();
        let r = c.post(server.url(path)).multipart(form(bytes, name).text("top_k", "3")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v = json(r).await;
        assert_eq!(v["detections"][0]["label"], "Sine wave", "{path}");
        assert!(v["detections"].as_array().unwrap().len() <= 3);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_tagging_requests_get_clear_errors_and_the_server_keeps_serving() {
    let server = tagging_server(Config { max_upload_mb: 1, ..base_config() }).await;
    let c = client();
    let url = server.url("/v1/audio/classification");
    let good = || form(wav(&tone(1.0, 0.0, 1.0)), "t.wav");

    let v = assert_envelope(
        c.post(&url).multipart(Form::new().text("top_k", "3")).send().await.unwrap(),
        400,
        "missing_file",
    )
    .await;
    assert_eq!(v["error"]["param"], "file");
    let v =
        assert_envelope(c.post(&url).multipart(form(Vec::new(), "e.wav")).send().await.unwrap(), 422, "invalid_value")
            .await;
    assert_eq!(v["error"]["param"], "file");
    let junk = form(b"this is not audio at all, just text".repeat(20), "notes.txt");
    let r = c.post(&url).multipart(junk).send().await.unwrap();
    assert!(r.status() == 415 || r.status() == 422, "{}", r.status());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "file");
    let v = assert_envelope(
        c.post(&url).multipart(good().text("top_k", "many")).send().await.unwrap(),
        422,
        "invalid_value",
    )
    .await;
    assert_eq!(v["error"]["param"], "top_k");
    let v =
        assert_envelope(c.post(&url).multipart(good().text("hop", "9")).send().await.unwrap(), 422, "invalid_value")
            .await;
    assert_eq!(v["error"]["param"], "hop");
    let v =
        assert_envelope(c.post(&url).multipart(good().text("model", "nope")).send().await.unwrap(), 404, "not_found")
            .await;
    assert_eq!(v["error"]["param"], "model");
    assert_envelope(c.post(&url).body("not multipart").send().await.unwrap(), 400, "bad_request").await;
    let big = form(vec![0u8; 2 * 1024 * 1024], "big.wav");
    assert_envelope(c.post(&url).multipart(big).send().await.unwrap(), 413, "payload_too_large").await;

    // A model that is not ready: 503 with its state, and Retry-After.
    server.registry.set_state("ced-tiny", ModelState::Failed, Some("weights corrupt".into()));
    let r = c.post(&url).multipart(good()).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let v = assert_envelope(r, 503, "model_unavailable").await;
    assert!(v["error"]["message"].as_str().unwrap().contains("weights corrupt"));
    server.registry.set_state("ced-tiny", ModelState::Ready, None);
    assert_eq!(c.post(&url).multipart(good()).send().await.unwrap().status(), 200, "still serving");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn live_tagging_over_websocket() {
    let server = tagging_server(Config { max_concurrent_sessions: 1, ..base_config() }).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/tag/stream")).await.unwrap();
    ws.send(Message::Text(
        r#"{"type":"config","sample_rate":16000,"encoding":"pcm16","hop":0.5,"window":1.0,"prompts":"sine tone"}"#
            .into(),
    ))
    .await
    .unwrap();
    let ready: serde_json::Value = serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(ready["type"], "ready");

    // The second session is refused while this one is open.
    match tokio_tungstenite::connect_async(server.ws_url("/v1/tag/stream")).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("expected 503, got {other:?}"),
    }

    // 2 s of tone in 100 ms PCM16 frames, plus a malformed frame in the middle.
    let pcm = timbre_audio::f32_to_pcm16_bytes(&tone(2.0, 0.0, 2.0));
    for (i, frame) in pcm.chunks(3200).enumerate() {
        ws.send(Message::Binary(frame.to_vec().into())).await.unwrap();
        if i == 5 {
            ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
        }
    }
    ws.send(Message::Text(r#"{"type":"eof"}"#.into())).await.unwrap();
    let mut tags = Vec::new();
    let mut errors = Vec::new();
    let close_code = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "tags" { tags.push(v) } else { errors.push(v) }
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close_code, Some(1000));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["code"], "invalid_audio");
    let ts: Vec<f64> = tags.iter().map(|v| v["t"].as_f64().unwrap()).collect();
    assert_eq!(ts, vec![0.5, 1.0, 1.5, 2.0], "a message per hop");
    for v in &tags {
        assert_eq!(v["top"][0]["label"], "Sine wave", "{v}");
        assert!(v["latency_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(v["prompts"][0]["text"], "sine tone");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tags_an_earlier_url_import_by_id() {
    let server = tagging_server(Config { import_allow_private: true, ..base_config() }).await;
    let dir = tempfile::tempdir().unwrap();
    attach_store(&server, dir.path()).await;
    let bytes = wav(&tone(3.0, 0.0, 3.0));
    let app = axum::Router::new().route("/a.wav", axum::routing::get(move || async move { bytes.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = client();
    let rec = json(
        c.post(server.url("/v1/imports"))
            .json(&serde_json::json!({"url": format!("http://{host}/a.wav")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = rec["id"].as_str().unwrap();
    let r = c
        .post(server.url("/v1/audio/classification"))
        .multipart(Form::new().text("import_id", id.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["detections"][0]["label"], "Sine wave");
    let missing = Form::new().text("import_id", "0123456789abcdef0123456789abcdef");
    let v = assert_envelope(
        c.post(server.url("/v1/audio/classification")).multipart(missing).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_eq!(v["error"]["param"], "import_id");
    server.stop().await.unwrap();
}
