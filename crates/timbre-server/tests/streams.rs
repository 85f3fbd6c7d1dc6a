//! Keypoint streams (`WS /v1/streams/{model}`) with the real Signify-shaped test model: the
//! protocol state machine driven in memory over channels (axum's testing-websockets pattern),
//! then through real sockets for each frame format, the refusals before the upgrade and the
//! session cap. Needs `scripts/fetch-runtime` and `scripts/train-stream-demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use common::*;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use timbre_engines::manifest::Manifest;
use timbre_engines::stream::StreamClassifier;
use timbre_engines::{ModelState, ModelStatus};
use timbre_server::Config;
use timbre_server::routes::streams::{self, Limits};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const MODEL: &str = "signify-letters-test";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine() -> Arc<StreamClassifier> {
    let dir = std::env::var_os("TIMBRE_MODELS_DIR").map_or_else(|| root().join("models"), PathBuf::from);
    let manifest = Manifest::from_file(&dir.join(MODEL).join("model.toml"))
        .unwrap_or_else(|e| panic!("{e}: run scripts/train-stream-demo first"));
    // Loading warms up with a blocking call: off the async runtime, as the registry does.
    std::thread::spawn(move || Arc::new(StreamClassifier::load(&manifest, 1, &|_| {}).unwrap())).join().unwrap()
}

/// The 26 letter poses (frame i is letter i), raw keypoints: 63 floats each.
fn letters() -> Vec<Vec<f32>> {
    let bytes = std::fs::read(root().join("tests/fixtures/onnx/stream_letters_input.f32")).unwrap();
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    floats.chunks_exact(63).take(26).map(<[f32]>::to_vec).collect()
}

fn pose(letter: char) -> Vec<f32> {
    letters()[(letter as u8 - b'A') as usize].clone()
}

fn triples(kp: &[f32]) -> Value {
    Value::Array(kp.chunks(3).map(|p| json!([p[0], p[1], p[2]])).collect())
}

fn json_frame(t: f64, letter: char) -> String {
    json!({"t": t, "keypoints": triples(&pose(letter))}).to_string()
}

fn binary(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

type Read = Pin<Box<dyn Stream<Item = Result<Message, Infallible>> + Send>>;
type Write = Pin<Box<dyn Sink<Message, Error = ()> + Send>>;

/// A session over in-memory channels: the test is the client.
struct Client {
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn connect(limits: Limits) -> Client {
    let (client_tx, server_rx) = mpsc::channel::<Message>(1024);
    let (server_tx, client_rx) = mpsc::channel::<Message>(1024);
    let read: Read =
        Box::pin(futures_util::stream::unfold(server_rx, |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) }));
    let write: Write = Box::pin(futures_util::sink::unfold(server_tx, |tx, m: Message| async move {
        tx.send(m).await.map_err(|_| ())?;
        Ok::<_, ()>(tx)
    }));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let engine = engine();
    let task = tokio::spawn(async move { streams::run(write, read, MODEL, engine, limits, shutdown_rx).await });
    Client { tx: client_tx, rx: client_rx, shutdown, task }
}

fn limits() -> Limits {
    Limits { idle_timeout: Duration::from_secs(30), max_fps: 0.0 }
}

impl Client {
    async fn text(&self, text: impl Into<String>) {
        self.tx.send(Message::Text(text.into().into())).await.unwrap();
    }

    async fn binary(&self, values: &[f32]) {
        self.tx.send(Message::Binary(binary(values).into())).await.unwrap();
    }

