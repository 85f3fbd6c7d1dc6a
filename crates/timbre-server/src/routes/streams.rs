//! `WS /v1/streams/{model}`: hand keypoints in, smoothed labels out, for any
//! `stream-classifier` model — and the same protocol at `/` on `TIMBRE_STREAM_PORT`, where
//! Signify's clients connect.
//!
//! Before the upgrade: an unknown model is 404, a model that is not ready is 503 with the
//! reason (there is no mock mode), a full server is 503 (`MAX_CONCURRENT_SESSIONS`). After it,
//! [`run`] is the whole protocol over any `Sink`/`Stream` of messages, so tests drive it in
//! memory as well as through a socket. A bad message gets `{"type":"error"}` and the session
//! goes on; frames beyond `TIMBRE_STREAM_MAX_FPS` are dropped with a `throttled` notice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use timbre_engines::ModelState;
use timbre_engines::actor::EngineError;
use timbre_engines::stream::{Method, SmoothingConfig, StreamClassifier, StreamSession};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::state::AppState;
use crate::stream_protocol::{self, Admit, Frame, Message as ClientMessage, ProtocolError, Throttle};

pub const FAMILY: &str = "stream-classifier";
const READ_BUFFER: usize = 8 * 1024;
/// Four hands as JSON with long decimals stay far below this.
const MAX_MESSAGE: usize = 64 * 1024;

/// Per-session limits, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_fps: f64,
}

impl Limits {
    pub fn from_config(config: &crate::Config) -> Self {
        Self { idle_timeout: Duration::from_secs_f64(config.stream_idle_timeout), max_fps: config.stream_max_fps }
    }
}

/// Keypoint stream for a model (see `docs/api.md`, "Keypoint streams").
#[utoipa::path(get, path = "/v1/streams/{model}", tag = "streams", security(("api_key" = [])),
    params(("model" = String, Path, description = "a `stream-classifier` model, e.g. `signify-letters-test`")),
    responses((status = 101, description = "switching to WebSocket"),
              (status = 404, description = "no such stream model", body = crate::error::ErrorEnvelope),
              (status = 503, description = "model not ready, or MAX_CONCURRENT_SESSIONS reached", body = crate::error::ErrorEnvelope)))]
pub async fn stream(
    State(state): State<AppState>,
    Path(model): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    upgrade(&state, &model, ws)
}

/// Signify compatibility: the same protocol at `/` of `TIMBRE_STREAM_PORT`, with `stream_model`.
pub async fn seed_stream(State(state): State<AppState>, ws: WebSocketUpgrade) -> Result<Response, ApiError> {
    let model = state.config.stream_model.clone();
    upgrade(&state, &model, ws)
}

/// The engine for `model`, or why there is none.
pub fn engine_for(state: &AppState, model: &str) -> Result<Arc<StreamClassifier>, ApiError> {
    let snapshot = state.snapshot();
    let status = snapshot.models.get(model).filter(|m| m.family == FAMILY).ok_or_else(|| {
        ApiError::not_found(format!("no stream-classifier model `{model}`; GET /v1/models lists the models"))
            .with_param("model")
    })?;
    if status.state != ModelState::Ready {
        let why = status.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let retry = if status.state.in_progress() { Duration::from_secs(2) } else { Duration::from_secs(10) };
        return Err(ApiError::model_unavailable(format!("model `{model}` is {}{why}", status.state.as_str()), retry));
    }
    state.registry.engine::<StreamClassifier>(model).ok_or_else(|| {
        ApiError::model_unavailable(format!("model `{model}` has no stream engine"), Duration::from_secs(10))
    })
}

