//! Text-to-speech through the real server stack and the real voices: every response format
//! decoded back, both streaming modes, the WebSocket text-in protocol with cancel, bad input, an
//! unknown voice, and a voice whose model failed to load. Needs `make setup` (runtime, models,
//! espeak-ng).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use timbre_engines::ModelState;
use timbre_server::Config;
use tokio_tungstenite::tungstenite::Message;

const PIPER: &str = "piper-en_US-joe-medium";
const VOICE: &str = "en_US-joe-medium";

fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// A server whose models dir holds `names` (symlinks to the fetched models), all loaded.
async fn tts_server(names: &[&str], tweak: impl FnOnce(&mut Config)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        std::os::unix::fs::symlink(models().join(n), dir.path().join(n)).unwrap();
    }
    let mut config = Config { models_dir: dir.path().to_path_buf(), tts_workers: 1, ..base_config() };
    tweak(&mut config);
    let server = start(config).await;
    load(&server, dir.path()).await;
    (server, dir)
}

async fn load(server: &TestServer, dir: &Path) {
    load_with_workers(server, dir, 1).await
}

async fn load_with_workers(server: &TestServer, dir: &Path, tts_workers: usize) {
    let plan = server.registry.discover(dir);
    let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings {
        threads: 1,
        tts_workers,
        tts_sentence_silence: 0.2,
        ..Default::default()
    });
    Arc::clone(&server.registry).load_all(plan, loader, 2).await;
}

async fn speech(server: &TestServer, body: serde_json::Value) -> reqwest::Response {
    client().post(server.url("/v1/audio/speech")).json(&body).send().await.unwrap()
}

const TWO: &str = "Hello there, this is timbre. It speaks two sentences.";

#[tokio::test]
async fn every_response_format_decodes_back() {
    let (server, _dir) = tts_server(&[PIPER], |_| {}).await;
    let snap = server.registry.snapshot();
    assert_eq!(snap.models[PIPER].state, ModelState::Ready, "{:?}", snap.models[PIPER].reason);
    let mut durations = Vec::new();
    for (format, rate, mime) in [
        ("mp3", 22_050, "audio/mpeg"),
        ("opus", 48_000, "audio/ogg"),
        ("flac", 22_050, "audio/flac"),
        ("wav", 22_050, "audio/wav"),
        ("pcm", 24_000, "audio/pcm"),
    ] {
        let r =
            speech(&server, json!({"model": "tts-1", "input": TWO, "voice": "alloy", "response_format": format})).await;
        assert_eq!(r.status(), 200, "{format}");
        assert_eq!(r.headers()["content-type"], mime, "{format}");
        assert!(r.headers().contains_key("x-inference-time"));
        let said: f64 = r.headers()["x-audio-duration"].to_str().unwrap().parse().unwrap();
        let bytes = r.bytes().await.unwrap();
        let (got_rate, seconds) = if format == "pcm" {
            (24_000, bytes.len() as f64 / 2.0 / 24_000.0)
        } else {
            let d = timbre_audio::decode(&bytes, Some(format)).unwrap();
            (d.sample_rate, d.duration_s)
        };
        assert_eq!(got_rate, rate, "{format} sample rate");
        assert!((seconds - said).abs() < 0.06, "{format}: decoded {seconds} s, synthesized {said} s");
        assert!((2.0..8.0).contains(&seconds), "{format}: {seconds} s for two sentences");
        durations.push(seconds);
    }
    // The default is mp3.
    let r = speech(&server, json!({"model": "tts-1", "input": "Default format.", "voice": VOICE})).await;
    assert_eq!(r.headers()["content-type"], "audio/mpeg");
    // Speed 2 roughly halves the audio.
    let r = speech(&server, json!({"input": TWO, "voice": VOICE, "response_format": "wav", "speed": 2.0})).await;
    let fast = timbre_audio::decode(&r.bytes().await.unwrap(), Some("wav")).unwrap().duration_s;
    let ratio = fast / durations[3];
    assert!((0.4..0.7).contains(&ratio), "speed 2 → {ratio}× the duration");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn streams_audio_chunks_and_sse_events() {
    let (server, _dir) = tts_server(&[PIPER], |_| {}).await;
    let text = "The first sentence comes out quickly. Then a second one follows. And a third one ends it.";
    // Whole file, for the reference duration (noise off: Piper's durations are otherwise random).
    let whole = speech(
        &server,
        json!({"input": text, "voice": VOICE, "response_format": "pcm", "noise_scale": 0, "noise_w": 0}),
    )
    .await;
    let whole_s = whole.bytes().await.unwrap().len() as f64 / 48_000.0;

    let started = Instant::now();
    let mut r =
        speech(&server, json!({"input": text, "voice": VOICE, "response_format": "pcm", "stream_format": "audio", "noise_scale": 0, "noise_w": 0}))
            .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none(), "chunked");
    let mut chunks = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        chunks.push((started.elapsed(), c));
    }
    assert!(chunks.len() >= 3, "one chunk per sentence at least: {}", chunks.len());
    let total: usize = chunks.iter().map(|(_, c)| c.len()).sum();
    assert_eq!(total as f64 / 48_000.0, whole_s, "the stream carries exactly the file's samples");
    assert!(chunks[0].0 < chunks.last().unwrap().0, "the first chunk came before the end");

    // mp3 streaming decodes to the same audio (plus LAME's delay and padding).
    let r = speech(
        &server,
        json!({"input": text, "voice": VOICE, "stream_format": "audio", "noise_scale": 0, "noise_w": 0}),
    )
    .await;
    let mp3 = r.bytes().await.unwrap();
    let d = timbre_audio::decode(&mp3, Some("mp3")).unwrap();
    assert!((d.duration_s - whole_s).abs() < 0.15, "{} vs {whole_s}", d.duration_s);

    // SSE: OpenAI's event shapes with base64 audio.
    let r =
        speech(&server, json!({"input": text, "voice": VOICE, "response_format": "pcm", "stream_format": "sse", "noise_scale": 0, "noise_w": 0})).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    let events: Vec<serde_json::Value> =
        body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let deltas: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "speech.audio.delta").collect();
    assert!(deltas.len() >= 3, "{}", deltas.len());
    let audio: usize = deltas
        .iter()
        .map(|e| base64::engine::general_purpose::STANDARD.decode(e["audio"].as_str().unwrap()).unwrap().len())
        .sum();
    assert_eq!(audio as f64 / 48_000.0, whole_s);
    let done = events.last().unwrap();
    assert_eq!(done["type"], "speech.audio.done");
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > 0);
    server.stop().await.unwrap();
}

