//! Speech-to-text through the real server stack, the real Whisper model (`whisper-tiny.en`) and
//! the real Silero VAD: every response format, SSE, translations, both WebSocket protocols, the
//! official OpenAI Python client, bad input, and concurrency. Speech comes from `espeak-ng`
//! (synthesised at test time), so every expected text is the sentence that was spoken.
//! Needs `make setup` (runtime + models) and espeak-ng.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use timbre_engines::manifest::Manifest;
use timbre_engines::{Engine, Loader, ModelState};
use timbre_server::Config;
use tokio_tungstenite::tungstenite::Message;

const FOX: &str = "The quick brown fox jumps over the lazy dog.";
const STELLA: &str = "Please call Stella and ask her to bring these things with her.";
/// Sentences tiny.en gets right with greedy decoding (the live protocols' default); it hears
/// the fox sentence greedily as "The quick round-fark jump…".
const TURN: &str = "Turn left at the second traffic light.";
const REPORT: &str = "Did you remember to send the report on Tuesday?";
const MODEL: &str = "whisper-tiny.en";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The models, loaded once per test binary by the production loader and shared by every test's
/// server (engines run on their own threads, not on a test's runtime).
fn engines() -> &'static Vec<(String, Engine)> {
    static ENGINES: OnceLock<Vec<(String, Engine)>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings {
            threads: 2,
            ..Default::default()
        });
        [MODEL, "silero-vad"]
            .iter()
            .map(|name| {
                let m = Manifest::from_file(&repo().join("models").join(name).join("model.toml"))
                    .unwrap_or_else(|e| panic!("{name}: {e} — run `make setup` first"));
                let engine = loader.load(&m, &|_| {}).unwrap_or_else(|e| panic!("{name} does not load: {e}"));
                (name.to_string(), engine)
            })
            .collect()
    })
}

struct Cached;

impl Loader for Cached {
    fn load(&self, m: &Manifest, _: &dyn Fn(ModelState)) -> Result<Engine, String> {
        engines().iter().find(|(n, _)| *n == m.name).map(|(_, e)| Arc::clone(e)).ok_or("not cached".into())
    }
}

/// A server whose registry holds the real Whisper and VAD models.
async fn stt_server(config: Config) -> TestServer {
    let server = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    for name in [MODEL, "silero-vad"] {
        std::os::unix::fs::symlink(repo().join("models").join(name), dir.path().join(name)).unwrap();
    }
    let plan = server.registry.discover(dir.path());
    assert_eq!(plan.len(), 2, "run `make setup` first");
    let _ = tokio::task::spawn_blocking(engines).await;
    Arc::clone(&server.registry).load_all(plan, Arc::new(Cached), 2).await;
    let snap = server.registry.snapshot();
    for name in [MODEL, "silero-vad"] {
        assert_eq!(snap.models[name].state, ModelState::Ready, "{name}: {:?}", snap.models[name].reason);
    }
    server
}

/// `text` spoken by espeak-ng, as WAV bytes (22.05 kHz).
fn speech(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng is needed for the speech tests (apt-get install espeak-ng)");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

fn samples(wav: &[u8], rate: u32) -> Vec<f32> {
    timbre_audio::decode_mono(wav, Some("wav"), rate).unwrap()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Most of the spoken words are in the transcript (tiny.en on synthetic speech is not perfect).
fn assert_heard(transcript: &str, spoken: &str) {
    let heard = words(transcript);
    let said = words(spoken);
    let found = said.iter().filter(|w| heard.contains(w)).count();
    assert!(found * 10 >= said.len() * 7, "heard {transcript:?} for {spoken:?} ({found}/{} words)", said.len());
}

/// Decoding is CPU-bound and tests share a small machine: give requests time.
fn stt_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap()
}

/// How long a socket test waits for the next message.
const WAIT: Duration = Duration::from_secs(180);

fn file_form(bytes: Vec<u8>, name: &str) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()))
}

fn url(server: &TestServer) -> String {
    server.url("/v1/audio/transcriptions")
}