fn upgrade(state: &AppState, model: &str, ws: WebSocketUpgrade) -> Result<Response, ApiError> {
    let engine = engine_for(state, model)?;
    let guard = state.sessions.acquire()?;
    let limits = Limits::from_config(&state.config);
    let shutdown = state.sessions.shutdown_signal();
    let name = model.to_string();
    // Frames are ~1.5 KB: a small read buffer (tungstenite zeroes the whole buffer on every
    // read; its 128 KiB default made memset the top of the profile) and a cap on message size.
    let ws = ws.read_buffer_size(READ_BUFFER).max_message_size(MAX_MESSAGE).max_frame_size(MAX_MESSAGE);
    Ok(ws.on_upgrade(move |socket| async move {
        let _slot = guard;
        let (write, read) = socket.split();
        tracing::debug!(model = %name, "stream session started");
        run(write, read, &name, engine, limits, shutdown).await;
    }))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// The protocol, over any message sink and stream (a WebSocket's two halves, or channels in
/// tests). Returns when the client leaves, the session idles out or the server shuts down.
pub async fn run<W, R, E>(
    mut write: W,
    mut read: R,
    model: &str,
    engine: Arc<StreamClassifier>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut session = Session::new(model, engine, limits);
    // Both futures live as long as the session. At thousands of frames a second, a fresh
    // timeout and shutdown watcher per message (a timer-wheel insert and removal, a `Notified`)
    // showed in the profile; the idle timer is re-armed only when it fires early.
    let stopping = crate::sessions::shutting_down(&mut shutdown);
    tokio::pin!(stopping);
    let mut last_message = Instant::now();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    loop {
        let next = tokio::select! {
            biased;
            () = &mut stopping => {
                let _ = write.send(close(close_code::AWAY, "server shutting down")).await;
                return;
            }
            next = read.next() => next,
            () = &mut idle => {
                let deadline = last_message + limits.idle_timeout;
                if Instant::now() >= deadline {
                    let _ = write.send(close(close_code::NORMAL, "idle timeout")).await;
                    return;
                }
                idle.as_mut().reset(tokio::time::Instant::from_std(deadline));
                continue;
            }
        };
        let received = Instant::now();
        last_message = received;
        let replies = match next {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) => session.on_text(text.as_str(), received).await,
            Some(Ok(Message::Binary(bytes))) => session.on_binary(&bytes, received).await,
            Some(Ok(_)) => Outcome::Nothing,
        };
        let (reply, fatal) = match replies {
            Outcome::Nothing => continue,
            Outcome::Reply(text) => (text, false),
            Outcome::Fatal(text) => (text, true),
        };
        if write.send(Message::Text(reply.into())).await.is_err() {
            return;
        }
        if fatal {
            let _ = write.send(close(close_code::ERROR, "engine stopped")).await;
            return;
        }
    }
}

enum Outcome {
    Nothing,
    Reply(String),
    /// Send, then close (the engine is gone).
    Fatal(String),
}

#[derive(Serialize)]
struct Labelled<'a> {
    label: Option<&'a str>,
    confidence: f32,
}

#[derive(Serialize)]
struct Prediction<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    t: f64,
    label: Option<&'a str>,
    confidence: f32,
    smoothed: Labelled<'a>,
    hand: bool,
    latency_ms: f64,
}

struct Counters {
    predicted: metrics::Counter,
    no_hand: metrics::Counter,
    throttled: metrics::Counter,
    invalid: metrics::Counter,
    overloaded: metrics::Counter,
    latency: metrics::Histogram,
}

impl Counters {
    fn new(model: &str) -> Self {
        let c = |outcome: &'static str| metrics::counter!("timbre_stream_frames_total", "model" => model.to_string(), "outcome" => outcome);
        Self {
            predicted: c("predicted"),
            no_hand: c("no_hand"),
            throttled: c("throttled"),
            invalid: c("invalid"),
            overloaded: c("overloaded"),
            latency: metrics::histogram!("timbre_stream_frame_seconds", "model" => model.to_string()),
        }
    }
}

struct Session {
    model: String,
    engine: Arc<StreamClassifier>,
    stream: StreamSession,
    throttle: Throttle,
    max_fps: f64,
    started: Instant,
    counters: Counters,
}

fn error_reply(code: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string()
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Majority => "majority",
        Method::Ema => "ema",
        Method::None => "none",
    }
}

impl Session {
    fn new(model: &str, engine: Arc<StreamClassifier>, limits: Limits) -> Self {
        let now = Instant::now();
        Self {
            model: model.to_string(),
            stream: engine.session(),
            engine,
            throttle: Throttle::new(limits.max_fps, now),
            max_fps: limits.max_fps,
            started: now,
            counters: Counters::new(model),
        }
    }