/// With two idle workers, a stream's first Piper sentence is encoded once and its latent decoded
/// in two slices at once: the stream still carries the whole file's samples (noise off), and
/// the parallel decode is counted, so this fails if the path silently stops being taken.
#[tokio::test]
async fn a_streamed_first_sentence_is_decoded_in_parallel_to_the_same_samples() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(models().join(PIPER), dir.path().join(PIPER)).unwrap();
    let server = start(Config { models_dir: dir.path().to_path_buf(), ..base_config() }).await;
    load_with_workers(&server, dir.path(), 2).await;
    let text = "Thank you for calling the support line today. How can I help you?";
    let body = |stream: bool| {
        let mut b = json!({"input": text, "voice": VOICE, "response_format": "wav", "noise_scale": 0, "noise_w": 0});
        if stream {
            b["stream_format"] = json!("audio");
        }
        b
    };
    let samples =
        |bytes: &[u8]| -> Vec<i16> { bytes[44..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect() };
    let whole = samples(&speech(&server, body(false)).await.bytes().await.unwrap());
    let counted = |metrics: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!(r#"timbre_tts_parallel_decodes_total{{model="{PIPER}"}}"#)))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let before = counted(&client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap());
    let streamed = samples(&speech(&server, body(true)).await.bytes().await.unwrap());
    let after = counted(&client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap());
    assert_eq!(after - before, 1.0, "the first sentence was decoded in parallel once");
    assert_eq!(streamed.len(), whole.len(), "same length");
    let worst = whole.iter().zip(&streamed).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).max().unwrap();
    assert!(worst <= 2, "streamed samples differ from the file's by up to {worst}");
    assert!(whole.iter().any(|s| s.abs() > 10_000), "real audio, not silence");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_voices_are_listed() {
    let (server, _dir) = tts_server(&[PIPER], |_| {}).await;
    let empty = speech(&server, json!({"input": "  ", "voice": VOICE})).await;
    assert_eq!(assert_envelope(empty, 422, "invalid_value").await["error"]["param"], "input");
    let long = speech(&server, json!({"input": "a ".repeat(2049), "voice": VOICE})).await;
    assert!(assert_envelope(long, 422, "invalid_value").await["error"]["message"].as_str().unwrap().contains("4096"));
    let emoji = speech(&server, json!({"input": "👋🎉", "voice": VOICE})).await;
    assert_envelope(emoji, 422, "unspeakable_input").await;
    let mixed = speech(&server, json!({"input": "Hi 👋 there!", "voice": VOICE, "response_format": "wav"})).await;
    assert_eq!(mixed.status(), 200, "unsupported characters are skipped");
    for speed in [0.2, 4.5] {
        let r = speech(&server, json!({"input": "Hi.", "voice": VOICE, "speed": speed})).await;
        assert_eq!(assert_envelope(r, 422, "invalid_value").await["error"]["param"], "speed");
    }
    let aac = speech(&server, json!({"input": "Hi.", "voice": VOICE, "response_format": "aac"})).await;
    assert_eq!(assert_envelope(aac, 422, "invalid_value").await["error"]["param"], "response_format");
    let sf = speech(&server, json!({"input": "Hi.", "voice": VOICE, "stream_format": "video"})).await;
    assert_eq!(assert_envelope(sf, 422, "invalid_value").await["error"]["param"], "stream_format");
    let unknown = speech(&server, json!({"input": "Hi.", "voice": "nobody"})).await;
    let v = assert_envelope(unknown, 404, "not_found").await;
    assert_eq!(v["error"]["param"], "voice");
    assert!(v["error"]["message"].as_str().unwrap().contains(VOICE), "lists voices: {v}");
    let missing = client().post(server.url("/v1/audio/speech")).json(&json!({"voice": VOICE})).send().await.unwrap();
    assert_eq!(missing.status(), 422);
    let model = speech(&server, json!({"model": "no-such-model", "input": "Hi."})).await;
    assert_eq!(model.status(), 404);

    let v = json(client().get(server.url("/v1/audio/voices")).send().await.unwrap()).await;
    let joe = v["data"].as_array().unwrap().iter().find(|x| x["name"] == VOICE).unwrap();
    assert_eq!(joe["language"], "en-US");
    assert_eq!(joe["sample_rate"], 22050);
    assert_eq!(joe["model"], PIPER);
    assert_eq!(joe["state"], "ready");
    assert_eq!(v["default_voice"], VOICE);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_voice_whose_model_failed_answers_503_and_health_degrades() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(PIPER);
    std::fs::create_dir(&copy).unwrap();
    for f in ["model.toml", "en_US-joe-medium.onnx.json"] {
        std::fs::copy(models().join(PIPER).join(f), copy.join(f)).unwrap();
    }
    std::fs::write(copy.join("en_US-joe-medium.onnx"), b"this is not an onnx model").unwrap();
    let server = start(Config { models_dir: dir.path().to_path_buf(), ..base_config() }).await;
    load(&server, dir.path()).await;
    let snap = server.registry.snapshot();
    assert_eq!(snap.models[PIPER].state, ModelState::Failed);
    let voices = json(client().get(server.url("/v1/audio/voices")).send().await.unwrap()).await;
    assert_eq!(voices["data"][0]["state"], "failed", "{voices}");
    let r = speech(&server, json!({"input": "Hello.", "voice": VOICE})).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_envelope(r, 503, "model_unavailable").await;
    let health = json(client().get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(health["status"], "degraded", "{health}");
    server.stop().await.unwrap();
}

async fn ws_json(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> serde_json::Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Binary(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_text_in_audio_out_with_cancel() {
    let (server, _dir) = tts_server(&[PIPER], |c| c.max_concurrent_sessions = 1).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/tts/stream")).await.unwrap();
    // The session holds the only slot: a second connection is refused before the upgrade.
    let second = tokio_tungstenite::connect_async(server.ws_url("/ws/tts")).await;
    assert!(second.is_err(), "MAX_CONCURRENT_SESSIONS=1");
    ws.send(Message::text(
        json!({"type": "config", "voice": VOICE, "format": "pcm", "sample_rate": 16000}).to_string(),
    ))
    .await
    .unwrap();
    let ready = ws_json(&mut ws).await;
    assert_eq!((ready["type"].as_str(), ready["sample_rate"].as_u64()), (Some("ready"), Some(16000)));
    // LLM-style deltas: the first sentence is spoken as soon as it is complete.
    for delta in ["Good mor", "ning. How can", " I help", " you today? I am"] {
        ws.send(Message::text(json!({"type": "text", "text": delta}).to_string())).await.unwrap();
    }
    let m1 = ws_json(&mut ws).await;
    assert_eq!((m1["type"].as_str(), m1["sentence"].as_str()), (Some("marker"), Some("Good morning.")));
    let mut pcm = Vec::new();
    let mut markers = vec![m1];
    ws.send(Message::text(json!({"type": "text", "text": " listening."}).to_string())).await.unwrap();
    ws.send(Message::text(json!({"type": "eof"}).to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => pcm.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "done" {
                    break;
                }
                markers.push(v);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let sentences: Vec<&str> = markers.iter().map(|m| m["sentence"].as_str().unwrap()).collect();
    assert_eq!(sentences, ["Good morning.", "How can I help you today?", "I am listening."]);
    let spoken_ms: f64 = markers.iter().map(|m| m["audio_ms"].as_f64().unwrap()).sum();
    let got_ms = pcm.len() as f64 / 2.0 / 16.0;
    assert!((got_ms - spoken_ms).abs() < 30.0, "{got_ms} ms of pcm vs markers {spoken_ms} ms");
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1000),
        other => panic!("expected close, got {other:?}"),
    }
    drop(ws);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Barge-in on the seed path: cancel within 100 ms, and no audio of the cancelled text after.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/tts")).await.unwrap();
    ws.send(Message::text(json!({"type": "config", "format": "pcm"}).to_string())).await.unwrap();
    assert_eq!(ws_json(&mut ws).await["type"], "ready");
    let long = "This is the first of many sentences. ".to_string()
        + &"Here is yet another rather long sentence that keeps going on and on for a while. ".repeat(6);
    ws.send(Message::text(json!({"type": "text", "text": long}).to_string())).await.unwrap();
    loop {
        if let Message::Binary(_) =
            tokio::time::timeout(Duration::from_secs(20), ws.next()).await.unwrap().unwrap().unwrap()
        {
            break;
        }
    }
    let t0 = Instant::now();
    ws.send(Message::text(json!({"type": "cancel"}).to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Text(t) if t.contains("\"cancelled\"") => break,
            _ => {} // audio already on the wire before the cancel
        }
    }
    let ack = t0.elapsed();
    assert!(ack < Duration::from_millis(100), "cancel acknowledged after {ack:?}");
    let after = tokio::time::timeout(Duration::from_millis(1500), ws.next()).await;
    assert!(after.is_err(), "nothing may follow the cancel: {after:?}");
    ws.send(Message::text(json!({"type": "text", "text": "Still here. "}).to_string())).await.unwrap();
    assert_eq!(ws_json(&mut ws).await["sentence"], "Still here.");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hibari_voice_speaks_at_24k() {
    let (server, _dir) = tts_server(&["hibari", PIPER], |_| {}).await;
    let snap = server.registry.snapshot();
    assert_eq!(snap.models["hibari"].state, ModelState::Ready, "{:?}", snap.models["hibari"].reason);
    let r = speech(
        &server,
        json!({"input": "Hello from hibari. It costs $9.99 today.", "voice": "heart", "response_format": "wav"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let d = timbre_audio::decode(&r.bytes().await.unwrap(), Some("wav")).unwrap();
    assert_eq!(d.sample_rate, 24_000);
    assert!((1.5..8.0).contains(&d.duration_s), "{}", d.duration_s);
    let v = json(client().get(server.url("/v1/audio/voices")).send().await.unwrap()).await;
    let heart = v["data"].as_array().unwrap().iter().find(|x| x["name"] == "heart").unwrap();
    assert_eq!((heart["language"].as_str(), heart["sample_rate"].as_u64()), (Some("en-US"), Some(24000)));
    // The required Piper voice stays the default for OpenAI voice names.
    assert_eq!(v["default_voice"], VOICE);
    server.stop().await.unwrap();
}

/// The official OpenAI Python client (`client.audio.speech.create` and
/// `with_streaming_response`), from the repo-scripted venv (scripts/reference/tts_venv.sh; pip
/// installs it on first use).
#[tokio::test]
async fn the_openai_python_client_works() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::process::Command::new(root.join("scripts/reference/tts_venv.sh")).output().unwrap();
    assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let (server, _dir) = tts_server(&[PIPER], |_| {}).await;
    let out = tempfile::tempdir().unwrap();
    let base = server.url("/v1");
    let script = root.join("scripts/e2e/openai_speech.py");
    let out_path = out.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg(script).arg(base).arg(out_path).output().unwrap()
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(seen["mp3_content_type"], "audio/mpeg");
    assert_eq!(seen["unknown_voice"], 404, "{seen}");
    assert_eq!(seen["unknown_voice_param"], "voice", "{seen}");
    let mp3 = timbre_audio::decode(&std::fs::read(out.path().join("speech.mp3")).unwrap(), Some("mp3")).unwrap();
    assert!(mp3.duration_s > 1.0 && mp3.sample_rate == 22_050, "{} s", mp3.duration_s);
    let wav = timbre_audio::decode(&std::fs::read(out.path().join("speech.wav")).unwrap(), Some("wav")).unwrap();
    assert!(wav.duration_s > 0.5);
    let pcm = std::fs::read(out.path().join("streamed.pcm")).unwrap();
    assert!(pcm.len() as f64 / 48_000.0 > 2.0, "{} bytes of 24 kHz pcm", pcm.len());
    assert!(seen["chunks"].as_u64().unwrap() >= 2, "{seen}");
    server.stop().await.unwrap();
}
