//! The text-in, audio-out WebSocket protocol (`WS /v1/tts/stream`, seed alias `/ws/tts`), as
//! plain logic over channels so it is tested without a socket or a model.
//!
//! Client → server (JSON text frames):
//! - `{"type":"config","voice":"…","format":"pcm","sample_rate":24000,"speed":1.0}` (all optional)
//! - `{"type":"text","text":"…"}`: deltas as an LLM produces them; every complete sentence (end
//!   punctuation followed by a space) is synthesized at once
//! - `{"type":"flush"}`: synthesize what is buffered even without end punctuation
//! - `{"type":"eof"}`: flush, send the rest, `{"type":"done"}`, close 1000
//! - `{"type":"cancel"}`: barge-in: buffered text and pending sentences are dropped, audio of a
//!   sentence being synthesized is discarded, `{"type":"cancelled"}` comes back at once
//!
//! Server → client: `{"type":"ready",…}`, then per sentence `{"type":"marker","sentence":…,
//! "index":…,"audio_ms":…}` followed by binary audio frames, `{"type":"error",…}` (the session
//! continues), `{"type":"done"}`.
//!
//! Cancelling works by generations: each cancel bumps a counter; sentences queued or
//! synthesized under an older generation are skipped or dropped, so a long sentence in flight
//! costs at most its own compute, never late audio.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};
use timbre_audio::{OutputFormat, StreamEncoder};
use timbre_engines::tts::text::complete_prefix;
use tokio::sync::mpsc;

/// A frame from the client.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
}

/// A frame to the client.
#[derive(Debug, PartialEq)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, &'static str),
}

/// One voice, ready to speak sentences.
pub trait Synth: Send + Sync {
    fn voice(&self) -> &str;
    fn sample_rate(&self) -> u32;
    fn sentences(&self, text: &str) -> Vec<String>;
    fn speak<'a>(&'a self, sentence: &'a str, speed: f32) -> BoxFuture<'a, Result<Vec<f32>, String>>;
}

/// Finds the voice a config message names (`None`: the default voice).
pub trait Voices: Send + Sync {
    fn open(&self, voice: Option<&str>) -> Result<Arc<dyn Synth>, (String, String)>;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMsg {
    #[serde(rename = "type", default)]
    _kind: Option<String>,
    pub voice: Option<String>,
    pub format: Option<String>,
    pub sample_rate: Option<u32>,
    pub speed: Option<f32>,
}

/// What the driver must do next.
#[derive(Debug)]
pub enum Action {
    Send(Value),
    Configure(ConfigMsg),
    Speak(String),
    Cancel,
    Finish,
}

fn error(code: &str, message: impl std::fmt::Display, param: Option<&str>) -> Action {
    Action::Send(json!({"type": "error", "code": code, "message": message.to_string(), "param": param}))
}

/// Text buffering and message parsing: plain data in, actions out.
#[derive(Default)]
pub struct Session {
    buffer: String,
    configured: bool,
    finished: bool,
}

/// Most text one session may hold unsynthesized (a client that never ends a sentence).
const MAX_BUFFER: usize = 16 * 1024;

impl Session {
    pub fn configured(&mut self) {
        self.configured = true;
    }

    pub fn on_text(&mut self, text: &str) -> Vec<Action> {
        if self.finished {
            return vec![error("finished", "the session is closing after eof", None)];
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return vec![error("invalid_json", format!("not JSON: {e}"), None)],
        };
        match value.get("type").and_then(Value::as_str) {
            Some("config") | None => match serde_json::from_value::<ConfigMsg>(value) {
                Ok(c) => vec![Action::Configure(c)],
                Err(e) => vec![error("invalid_config", e, None)],
            },
            Some("text") => {
                let Some(delta) = value.get("text").and_then(Value::as_str) else {
                    return vec![error("invalid_text", "`text` must be a string", Some("text"))];
                };
                if !self.configured {
                    return vec![error("no_config", "send a config message first", None)];
                }
                if self.buffer.len() + delta.len() > MAX_BUFFER {
                    return vec![error(
                        "too_much_text",
                        "more than 16 KiB without a sentence end; send flush",
                        Some("text"),
                    )];
                }
                self.buffer.push_str(delta);
                let cut = complete_prefix(&self.buffer);
                if cut == 0 {
                    return Vec::new();
                }
                let ready: String = self.buffer.drain(..cut).collect();
                vec![Action::Speak(ready)]
            }
            Some("flush") => self.flush(),
            Some("eof") => {
                let mut out = self.flush();
                self.finished = true;
                out.push(Action::Finish);
                out
            }
            Some("cancel") => {
                self.buffer.clear();
                vec![Action::Cancel]
            }
            Some(other) => vec![error("unknown_type", format!("unknown message type `{other}`"), Some("type"))],
        }
    }