async fn still_healthy(server: &TestServer, c: &reqwest::Client, good: &[u8]) {
    let h = c.get(server.url("/health")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = c
        .post(url(server))
        .multipart(file_form(good.to_vec(), "ok.wav").text("response_format", "text"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a good request still works");
}

#[tokio::test]
async fn every_response_format() {
    let server = stt_server(base_config()).await;
    let c = stt_client();
    let audio = speech(FOX);
    let seconds = samples(&audio, 16_000).len() as f64 / 16_000.0;

    let r = c
        .post(url(&server))
        .multipart(file_form(audio.clone(), "fox.wav").text("model", "whisper-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for h in ["x-queue-time", "x-inference-time", "x-total-time"] {
        assert!(r.headers()[h].to_str().unwrap().parse::<f64>().unwrap() >= 0.0, "{h}");
    }
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let v = json(r).await;
    let text = v["text"].as_str().unwrap();
    assert_heard(text, FOX);
    assert_eq!(text, text.trim());
    assert_eq!(v["usage"]["seconds"], seconds.ceil() as u64);

    let r = c
        .post(url(&server))
        .multipart(file_form(audio.clone(), "fox.wav").text("response_format", "text"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    let plain = r.text().await.unwrap();
    assert_eq!(plain, format!("{text}\n"), "same decoding, same text");

    let r = c
        .post(url(&server))
        .multipart(file_form(audio.clone(), "fox.wav").text("response_format", "srt"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/x-subrip"));
    let srt = r.text().await.unwrap();
    let lines: Vec<&str> = srt.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].starts_with("00:00:0") && lines[1].contains(" --> ") && lines[1].contains(','), "{srt}");
    assert_heard(&srt, FOX);

    let r = c
        .post(url(&server))
        .multipart(file_form(audio.clone(), "fox.wav").text("response_format", "vtt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/vtt; charset=utf-8");
    let vtt = r.text().await.unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:0"), "{vtt}");
    assert!(vtt.lines().nth(2).unwrap().contains('.'));

    let form = file_form(audio.clone(), "fox.wav").text("response_format", "verbose_json");
    let v = json(c.post(url(&server)).multipart(form).send().await.unwrap()).await;
    assert_eq!((v["task"].as_str(), v["language"].as_str()), (Some("transcribe"), Some("english")));
    assert!((v["duration"].as_f64().unwrap() - seconds).abs() < 0.01);
    let segs = v["segments"].as_array().unwrap();
    assert!(!segs.is_empty() && v.get("words").is_none(), "segments only by default");
    for s in segs {
        for k in [
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ] {
            assert!(s.get(k).is_some(), "segment lacks {k}: {s}");
        }
        assert!(s["start"].as_f64().unwrap() <= s["end"].as_f64().unwrap());
        assert!(s["end"].as_f64().unwrap() <= seconds + 0.05);
    }

    let form = file_form(audio, "fox.wav")
        .text("response_format", "verbose_json")
        .text("timestamp_granularities[]", "word")
        .text("timestamp_granularities[]", "segment");
    let v = json(c.post(url(&server)).multipart(form).send().await.unwrap()).await;
    let ws = v["words"].as_array().unwrap();
    assert!(v["segments"].is_array());
    let spoken: Vec<String> = ws.iter().map(|w| w["word"].as_str().unwrap().to_string()).collect();
    assert_heard(&spoken.join(" "), FOX);
    let mut last = 0.0;
    for w in ws {
        let (s, e) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        assert!(s >= last - 0.01 && e >= s && e <= seconds + 0.05, "word times in order: {w}");
        last = s;
    }
    let fox = ws.iter().find(|w| words(w["word"].as_str().unwrap()) == ["fox"]).expect("the word fox");
    let dog = ws.iter().find(|w| words(w["word"].as_str().unwrap()) == ["dog"]).expect("the word dog");
    assert!(fox["start"].as_f64().unwrap() < seconds / 2.0 && dog["start"].as_f64().unwrap() > seconds / 2.0, "{ws:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn streams_deltas_then_done_over_sse() {
    let server = stt_server(base_config()).await;
    let c = stt_client();
    let mut two = samples(&speech(FOX), 16_000);
    two.extend(vec![0.0; 8000]);
    two.extend(samples(&speech(STELLA), 16_000));
    let wav = timbre_audio::encode(&two, 16_000, timbre_audio::OutputFormat::Wav).unwrap();
    let r = c.post(url(&server)).multipart(file_form(wav, "two.wav").text("stream", "true")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = r.text().await.unwrap();
    let events: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let (done, deltas) = events.split_last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{events:?}");
    assert!(!deltas.is_empty() && deltas.iter().all(|d| d["type"] == "transcript.text.delta"), "{events:?}");
    let joined: String = deltas.iter().map(|d| d["delta"].as_str().unwrap()).collect();
    assert_eq!(joined, done["text"].as_str().unwrap());
    assert_heard(&joined, &format!("{FOX} {STELLA}"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn translation_needs_a_multilingual_model() {
    let server = stt_server(base_config()).await;
    let c = stt_client();
    let r =
        c.post(server.url("/v1/audio/translations")).multipart(file_form(speech(FOX), "fox.wav")).send().await.unwrap();
    let v = assert_envelope(r, 422, "invalid_value").await;
    assert_eq!(v["error"]["param"], "model");
    assert!(v["error"]["message"].as_str().unwrap().contains("English-only"));
    let form = file_form(speech(FOX), "fox.wav").text("language", "de");
    let v = assert_envelope(c.post(url(&server)).multipart(form).send().await.unwrap(), 422, "invalid_value").await;
    assert_eq!(v["error"]["param"], "language");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let server = stt_server(Config { max_upload_mb: 1, ..base_config() }).await;
    let c = stt_client();
    let good = speech("Hello there.");

    let v = assert_envelope(
        c.post(url(&server)).multipart(Form::new().text("model", "whisper-1")).send().await.unwrap(),
        400,
        "missing_file",
    )
    .await;
    assert_eq!(v["error"]["param"], "file");
    still_healthy(&server, &c, &good).await;

    let v = assert_envelope(
        c.post(url(&server)).multipart(file_form(Vec::new(), "e.wav")).send().await.unwrap(),
        422,
        "invalid_value",
    )
    .await;
    assert_eq!(v["error"]["param"], "file");
    still_healthy(&server, &c, &good).await;

    let junk = file_form(b"definitely not audio, just some words".repeat(30), "notes.txt");
    let r = c.post(url(&server)).multipart(junk).send().await.unwrap();
    assert!(r.status() == 415 || r.status() == 422, "{}", r.status());
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "file");
    still_healthy(&server, &c, &good).await;

    let big = file_form(vec![0u8; 2 * 1024 * 1024], "big.wav");
    assert_envelope(c.post(url(&server)).multipart(big).send().await.unwrap(), 413, "payload_too_large").await;
    still_healthy(&server, &c, &good).await;

    let v = assert_envelope(
        c.post(url(&server))
            .multipart(file_form(good.clone(), "a.wav").text("model", "whisper-9"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_eq!(v["error"]["param"], "model");
    assert!(v["error"]["message"].as_str().unwrap().contains(MODEL), "lists the models: {v}");
    for (field, value) in
        [("response_format", "xml"), ("temperature", "3"), ("timestamp_granularities[]", "char"), ("beam_size", "0")]
    {
        let form = file_form(good.clone(), "a.wav").text(field, value);
        let v = assert_envelope(c.post(url(&server)).multipart(form).send().await.unwrap(), 422, "invalid_value").await;
        assert_eq!(v["error"]["param"], field);
    }
    still_healthy(&server, &c, &good).await;

    // The model not ready: 503 with its state and reason, and Retry-After.
    server.registry.set_state(MODEL, ModelState::Failed, Some("weights corrupt".into()));
    let r = c.post(url(&server)).multipart(file_form(good.clone(), "a.wav")).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let v = assert_envelope(r, 503, "model_unavailable").await;
    assert!(v["error"]["message"].as_str().unwrap().contains("weights corrupt"));
    match tokio_tungstenite::connect_async(server.ws_url("/v1/stt/stream")).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    server.registry.set_state(MODEL, ModelState::Ready, None);
    still_healthy(&server, &c, &good).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn four_concurrent_requests_all_succeed() {
    let server = stt_server(base_config()).await;
    let c = stt_client();
    let audio = speech(STELLA);
    let requests = (0..4).map(|_| {
        let (c, url, audio) = (c.clone(), url(&server), audio.clone());
        async move {
            let form = file_form(audio, "s.wav").text("response_format", "text");
            let r = c.post(url).multipart(form).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    });
    let texts = futures_util::future::join_all(requests).await;
    assert_heard(&texts[0], STELLA);
    assert!(texts.iter().all(|t| t == &texts[0]), "the same audio gives the same text under load: {texts:?}");
    server.stop().await.unwrap();
}

/// Messages until the server closes: (JSON messages, close code).
async fn until_close<S>(ws: &mut S) -> (Vec<Value>, Option<u16>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(t))) => out.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => return (out, frame.map(|f| u16::from(f.code))),
            None => return (out, None),
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn wait_for_sessions(server: &TestServer, n: usize) {
    for _ in 0..200 {
        if server.state.sessions.active() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} sessions open, expected {n}", server.state.sessions.active());
}

#[tokio::test]
async fn simple_protocol_partials_and_finals_over_websocket() {
    let server = stt_server(base_config()).await;
    let mut pcm = vec![0.0f32; 8000];
    pcm.extend(samples(&speech(STELLA), 16_000));
    pcm.extend(vec![0.0; 16_000]);
    pcm.extend(samples(&speech(TURN), 16_000));
    pcm.extend(vec![0.0; 8000]);
    let bytes = timbre_audio::f32_to_pcm16_bytes(&pcm);

    for path in ["/v1/stt/stream", "/ws/echo"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(path)).await.unwrap();
        ws.send(Message::Text(json!({"sample_rate": 16000, "encoding": "pcm16", "language": "en"}).to_string().into()))
            .await
            .unwrap();
        let ready = next_json(&mut ws).await;
        assert_eq!((ready["type"].as_str(), ready["model"].as_str()), (Some("ready"), Some(MODEL)), "{path}");
        if path == "/ws/echo" {
            // The alias speaks the same protocol; one short utterance is enough.
            for frame in timbre_audio::f32_to_pcm16_bytes(&samples(&speech("Hello there."), 16_000)).chunks(3200) {
                ws.send(Message::Binary(frame.to_vec().into())).await.unwrap();
            }
            ws.send(Message::Text(r#"{"type":"eof"}"#.into())).await.unwrap();
            let (msgs, code) = until_close(&mut ws).await;
            assert_eq!(code, Some(1000));
            assert!(msgs.iter().any(|m| m["type"] == "final"), "{msgs:?}");
            continue;
        }
        // Real time, 100 ms frames, with one malformed frame in the middle.
        for (i, frame) in bytes.chunks(3200).enumerate() {
            ws.send(Message::Binary(frame.to_vec().into())).await.unwrap();
            if i == 3 {
                ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ws.send(Message::Text(r#"{"type":"eof"}"#.into())).await.unwrap();
        let (msgs, code) = until_close(&mut ws).await;
        assert_eq!(code, Some(1000), "{msgs:?}");
        let errors: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "error").collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["code"], "invalid_audio");
        let finals: Vec<&Value> = msgs.iter().filter(|m| m["type"] == "final").collect();
        assert_eq!(finals.len(), 2, "one final per utterance: {msgs:?}");
        assert_heard(finals[0]["text"].as_str().unwrap(), STELLA);
        assert_heard(finals[1]["text"].as_str().unwrap(), TURN);
        let stella_len = samples(&speech(STELLA), 16_000).len() as f64 / 16_000.0;
        let (s0, e0) = (finals[0]["start"].as_f64().unwrap(), finals[0]["end"].as_f64().unwrap());
        assert!((s0 - 0.5).abs() < 0.3 && e0 > s0 && e0 < 0.5 + stella_len + 0.3, "{s0}–{e0}");
        let s1 = finals[1]["start"].as_f64().unwrap();
        assert!((s1 - (1.5 + stella_len)).abs() < 0.4, "second utterance after the 1 s pause: {s1}");
        let fw = finals[1]["words"].as_array().unwrap();
        assert!(!fw.is_empty());
        assert!(fw.iter().all(|w| w["start"].as_f64().unwrap() >= s1 - 0.35), "absolute word times: {fw:?}");
        let first_final = msgs.iter().position(|m| m["type"] == "final").unwrap();
        assert!(msgs[..first_final].iter().any(|m| m["type"] == "partial"), "partials while speaking: {msgs:?}");
    }
    wait_for_sessions(&server, 0).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn simple_protocol_bad_config_and_disconnects_free_the_slot() {
    let server = stt_server(Config { max_concurrent_sessions: 1, ..base_config() }).await;
    let c = stt_client();
    let good = speech("Hello there.");
    for (config, code) in [
        (json!({"encoding": "pcm16"}), 1008),
        (json!({"sample_rate": 12345}), 1003),
        (json!({"sample_rate": 16000, "encoding": "opus"}), 1003),
    ] {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/stt/stream")).await.unwrap();
        ws.send(Message::Text(config.to_string().into())).await.unwrap();
        let (msgs, close) = until_close(&mut ws).await;
        assert_eq!(msgs[0]["type"], "error", "{config}");
        assert_eq!(close, Some(code), "{config}");
        wait_for_sessions(&server, 0).await;
    }
    // Binary before the config: refused and closed.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/stt/stream")).await.unwrap();
    ws.send(Message::Binary(vec![0u8; 320].into())).await.unwrap();
    let (msgs, close) = until_close(&mut ws).await;
    assert_eq!((msgs[0]["code"].as_str(), close), (Some("no_config"), Some(1008)));
    wait_for_sessions(&server, 0).await;

    // A client that vanishes mid-utterance frees its slot; the next one gets in.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/stt/stream")).await.unwrap();
    ws.send(Message::Text(json!({"sample_rate": 16000}).to_string().into())).await.unwrap();
    next_json(&mut ws).await;
    for frame in timbre_audio::f32_to_pcm16_bytes(&samples(&good, 16_000)).chunks(3200) {
        ws.send(Message::Binary(frame.to_vec().into())).await.unwrap();
    }
    drop(ws);
    wait_for_sessions(&server, 0).await;
    still_healthy(&server, &c, &good).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/stt/stream")).await.unwrap();
    ws.send(Message::Text(json!({"sample_rate": 16000}).to_string().into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn realtime_transcription_with_server_vad() {
    let server = stt_server(base_config()).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(server.ws_url("/v1/realtime?intent=transcription")).await.unwrap();
    let created = next_json(&mut ws).await;
    assert_eq!(created["type"], "transcription_session.created");
    assert_eq!(created["session"]["input_audio_format"], "pcm16");
    let update = json!({"type": "transcription_session.update", "event_id": "u1", "session": {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "whisper-1", "language": "en"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}}});
    ws.send(Message::Text(update.to_string().into())).await.unwrap();
    let updated = next_json(&mut ws).await;
    assert_eq!(updated["type"], "transcription_session.updated", "{updated}");
    assert_eq!(updated["session"]["turn_detection"]["silence_duration_ms"], 500);

    let mut pcm = vec![0.0f32; 12_000];
    pcm.extend(samples(&speech(REPORT), 24_000));
    pcm.extend(vec![0.0; 24_000]);
    let bytes = timbre_audio::f32_to_pcm16_bytes(&pcm);
    for piece in bytes.chunks(4800) {
        let audio = base64::engine::general_purpose::STANDARD.encode(piece);
        ws.send(Message::Text(json!({"type": "input_audio_buffer.append", "audio": audio}).to_string().into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = Vec::new();
    while got.last().is_none_or(|v: &Value| v["type"] != "conversation.item.input_audio_transcription.completed") {
        let v = next_json(&mut ws).await;
        assert_ne!(v["type"], "error", "{v}");
        got.push(v);
    }
    let kinds: Vec<&str> = got.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(
        &kinds[..4],
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.created"
        ]
    );
    let start = got[0]["audio_start_ms"].as_u64().unwrap();
    assert!(start <= 250, "speech at 500 ms minus 300 ms of padding: {start}");
    let completed = got.last().unwrap();
    assert_heard(completed["transcript"].as_str().unwrap(), REPORT);
    let deltas: String = got
        .iter()
        .filter(|v| v["type"] == "conversation.item.input_audio_transcription.delta")
        .map(|v| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, completed["transcript"].as_str().unwrap());
    assert_eq!(completed["item_id"], got[2]["item_id"]);

    // Manual turns: commit what was appended.
    ws.send(Message::Text(json!({"type": "session.update", "session": {"turn_detection": null}}).to_string().into()))
        .await
        .unwrap();
    assert!(next_json(&mut ws).await["session"]["turn_detection"].is_null());
    ws.send(Message::Text(json!({"type": "input_audio_buffer.commit", "event_id": "c0"}).to_string().into()))
        .await
        .unwrap();
    let err = next_json(&mut ws).await;
    assert_eq!(
        (err["error"]["code"].as_str(), err["error"]["event_id"].as_str()),
        (Some("input_audio_buffer_commit_empty"), Some("c0"))
    );
    let hello = timbre_audio::f32_to_pcm16_bytes(&samples(&speech(STELLA), 24_000));
    let audio = base64::engine::general_purpose::STANDARD.encode(&hello);
    ws.send(Message::Text(json!({"type": "input_audio_buffer.append", "audio": audio}).to_string().into()))
        .await
        .unwrap();
    ws.send(Message::Text(json!({"type": "input_audio_buffer.commit"}).to_string().into())).await.unwrap();
    let mut got = Vec::new();
    while got.last().is_none_or(|v: &Value| v["type"] != "conversation.item.input_audio_transcription.completed") {
        got.push(next_json(&mut ws).await);
    }
    assert_eq!(got[0]["type"], "input_audio_buffer.committed");
    assert_eq!(got[0]["previous_item_id"], completed["item_id"]);
    assert_heard(got.last().unwrap()["transcript"].as_str().unwrap(), STELLA);
    server.stop().await.unwrap();
}

/// The official OpenAI Python client (scripts/openai-client/venv.sh) against timbre.
#[tokio::test]
async fn the_openai_python_client_works() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED the_openai_python_client_works: python3 is not installed");
        return;
    }
    let venv = std::process::Command::new(repo().join("scripts/openai-client/venv.sh")).output().unwrap();
    assert!(venv.status.success(), "scripts/openai-client/venv.sh failed: {}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let server = stt_server(base_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("fox.wav");
    std::fs::write(&wav, speech(FOX)).unwrap();
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="not-needed")
out = {}
with open(sys.argv[2], "rb") as f:
    out["json"] = client.audio.transcriptions.create(model="whisper-1", file=f).text
with open(sys.argv[2], "rb") as f:
    out["text"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
with open(sys.argv[2], "rb") as f:
    v = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json",
                                          timestamp_granularities=["word", "segment"], language="en", temperature=0)
    out["verbose"] = {"language": v.language, "duration": v.duration, "words": [w.word for w in v.words],
                      "segments": len(v.segments)}
with open(sys.argv[2], "rb") as f:
    out["srt"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
with open(sys.argv[2], "rb") as f:
    events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
    out["stream"] = [e.type for e in events]
    out["stream_text"] = events[-1].text
try:
    with open(sys.argv[2], "rb") as f:
        client.audio.translations.create(model="whisper-1", file=f)
except Exception as e:
    out["translation_error"] = type(e).__name__
print(json.dumps(out))
"#;
    let base = server.url("/v1");
    let (py, wav2) = (python.clone(), wav.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py).arg("-c").arg(script).arg(base).arg(wav2).output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "python: {}", String::from_utf8_lossy(&output.stderr));
    let v: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_heard(v["json"].as_str().unwrap(), FOX);
    assert_eq!(v["text"].as_str().unwrap().trim(), v["json"].as_str().unwrap());
    assert_eq!(v["verbose"]["language"], "english");
    assert!(v["verbose"]["segments"].as_u64().unwrap() >= 1);
    let spoken: Vec<&str> = v["verbose"]["words"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_heard(&spoken.join(" "), FOX);
    assert!(v["srt"].as_str().unwrap().starts_with(
        "1
00:00:"
    ));
    let kinds = v["stream"].as_array().unwrap();
    assert_eq!(kinds.last().unwrap(), "transcript.text.done");
    assert!(kinds[..kinds.len() - 1].iter().all(|k| k == "transcript.text.delta"));
    assert_heard(v["stream_text"].as_str().unwrap(), FOX);
    assert_eq!(v["translation_error"], "UnprocessableEntityError", "422 for an English-only model");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_speech_model_everything_says_why_and_the_routes_are_documented() {
    let server = start(base_config()).await;
    server.registry.finish_first_pass();
    let c = stt_client();
    let r = c.post(url(&server)).multipart(file_form(speech("Hello."), "a.wav")).send().await.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let v = assert_envelope(r, 503, "model_unavailable").await;
    assert!(v["error"]["message"].as_str().unwrap().contains("no stt model is installed"), "{v}");
    for path in ["/v1/stt/stream", "/ws/echo", "/v1/realtime?intent=transcription"] {
        match tokio_tungstenite::connect_async(server.ws_url(path)).await.unwrap_err() {
            tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 503, "{path}"),
            other => panic!("{path}: expected 503, got {other:?}"),
        }
    }
    match tokio_tungstenite::connect_async(server.ws_url("/v1/realtime?intent=conversation")).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 422),
        other => panic!("expected 422, got {other:?}"),
    }
    let spec = json(c.get(server.url("/openapi.json")).send().await.unwrap()).await;
    for path in ["/v1/audio/transcriptions", "/v1/audio/translations", "/v1/stt/stream", "/v1/realtime"] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
    server.stop().await.unwrap();
}
