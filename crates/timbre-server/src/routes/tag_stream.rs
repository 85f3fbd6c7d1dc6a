//! `WS /v1/tag/stream`: live tagging of a microphone or call.
//!
//! Protocol: a JSON config `{"sample_rate":16000,"encoding":"pcm16","hop":1.0,"window":2.0,
//! "top_k":5,"prompts":"dog; siren"}`, then binary audio frames, then `{"type":"eof"}`. Every
//! `hop` seconds of audio the server answers `{"type":"tags","t","top":[…],"prompts":[…],
//! "latency_ms"}` for the last `window` seconds. Bad frames get `{"type":"error",…}` and the
//! session continues; after `eof` the last window is tagged and the socket closes with 1000.
//! The state machine ([`Session`]) is plain data in, actions out, so it is tested without a
//! socket.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use timbre_engines::tagging::Tagger;
use timbre_engines::tagging::prompts::split_prompts;

use crate::capabilities::engine_for;
use crate::error::ApiError;
use crate::sessions::{SessionGuard, close, next_message};
use crate::state::AppState;
use crate::stream_input::{AudioInput, Encoding, TARGET_RATE};

const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptList {
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigMsg {
    #[serde(rename = "type", default)]
    _kind: Option<String>,
    sample_rate: u32,
    #[serde(default)]
    encoding: Encoding,
    hop: Option<f32>,
    window: Option<f32>,
    top_k: Option<usize>,
    prompts: Option<PromptList>,
}

/// What the socket loop must do next.
#[derive(Debug, PartialEq)]
pub enum Action {
    Send(serde_json::Value),
    /// Tag this window, which ends at stream time `t` seconds.
    Tag {
        t: f32,
        samples: Vec<f32>,
    },
    Close,
}

#[derive(Debug)]
pub struct Settings {
    pub hop: f32,
    pub window: f32,
    pub top_k: usize,
    pub prompts: Vec<String>,
}

pub struct Session {
    input: Option<AudioInput>,
    pub settings: Settings,
    ring: VecDeque<f32>,
    since_emit: usize,
    consumed: usize,
}

fn error(code: &str, message: impl std::fmt::Display, param: Option<&str>) -> Action {
    Action::Send(json!({"type": "error", "code": code, "message": message.to_string(), "param": param}))
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            input: None,
            settings: Settings { hop: 1.0, window: 2.0, top_k: 5, prompts: Vec::new() },
            ring: VecDeque::new(),
            since_emit: 0,
            consumed: 0,
        }
    }

    fn configure(&mut self, msg: ConfigMsg) -> Vec<Action> {
        let hop = msg.hop.unwrap_or(1.0);
        let window = msg.window.unwrap_or(2.0);
        if !(0.25..=10.0).contains(&window) {
            return vec![error("invalid_config", "window must be between 0.25 and 10 seconds", Some("window"))];
        }
        if !(hop >= 0.1 && hop <= window) {
            return vec![error("invalid_config", "hop must be at least 0.1 s and at most the window", Some("hop"))];
        }
        let top_k = msg.top_k.unwrap_or(5);
        if !(1..=50).contains(&top_k) {
            return vec![error("invalid_config", "top_k must be between 1 and 50", Some("top_k"))];
        }
        let input = match AudioInput::new(msg.sample_rate, msg.encoding, hop.min(0.5)) {
            Ok(i) => i,
            Err(e) => return vec![error("invalid_config", e, Some("sample_rate"))],
        };
        let prompts = match msg.prompts {
            Some(PromptList::Text(t)) => split_prompts(&t),
            Some(PromptList::List(l)) => {
                l.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
            }
            None => Vec::new(),
        };
        self.settings = Settings { hop, window, top_k, prompts };
        self.input = Some(input);
        vec![Action::Send(json!({"type": "ready", "sample_rate": msg.sample_rate, "hop": hop, "window": window}))]
    }

    pub fn on_text(&mut self, text: &str) -> Vec<Action> {
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return vec![error("invalid_json", format!("not JSON: {e}"), None)],
        };
        match value.get("type").and_then(|t| t.as_str()) {
            Some("eof") => {
                let mut out = self.finish();
                out.push(Action::Close);
                out
            }
            Some("reset") => {
                self.ring.clear();
                self.since_emit = 0;
                vec![Action::Send(json!({"type": "reset"}))]
            }
            None | Some("config") => match serde_json::from_value::<ConfigMsg>(value) {
                Ok(msg) => self.configure(msg),
                Err(e) => vec![error("invalid_config", e, None)],
            },
            Some(other) => vec![error("unknown_type", format!("unknown message type `{other}`"), Some("type"))],
        }
    }

    pub fn on_binary(&mut self, bytes: &[u8]) -> Vec<Action> {
        let Some(input) = self.input.as_mut() else {
            return vec![error("no_config", "send the JSON config message before audio", None)];
        };
        match input.push(bytes) {
            Ok(samples) => self.absorb(samples),
            Err(e) => vec![error("invalid_audio", e, None)],
        }
    }

    fn absorb(&mut self, samples: Vec<f32>) -> Vec<Action> {
        let window = (self.settings.window * TARGET_RATE as f32) as usize;
        let hop = (self.settings.hop * TARGET_RATE as f32) as usize;
        let mut out = Vec::new();
        for s in samples {
            self.ring.push_back(s);
            if self.ring.len() > window {
                self.ring.pop_front();
            }
            self.consumed += 1;
            self.since_emit += 1;
            if self.since_emit >= hop {
                self.since_emit = 0;
                out.push(self.window_action());
            }
        }
        out
    }

    fn window_action(&self) -> Action {
        Action::Tag { t: self.consumed as f32 / TARGET_RATE as f32, samples: self.ring.iter().copied().collect() }
    }

    /// End of stream: resample what is pending and tag the tail if it holds new audio.
    fn finish(&mut self) -> Vec<Action> {
        let tail = match self.input.as_mut().map(AudioInput::flush) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return vec![error("invalid_audio", e, None)],
            None => Vec::new(),
        };
        let mut out = self.absorb(tail);
        // Less than a quarter second since the last tags: nothing new worth a model call.
        if self.since_emit as f32 >= TARGET_RATE as f32 * 0.25 {
            out.push(self.window_action());
        }
        out
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    model: Option<String>,
}