    async fn on_text(&mut self, text: &str, received: Instant) -> Outcome {
        match stream_protocol::parse_text(text) {
            Ok(ClientMessage::Reset) => {
                self.stream.reset();
                Outcome::Reply(r#"{"type":"reset"}"#.to_string())
            }
            Ok(ClientMessage::Config(change)) => {
                let current = self.stream.smoothing();
                match change.apply(current.smoothing, current.min_confidence) {
                    Ok((smoothing, min_confidence)) => {
                        self.stream.set_smoothing(SmoothingConfig { smoothing, min_confidence });
                        Outcome::Reply(self.describe())
                    }
                    Err(message) => {
                        self.counters.invalid.increment(1);
                        Outcome::Reply(error_reply("invalid_config", &message))
                    }
                }
            }
            Ok(ClientMessage::Frame(frame)) => self.on_frame(Ok(frame), received).await,
            Err(e) => self.on_frame(Err(e), received).await,
        }
    }

    async fn on_binary(&mut self, bytes: &[u8], received: Instant) -> Outcome {
        self.on_frame(stream_protocol::parse_binary(bytes), received).await
    }

    /// The effective settings, sent in answer to a config message.
    fn describe(&self) -> String {
        let spec = self.stream.spec();
        let s = self.stream.smoothing();
        serde_json::json!({
            "type": "config",
            "model": self.model,
            "labels": *self.engine.labels,
            "layout": match spec.layout {
                timbre_engines::stream::Layout::Frame => "frame",
                timbre_engines::stream::Layout::Window => "window",
                timbre_engines::stream::Layout::Recurrent => "recurrent",
            },
            "hands": spec.hands,
            "window": spec.window,
            "stride": spec.stride,
            "frame_rate": spec.frame_rate,
            "min_presence": spec.min_presence,
            "min_confidence": s.min_confidence,
            "smoothing": {"method": method_name(s.smoothing.method), "frames": s.smoothing.frames, "alpha": s.smoothing.alpha},
            "max_fps": self.max_fps,
        })
        .to_string()
    }

    /// Frames, good or bad, pass the throttle first: a flood of garbage is dropped too.
    async fn on_frame(&mut self, frame: Result<Frame, ProtocolError>, received: Instant) -> Outcome {
        match self.throttle.admit(received) {
            Admit::Accept => {}
            Admit::Drop(notice) => {
                self.counters.throttled.increment(1);
                return match notice {
                    Some(dropped) => Outcome::Reply(
                        serde_json::json!({
                            "type": "throttled",
                            "dropped": dropped,
                            "max_fps": self.max_fps,
                            "message": format!("frames beyond {} per second are dropped (TIMBRE_STREAM_MAX_FPS)", self.max_fps),
                        })
                        .to_string(),
                    ),
                    None => Outcome::Nothing,
                };
            }
        }
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                self.counters.invalid.increment(1);
                return Outcome::Reply(error_reply(e.code, &e.message));
            }
        };
        let t = frame.t.unwrap_or_else(|| (self.started.elapsed().as_secs_f64() * 1000.0).round());
        let min_presence = self.stream.spec().min_presence;
        let hands: Vec<Vec<f32>> =
            frame.hands.into_iter().filter(|h| h.presence >= min_presence).map(|h| h.keypoints).collect();
        let prediction = if hands.is_empty() {
            self.counters.no_hand.increment(1);
            self.stream.push_absent()
        } else {
            let Some(input) = self.stream.push_frame(&hands) else {
                return Outcome::Nothing; // a window still filling, or between strides
            };
            match self.engine.infer(input).await {
                Ok(out) => {
                    self.counters.predicted.increment(1);
                    self.stream.apply(out.value.scores, out.value.state)
                }
                Err(EngineError::Overloaded { .. }) => {
                    self.counters.overloaded.increment(1);
                    return Outcome::Reply(error_reply(
                        "overloaded",
                        "the model's queue is full; this frame was dropped",
                    ));
                }
                Err(e @ EngineError::Inference { .. }) => {
                    return Outcome::Reply(error_reply("inference_failed", &e.to_string()));
                }
                Err(e @ EngineError::Stopped { .. }) => {
                    return Outcome::Fatal(error_reply("engine_stopped", &e.to_string()));
                }
            }
        };
        let labels = &self.engine.labels;
        let name = |p: Option<(usize, f32)>| p.and_then(|(i, _)| labels.get(i).map(String::as_str));
        let conf = |p: Option<(usize, f32)>| p.map_or(0.0, |(_, c)| c);
        let latency = received.elapsed();
        self.counters.latency.record(latency.as_secs_f64());
        let reply = Prediction {
            kind: "prediction",
            t,
            label: name(prediction.raw),
            confidence: conf(prediction.raw),
            smoothed: Labelled { label: name(prediction.smoothed), confidence: conf(prediction.smoothed) },
            hand: prediction.raw.is_some(),
            latency_ms: (latency.as_secs_f64() * 1e6).round() / 1000.0,
        };
        Outcome::Reply(serde_json::to_string(&reply).unwrap_or_else(|e| error_reply("internal_error", &e.to_string())))
    }
}