    fn flush(&mut self) -> Vec<Action> {
        let text = std::mem::take(&mut self.buffer);
        if text.trim().is_empty() { Vec::new() } else { vec![Action::Speak(text)] }
    }
}

/// Output settings chosen by the config message.
#[derive(Clone)]
struct Output {
    synth: Arc<dyn Synth>,
    format: OutputFormat,
    rate: u32,
    speed: f32,
}

fn configure(c: &ConfigMsg, voices: &dyn Voices) -> Result<Output, (String, String, &'static str)> {
    let format: OutputFormat = c
        .format
        .as_deref()
        .unwrap_or("pcm")
        .parse()
        .map_err(|e: timbre_audio::AudioError| ("invalid_config".to_string(), e.to_string(), "format"))?;
    if format == OutputFormat::Flac {
        return Err((
            "invalid_config".into(),
            "flac cannot be streamed; use pcm, wav, mp3, opus, mulaw or alaw".into(),
            "format",
        ));
    }
    let speed = c.speed.unwrap_or(1.0);
    if !(0.25..=4.0).contains(&speed) {
        return Err(("invalid_config".into(), "speed must be between 0.25 and 4.0".into(), "speed"));
    }
    let synth = voices.open(c.voice.as_deref()).map_err(|(code, message)| (code, message, "voice"))?;
    let default_rate = match format {
        OutputFormat::Mulaw | OutputFormat::Alaw => 8_000,
        OutputFormat::Opus => 24_000,
        _ => synth.sample_rate(),
    };
    let rate = c.sample_rate.unwrap_or(default_rate);
    let opus_ok = [8_000, 12_000, 16_000, 24_000, 48_000].contains(&rate);
    if !(8_000..=48_000).contains(&rate) || (format == OutputFormat::Opus && !opus_ok) {
        return Err((
            "invalid_config".into(),
            format!("sample_rate {rate} is not available for {format}"),
            "sample_rate",
        ));
    }
    Ok(Output { synth, format, rate, speed })
}

enum Job {
    Speak { generation: u64, text: String, out: Output },
    End { generation: u64 },
}

enum Produced {
    Sentence { generation: u64, index: usize, text: String, audio_ms: f64, bytes: Vec<u8> },
    Failed { generation: u64, message: String },
    Done { bytes: Vec<u8> },
}

/// Runs one session: reads `incoming` until it closes, writes to `outgoing`. Returns when the
/// client is gone or the session finished (after `eof` and the last audio).
pub async fn drive(mut incoming: mpsc::Receiver<Incoming>, outgoing: mpsc::Sender<Outgoing>, voices: Arc<dyn Voices>) {
    let generation = Arc::new(AtomicU64::new(0));
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(64);
    let (done_tx, mut produced) = mpsc::channel::<Produced>(4);
    let synth_task = tokio::spawn(synthesize(jobs_rx, done_tx, Arc::clone(&generation)));
    let mut session = Session::default();
    let mut output: Option<Output> = None;
    let send = |v: Value| Outgoing::Text(v.to_string());
    loop {
        tokio::select! {
            msg = incoming.recv() => {
                let actions = match msg {
                    None => break,
                    Some(Incoming::Text(t)) => session.on_text(&t),
                    Some(Incoming::Binary(_)) => vec![error("unexpected_binary", "this protocol takes text messages only", None)],
                };
                for action in actions {
                    let reply = match action {
                        Action::Send(v) => Some(send(v)),
                        Action::Configure(c) => match configure(&c, voices.as_ref()) {
                            Ok(o) => {
                                session.configured();
                                let ready = json!({"type": "ready", "voice": o.synth.voice(), "format": o.format.to_string(),
                                    "sample_rate": o.rate});
                                output = Some(o);
                                Some(send(ready))
                            }
                            Err((code, message, param)) => Some(send(json!({"type": "error", "code": code,
                                "message": message, "param": param}))),
                        },
                        Action::Speak(text) => match output.clone() {
                            Some(out) => {
                                let job = Job::Speak { generation: generation.load(Ordering::Acquire), text, out };
                                if jobs_tx.try_send(job).is_err() {
                                    Some(send(json!({"type": "error", "code": "busy",
                                        "message": "too many sentences waiting; slow down or cancel"})))
                                } else {
                                    None
                                }
                            }
                            None => Some(send(json!({"type": "error", "code": "no_config", "message": "send a config message first"}))),
                        },
                        Action::Cancel => {
                            generation.fetch_add(1, Ordering::AcqRel);
                            Some(send(json!({"type": "cancelled"})))
                        }
                        Action::Finish => {
                            let _ = jobs_tx.send(Job::End { generation: generation.load(Ordering::Acquire) }).await;
                            None
                        }
                    };
                    if let Some(r) = reply
                        && outgoing.send(r).await.is_err()
                    {
                        synth_task.abort();
                        return;
                    }
                }
            }
            Some(p) = produced.recv() => {
                let current = generation.load(Ordering::Acquire);
                let frames = match p {
                    Produced::Sentence { generation: g, .. } | Produced::Failed { generation: g, .. } if g != current => Vec::new(),
                    Produced::Sentence { index, text, audio_ms, bytes, .. } => {
                        let mut f = vec![send(json!({"type": "marker", "sentence": text, "index": index,
                            "audio_ms": (audio_ms * 10.0).round() / 10.0}))];
                        if !bytes.is_empty() {
                            f.push(Outgoing::Binary(bytes));
                        }
                        f
                    }
                    Produced::Failed { message, .. } => vec![send(json!({"type": "error", "code": "synthesis_failed", "message": message}))],
                    Produced::Done { bytes, .. } => {
                        let mut f = Vec::new();
                        if !bytes.is_empty() {
                            f.push(Outgoing::Binary(bytes));
                        }
                        f.push(send(json!({"type": "done"})));
                        f.push(Outgoing::Close(1000, "done"));
                        f
                    }
                };
                for f in frames {
                    let close = matches!(f, Outgoing::Close(..));
                    if outgoing.send(f).await.is_err() || close {
                        synth_task.abort();
                        return;
                    }
                }
            }
        }
    }
    synth_task.abort();
}

/// The synthesis side: one sentence at a time, skipping work of cancelled generations.
async fn synthesize(mut jobs: mpsc::Receiver<Job>, produced: mpsc::Sender<Produced>, generation: Arc<AtomicU64>) {
    let mut encoder: Option<(u64, Box<dyn StreamEncoder>)> = None;
    let mut index = 0usize;
    let current = || generation.load(Ordering::Acquire);
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Speak { generation: g, text, out } => {
                for sentence in out.synth.sentences(&text) {
                    if g != current() {
                        break;
                    }
                    let samples = match out.synth.speak(&sentence, out.speed).await {
                        Ok(s) => s,
                        Err(message) => {
                            let _ = produced.send(Produced::Failed { generation: g, message }).await;
                            continue;
                        }
                    };
                    if g != current() {
                        break; // barge-in while this sentence was synthesized: drop it
                    }
                    let native = out.synth.sample_rate();
                    let audio_ms = samples.len() as f64 * 1000.0 / native as f64;
                    let samples = if native == out.rate || samples.is_empty() {
                        samples
                    } else {
                        timbre_audio::resample(&samples, native, out.rate).unwrap_or_default()
                    };
                    if encoder.as_ref().is_none_or(|(eg, _)| *eg != g) {
                        match timbre_audio::stream_encoder(out.format, out.rate) {
                            Ok(e) => encoder = Some((g, e)),
                            Err(e) => {
                                let _ = produced.send(Produced::Failed { generation: g, message: e.to_string() }).await;
                                continue;
                            }
                        }
                    }
                    let bytes = match encoder.as_mut().map(|(_, e)| e.push(&samples)) {
                        Some(Ok(b)) => b,
                        Some(Err(e)) => {
                            let _ = produced.send(Produced::Failed { generation: g, message: e.to_string() }).await;
                            continue;
                        }
                        None => Vec::new(),
                    };
                    let item = Produced::Sentence { generation: g, index, text: sentence, audio_ms, bytes };
                    index += 1;
                    if produced.send(item).await.is_err() {
                        return;
                    }
                }
            }
            Job::End { generation: g } => {
                let bytes = match encoder.take() {
                    Some((eg, mut e)) if eg == g => e.finish().unwrap_or_default(),
                    _ => Vec::new(),
                };
                let _ = produced.send(Produced::Done { bytes }).await;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A voice that "synthesizes" 10 ms of a tone per character, taking `delay` per sentence.
    struct Tone {
        delay: Duration,
    }

    impl Synth for Tone {
        fn voice(&self) -> &str {
            "tone"
        }
        fn sample_rate(&self) -> u32 {
            16_000
        }
        fn sentences(&self, text: &str) -> Vec<String> {
            timbre_engines::tts::text::sentences(text)
                .iter()
                .map(|s| timbre_engines::tts::text::sentence_text(s))
                .collect()
        }
        fn speak<'a>(&'a self, sentence: &'a str, _speed: f32) -> BoxFuture<'a, Result<Vec<f32>, String>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(vec![0.1; sentence.chars().count() * 160])
            })
        }
    }

    struct OneVoice(Duration);

    impl Voices for OneVoice {
        fn open(&self, voice: Option<&str>) -> Result<Arc<dyn Synth>, (String, String)> {
            match voice {
                None | Some("tone") => Ok(Arc::new(Tone { delay: self.0 })),
                Some(other) => Err(("unknown_voice".into(), format!("no voice `{other}`; voices: tone"))),
            }
        }
    }

    fn start(delay: Duration) -> (mpsc::Sender<Incoming>, mpsc::Receiver<Outgoing>) {
        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, out_rx) = mpsc::channel(64);
        tokio::spawn(drive(in_rx, out_tx, Arc::new(OneVoice(delay))));
        (in_tx, out_rx)
    }

    async fn say(tx: &mpsc::Sender<Incoming>, v: Value) {
        tx.send(Incoming::Text(v.to_string())).await.unwrap();
    }

    async fn next_json(rx: &mut mpsc::Receiver<Outgoing>) -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap() {
                Outgoing::Text(t) => return serde_json::from_str(&t).unwrap(),
                Outgoing::Binary(_) => continue,
                Outgoing::Close(..) => panic!("closed"),
            }
        }
    }

    #[test]
    fn session_buffers_until_sentences_end() {
        let mut s = Session::default();
        assert!(matches!(&s.on_text(r#"{"type":"text","text":"Hi"}"#)[0], Action::Send(v) if v["code"] == "no_config"));
        s.configured();
        assert!(s.on_text(r#"{"type":"text","text":"Hello the"}"#).is_empty());
        assert!(
            s.on_text(r#"{"type":"text","text":"re. How"}"#)
                .iter()
                .any(|a| matches!(a, Action::Speak(t) if t == "Hello there."))
        );
        assert!(s.on_text(r#"{"type":"text","text":" are you"}"#).is_empty());
        assert!(matches!(&s.on_text(r#"{"type":"flush"}"#)[0], Action::Speak(t) if t.trim() == "How are you"));
        assert!(s.on_text(r#"{"type":"flush"}"#).is_empty(), "nothing left");
        assert!(matches!(&s.on_text(r#"{"type":"text","text":"Bye"}"#)[..], []));
        let end = s.on_text(r#"{"type":"eof"}"#);
        assert!(matches!(&end[..], [Action::Speak(t), Action::Finish] if t == "Bye"));
        assert!(
            matches!(&s.on_text(r#"{"type":"text","text":"more"}"#)[0], Action::Send(v) if v["code"] == "finished")
        );
        let mut c = Session::default();
        assert!(matches!(&c.on_text("{nope")[0], Action::Send(v) if v["code"] == "invalid_json"));
        assert!(matches!(&c.on_text(r#"{"type":"dance"}"#)[0], Action::Send(v) if v["code"] == "unknown_type"));
        assert!(
            matches!(&c.on_text(r#"{"type":"config","volume":3}"#)[0], Action::Send(v) if v["code"] == "invalid_config")
        );
    }

    #[tokio::test]
    async fn sentences_stream_with_markers_and_eof_closes() {
        let (tx, mut rx) = start(Duration::from_millis(5));
        say(&tx, json!({"type": "config", "format": "pcm", "sample_rate": 16000})).await;
        let ready = next_json(&mut rx).await;
        assert_eq!((ready["type"].as_str(), ready["sample_rate"].as_u64()), (Some("ready"), Some(16000)));
        say(&tx, json!({"type": "text", "text": "One two. Three"})).await;
        let marker = next_json(&mut rx).await;
        assert_eq!(marker["sentence"], "One two.");
        let audio = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let Outgoing::Binary(bytes) = audio else { panic!("expected audio, got {audio:?}") };
        assert_eq!(bytes.len(), 8 * 160 * 2, "8 characters × 10 ms at 16 kHz, s16le");
        let first = i16::from_le_bytes([bytes[0], bytes[1]]);
        assert!((3270..=3280).contains(&first), "0.1 full scale: {first}");
        say(&tx, json!({"type": "eof"})).await;
        assert_eq!(next_json(&mut rx).await["sentence"], "Three");
        let mut rest = Vec::new();
        while let Some(o) = rx.recv().await {
            rest.push(o);
        }
        assert!(matches!(rest.last(), Some(Outgoing::Close(1000, _))), "{rest:?}");
        assert!(rest.iter().any(|o| matches!(o, Outgoing::Text(t) if t.contains("\"done\""))));
    }

    #[tokio::test]
    async fn cancel_drops_pending_and_in_flight_audio_at_once() {
        let (tx, mut rx) = start(Duration::from_millis(400));
        say(&tx, json!({"type": "config"})).await;
        next_json(&mut rx).await;
        say(&tx, json!({"type": "text", "text": "First sentence here. Second one. Third one. "})).await;
        tokio::time::sleep(Duration::from_millis(50)).await; // the first is being synthesized
        let t0 = Instant::now();
        say(&tx, json!({"type": "cancel"})).await;
        let ack = next_json(&mut rx).await;
        assert_eq!(ack["type"], "cancelled");
        assert!(t0.elapsed() < Duration::from_millis(100), "cancel acknowledged in {:?}", t0.elapsed());
        // Nothing of the cancelled text arrives afterwards, though its first sentence finishes.
        let late = tokio::time::timeout(Duration::from_millis(1000), rx.recv()).await;
        assert!(late.is_err(), "audio after cancel: {late:?}");
        // The session goes on.
        say(&tx, json!({"type": "text", "text": "After. "})).await;
        assert_eq!(next_json(&mut rx).await["sentence"], "After.");
    }

    #[tokio::test]
    async fn bad_config_and_unknown_voice_keep_the_session() {
        let (tx, mut rx) = start(Duration::from_millis(1));
        say(&tx, json!({"type": "config", "voice": "nobody"})).await;
        let e = next_json(&mut rx).await;
        assert_eq!((e["code"].as_str(), e["param"].as_str()), (Some("unknown_voice"), Some("voice")));
        say(&tx, json!({"type": "config", "format": "flac"})).await;
        assert_eq!(next_json(&mut rx).await["param"], "format");
        say(&tx, json!({"type": "config", "format": "opus", "sample_rate": 22050})).await;
        assert_eq!(next_json(&mut rx).await["param"], "sample_rate");
        say(&tx, json!({"type": "config", "format": "mp3"})).await;
        assert_eq!(next_json(&mut rx).await["type"], "ready");
    }
}