/// Live tagging over WebSocket (see the module docs for the protocol).
#[utoipa::path(get, path = "/v1/tag/stream", tag = "tagging", security(("api_key" = [])),
    params(("model" = Option<String>, Query, description = "tagging model (default: the first ready one)")),
    responses((status = 101, description = "switching to WebSocket"),
              (status = 503, description = "no tagging model ready, or MAX_CONCURRENT_SESSIONS reached", body = crate::error::ErrorEnvelope)))]
pub async fn tag_stream(
    State(state): State<AppState>,
    Query(q): Query<StreamQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (_, tagger) = engine_for::<Tagger>(&state, super::tags::CAPABILITY, q.model.as_deref())?;
    let guard = state.sessions.acquire()?;
    let shutdown = state.sessions.shutdown_signal();
    Ok(ws.on_upgrade(move |socket| run(socket, tagger, guard, shutdown)))
}

async fn run(
    mut socket: WebSocket,
    tagger: Arc<Tagger>,
    _guard: SessionGuard,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut session = Session::new();
    loop {
        let Some(msg) = next_message(&mut socket, &mut shutdown, IDLE).await else { return };
        let received = Instant::now();
        let actions = match msg {
            Message::Text(t) => session.on_text(&t),
            Message::Binary(b) => session.on_binary(&b),
            _ => Vec::new(),
        };
        for action in actions {
            let reply = match action {
                Action::Send(v) => Message::Text(v.to_string().into()),
                Action::Close => {
                    let _ = socket.send(close(close_code::NORMAL, "done")).await;
                    return;
                }
                Action::Tag { t, samples } => {
                    match tagger.live(samples, session.settings.top_k, &session.settings.prompts).await {
                        Ok(timed) => {
                            let latency = received.elapsed().as_secs_f64() * 1000.0;
                            let mut v = serde_json::to_value(&timed.value).unwrap_or_default();
                            if let Some(obj) = v.as_object_mut() {
                                obj.insert("type".into(), json!("tags"));
                                obj.insert("t".into(), json!((t * 1000.0).round() / 1000.0));
                                obj.insert("latency_ms".into(), json!((latency * 100.0).round() / 100.0));
                            }
                            Message::Text(v.to_string().into())
                        }
                        Err(e) => Message::Text(
                            json!({"type": "error", "code": "engine", "message": e.to_string()}).to_string().into(),
                        ),
                    }
                }
            };
            if socket.send(reply).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pcm(seconds: f32, rate: u32) -> Vec<u8> {
        (0..(seconds * rate as f32) as usize)
            .flat_map(|i| (((i as f32 * 0.07).sin() * 6000.0) as i16).to_le_bytes())
            .collect()
    }

    fn tags(actions: &[Action]) -> Vec<(f32, usize)> {
        actions
            .iter()
            .filter_map(|a| if let Action::Tag { t, samples } = a { Some((*t, samples.len())) } else { None })
            .collect()
    }

    #[test]
    fn emits_a_window_every_hop_and_flushes_at_eof() {
        let mut s = Session::new();
        let ready = s.on_text(r#"{"type":"config","sample_rate":16000,"hop":0.5,"window":1.0,"prompts":"dog; siren"}"#);
        assert!(matches!(&ready[0], Action::Send(v) if v["type"] == "ready"));
        assert_eq!(s.settings.prompts, vec!["dog", "siren"]);
        let out = s.on_binary(&pcm(1.3, 16_000));
        assert_eq!(tags(&out), vec![(0.5, 8_000), (1.0, 16_000)], "window grows to 1 s, then slides");
        let out = s.on_text(r#"{"type":"eof"}"#);
        assert_eq!(tags(&out), vec![(1.3, 16_000)], "0.3 s of new audio at eof gets a last window");
        assert_eq!(out.last(), Some(&Action::Close));

        let mut short = Session::new();
        short.on_text(r#"{"sample_rate":16000,"hop":0.5,"window":1.0}"#);
        short.on_binary(&pcm(1.1, 16_000));
        assert!(tags(&short.on_text(r#"{"type":"eof"}"#)).is_empty(), "0.1 s tail: no extra model call");
    }

    #[test]
    fn errors_keep_the_session_alive() {
        let mut s = Session::new();
        assert!(matches!(&s.on_binary(&[0, 0])[0], Action::Send(v) if v["code"] == "no_config"));
        assert!(matches!(&s.on_text("{oops")[0], Action::Send(v) if v["code"] == "invalid_json"));
        let bad_rate = s.on_text(r#"{"sample_rate":12345}"#);
        assert!(matches!(&bad_rate[0], Action::Send(v) if v["param"] == "sample_rate"));
        assert!(matches!(&s.on_text(r#"{"sample_rate":16000,"hop":5}"#)[0], Action::Send(v) if v["param"] == "hop"));
        assert!(
            matches!(&s.on_text(r#"{"sample_rate":16000,"volume":5}"#)[0], Action::Send(v) if v["code"] == "invalid_config")
        );
        s.on_text(r#"{"sample_rate":8000,"encoding":"mulaw","hop":0.5}"#);
        assert!(matches!(&s.on_binary(&[1, 2, 3])[0..0], []), "μ-law takes any length");
        let mut p = Session::new();
        p.on_text(r#"{"sample_rate":16000}"#);
        assert!(matches!(&p.on_binary(&[1, 2, 3])[0], Action::Send(v) if v["code"] == "invalid_audio"));
        assert!(matches!(&p.on_text(r#"{"type":"dance"}"#)[0], Action::Send(v) if v["code"] == "unknown_type"));
        // …and audio still works afterwards.
        assert_eq!(tags(&p.on_binary(&pcm(1.0, 16_000))).len(), 1);
    }

    #[test]
    fn other_rates_are_resampled_to_16k() {
        let mut s = Session::new();
        s.on_text(r#"{"sample_rate":48000,"hop":1.0,"window":2.0}"#);
        let out = s.on_binary(&pcm(2.0, 48_000));
        let t = tags(&out);
        assert_eq!(t.len(), 2);
        assert!((t[1].0 - 2.0).abs() < 0.01 && t[1].1 == 32_000, "{t:?}");
    }
}