    async fn recv(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv()).await.expect("no reply in 10 s").unwrap()
    }

    async fn json(&mut self) -> Value {
        match self.recv().await {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// Send a letter pose, return (raw label, smoothed label).
    async fn letter(&mut self, letter: char) -> (String, Option<String>) {
        self.text(json_frame(0.0, letter)).await;
        let v = self.json().await;
        assert_eq!(v["type"], "prediction", "{v}");
        (v["label"].as_str().unwrap().to_string(), v["smoothed"]["label"].as_str().map(str::to_string))
    }
}

#[tokio::test]
async fn json_and_binary_frames_are_classified() {
    let mut c = connect(limits());
    c.text(json_frame(1234.5, 'C')).await;
    let v = c.json().await;
    assert_eq!(
        (v["type"].as_str(), v["t"].as_f64(), v["label"].as_str()),
        (Some("prediction"), Some(1234.5), Some("C"))
    );
    assert!(v["confidence"].as_f64().unwrap() > 0.5, "{v}");
    assert_eq!(v["hand"], true);
    assert!(v["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(v["smoothed"]["confidence"].as_f64().is_some());

    // 63 flat numbers, and two hands (a one-hand model takes the first).
    let flat = json!({"keypoints": pose('H')}).to_string();
    c.text(flat).await;
    assert_eq!(c.json().await["label"], "H");
    c.text(
        json!({"t": 7, "hands": [triples(&pose('Q')), {"keypoints": triples(&pose('Z')), "score": 0.9}]}).to_string(),
    )
    .await;
    let v = c.json().await;
    assert_eq!((v["label"].as_str(), v["t"].as_f64()), (Some("Q"), Some(7.0)));

    // Binary little-endian f32: keypoints alone, then with t first.
    c.binary(&pose('K')).await;
    assert_eq!(c.json().await["label"], "K");
    let mut with_t = vec![99.0];
    with_t.extend(pose('W'));
    c.binary(&with_t).await;
    let v = c.json().await;
    assert_eq!((v["label"].as_str(), v["t"].as_f64()), (Some("W"), Some(99.0)));
    c.task.abort();
}

#[tokio::test]
async fn smoothing_follows_a_scripted_sequence_and_reset_clears_it() {
    let mut c = connect(limits());
    // Majority over 3 frames instead of the manifest's 5; the answer lists the settings.
    c.text(r#"{"type":"config","smoothing":{"method":"majority","frames":3}}"#).await;
    let cfg = c.json().await;
    assert_eq!(cfg["type"], "config");
    assert_eq!(cfg["model"], MODEL);
    assert_eq!(cfg["labels"].as_array().unwrap().len(), 26);
    assert_eq!((cfg["layout"].as_str(), cfg["smoothing"]["frames"].as_u64()), (Some("frame"), Some(3)));

    let mut raw = String::new();
    let mut smoothed = String::new();
    for letter in "AABABBB".chars() {
        let (r, s) = c.letter(letter).await;
        raw += &r;
        smoothed += &s.unwrap();
    }
    assert_eq!(raw, "AABABBB", "every pose is recognised on its own");
    assert_eq!(smoothed, "AAAABBB", "the majority of the last 3 frames");

    // Without a reset the history would keep B; after it, A wins at once.
    c.text(r#"{"type":"reset"}"#).await;
    assert_eq!(c.json().await["type"], "reset");
    assert_eq!(c.letter('A').await.1.as_deref(), Some("A"));

    // EMA with alpha 0.5: the first B ties with A (A stays), the second B takes over.
    c.text(r#"{"type":"config","smoothing":"ema","alpha":0.5}"#).await;
    assert_eq!(c.json().await["smoothing"]["method"], "ema");
    assert_eq!(c.letter('A').await.1.as_deref(), Some("A"));
    let b1 = c.letter('B').await.1;
    assert_eq!(c.letter('B').await.1.as_deref(), Some("B"), "first B gave {b1:?}");

    // A bad setting is an error; the session keeps its settings and goes on.
    c.text(r#"{"type":"config","smoothing":{"method":"ema","alpha":7}}"#).await;
    let e = c.json().await;
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("invalid_config")));
    assert_eq!(c.letter('B').await.1.as_deref(), Some("B"));
    c.task.abort();
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_session_continues() {
    let mut c = connect(limits());
    let short: Vec<f32> = pose('A')[..60].to_vec();
    let mut nan = pose('A');
    nan[10] = f32::NAN;
    c.text("this is not json").await;
    c.text(json!({"keypoints": short}).to_string()).await;
    c.text(json_frame(0.0, 'A').replacen("[[", "[[null,", 1)).await; // JavaScript's NaN arrives as null
    c.binary(&nan).await;
    c.binary(&short).await;
    c.text(r#"{"type":"dance"}"#).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let v = c.json().await;
        assert_eq!(v["type"], "error", "{v}");
        assert!(!v["message"].as_str().unwrap().is_empty());
        codes.push(v["code"].as_str().unwrap().to_string());
    }
    assert_eq!(
        codes,
        ["invalid_message", "invalid_frame", "invalid_message", "invalid_frame", "invalid_frame", "invalid_message"]
    );
    assert_eq!(c.letter('M').await.0, "M", "the session goes on");

    // No hand in view, or a hand below min_presence (0.5 in the manifest): no label.
    for frame in [json!({"t": 1, "hands": []}), json!({"t": 2, "keypoints": triples(&pose('M')), "presence": 0.2})] {
        c.text(frame.to_string()).await;
        let v = c.json().await;
        assert_eq!((v["hand"].as_bool(), v["label"].as_str()), (Some(false), None), "{v}");
    }
    c.task.abort();
}

#[tokio::test]
async fn flooding_is_throttled_not_fatal() {
    let mut c = connect(Limits { idle_timeout: Duration::from_secs(30), max_fps: 5.0 });
    for _ in 0..30 {
        c.text(json_frame(0.0, 'L')).await;
    }
    let mut predictions = 0;
    let mut dropped = 0;
    // A second's worth (5) passes, the rest is dropped with one notice; then silence.
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(600), c.rx.recv()).await {
        let Message::Text(t) = msg else { panic!("{msg:?}") };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str().unwrap() {
            "prediction" => predictions += 1,
            "throttled" => {
                assert_eq!(v["max_fps"], 5.0);
                dropped += v["dropped"].as_u64().unwrap();
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert!((5..=7).contains(&predictions), "{predictions} predictions");
    assert!(dropped >= 1, "a throttled notice");
    // The session is still open and tokens came back.
    assert_eq!(c.letter('L').await.0, "L");
    c.task.abort();
}

#[tokio::test]
async fn idle_sessions_close_and_shutdown_says_1001() {
    let mut c = connect(Limits { idle_timeout: Duration::from_millis(300), max_fps: 0.0 });
    // Frames every 100 ms for 0.6 s, twice the timeout: activity keeps the session open.
    let started = std::time::Instant::now();
    for _ in 0..6 {
        assert_eq!(c.letter('A').await.0, "A");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match c.recv().await {
        Message::Close(Some(frame)) => assert_eq!((frame.code, frame.reason.as_str()), (1000, "idle timeout")),
        other => panic!("expected close, got {other:?}"),
    }
    let open = started.elapsed();
    assert!(open >= Duration::from_millis(800), "closed {open:?} after the first frame: idle counts from the last one");
    tokio::time::timeout(Duration::from_secs(2), &mut c.task).await.unwrap().unwrap();

    let mut c = connect(limits());
    assert_eq!(c.letter('A').await.0, "A");
    c.shutdown.send_replace(true);
    match c.recv().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Through real sockets.

fn stream_status(name: &str, state: ModelState, reason: Option<&str>) -> ModelStatus {
    let mut m = ModelStatus::new(name, "stream-classifier", "stream-classification", false);
    m.state = state;
    m.reason = reason.map(str::to_string);
    m
}

async fn ws_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    serde_json::from_str(msg.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn both_frame_formats_over_a_real_socket() {
    let server = start(base_config()).await;
    server.registry.update(stream_status(MODEL, ModelState::Ready, None));
    server.registry.insert_engine(MODEL, engine());
    server.registry.finish_first_pass();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(&format!("/v1/streams/{MODEL}"))).await.unwrap();
    ws.send(WsMessage::Text(json_frame(5.0, 'S').into())).await.unwrap();
    let v = ws_json(&mut ws).await;
    assert_eq!((v["label"].as_str(), v["t"].as_f64()), (Some("S"), Some(5.0)));
    let mut with_t = vec![6.0];
    with_t.extend(pose('T'));
    ws.send(WsMessage::Binary(binary(&with_t).into())).await.unwrap();
    let v = ws_json(&mut ws).await;
    assert_eq!((v["label"].as_str(), v["t"].as_f64()), (Some("T"), Some(6.0)));
    ws.send(WsMessage::Text("{".into())).await.unwrap();
    assert_eq!(ws_json(&mut ws).await["type"], "error");
    ws.send(WsMessage::Binary(binary(&pose('U')).into())).await.unwrap();
    assert_eq!(ws_json(&mut ws).await["label"], "U");
    ws.close(None).await.unwrap();
    server.stop().await.unwrap();
}

async fn refused(url: String) -> (u16, Value) {
    match tokio_tungstenite::connect_async(url).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_deref().map(|b| serde_json::from_slice(b).unwrap()).unwrap_or(Value::Null);
            (status, body)
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_failed_and_busy_models_are_refused_before_the_upgrade() {
    let server = start(Config { max_concurrent_sessions: 1, ..base_config() }).await;
    server.registry.update(stream_status(MODEL, ModelState::Ready, None));
    server.registry.insert_engine(MODEL, engine());
    let gone = "lstm_best_acc0.9946";
    let reason = "missing file /app/models/lstm_best_acc0.9946/model.onnx: No such file or directory (os error 2)";
    server.registry.update(stream_status(gone, ModelState::Failed, Some(reason)));
    let mut tagger = ModelStatus::new("ced-tiny", "ced", "tagging", false);
    tagger.state = ModelState::Ready;
    server.registry.update(tagger);
    server.registry.finish_first_pass();

    let (status, body) = refused(server.ws_url("/v1/streams/nope")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["param"].as_str()),
        (404, Some("not_found"), Some("model"))
    );
    let (status, _) = refused(server.ws_url("/v1/streams/ced-tiny")).await;
    assert_eq!(status, 404, "not a stream model");
    // A model that failed to load: 503 with the reason, never a mock answer; health says so.
    let (status, body) = refused(server.ws_url(&format!("/v1/streams/{gone}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("model_unavailable")));
    assert!(body["error"]["message"].as_str().unwrap().contains("failed: missing file"), "{body}");
    let health = json(client().get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["models"][gone]["state"], "failed");

    // MAX_CONCURRENT_SESSIONS = 1: the second stream is refused with 503 before the upgrade.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(&format!("/v1/streams/{MODEL}"))).await.unwrap();
    let (status, body) = refused(server.ws_url(&format!("/v1/streams/{MODEL}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("overloaded")));
    ws.send(WsMessage::Text(json_frame(1.0, 'Y').into())).await.unwrap();
    assert_eq!(ws_json(&mut ws).await["label"], "Y", "the first session is unaffected");
    ws.close(None).await.unwrap();
    server.stop().await.unwrap();
}
