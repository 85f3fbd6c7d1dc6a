//! Live speech-to-text over WebSocket: the simple protocol at `WS /v1/stt/stream` (and Hana's
//! `/ws/echo`), OpenAI's Realtime transcription at `WS /v1/realtime?intent=transcription`.
//!
//! Before the upgrade: an unknown model is 404, a Whisper or VAD model that is not ready 503
//! with the reason, a full server 503 (`MAX_CONCURRENT_SESSIONS`). After it the protocol state
//! machines in `crate::stt` run under `crate::stt::driver`; the session slot is held until the
//! socket ends, however it ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::StreamExt;
use serde::Deserialize;
use timbre_engines::vad::SileroVad;
use timbre_engines::whisper::Transcriber;

use crate::capabilities::engine_for;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stt::driver::{self, LiveEngines, Protocol};
use crate::stt::live::LiveSession;
use crate::stt::realtime::RealtimeSession;
use crate::stt::{CAPABILITY, VAD_CAPABILITY, request};

/// A session that sends nothing for this long is closed (1000) to free its slot.
pub const IDLE: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct SttQuery {
    model: Option<String>,
}

#[derive(Deserialize)]
pub struct RealtimeQuery {
    intent: Option<String>,
    model: Option<String>,
}

/// The Whisper model (`whisper-1` or none: the default) and the VAD a live session needs.
fn live_engines(state: &AppState, model: Option<&str>) -> Result<(String, Arc<LiveEngines>), ApiError> {
    let (name, stt) = engine_for::<Transcriber>(state, CAPABILITY, request::model_name(model))?;
    let (_, vad) = engine_for::<SileroVad>(state, VAD_CAPABILITY, None)?;
    Ok((name, Arc::new(LiveEngines { stt, vad })))
}

fn upgrade<P: Protocol + Send + 'static>(
    state: &AppState,
    ws: WebSocketUpgrade,
    engines: Arc<LiveEngines>,
    protocol: P,
) -> Result<Response, ApiError> {
    let guard = state.sessions.acquire()?;
    let shutdown = state.sessions.shutdown_signal();
    Ok(ws.on_upgrade(move |socket| async move {
        let _slot = guard;
        let (write, read) = socket.split();
        driver::run(protocol, engines, write, read, IDLE, shutdown).await;
    }))
}

/// Live transcription, simple protocol (see docs/api.md, "Live transcription").
#[utoipa::path(get, path = "/v1/stt/stream", tag = "speech-to-text", security(("api_key" = [])),
    params(("model" = Option<String>, Query, description = "speech-to-text model (default: the first ready one; `whisper-1` means the default)")),
    responses((status = 101, description = "switching to WebSocket"),
              (status = 404, description = "no such model", body = crate::error::ErrorEnvelope),
              (status = 503, description = "model or VAD not ready, or MAX_CONCURRENT_SESSIONS reached", body = crate::error::ErrorEnvelope)))]
pub async fn stt_stream(
    State(state): State<AppState>,
    Query(q): Query<SttQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (name, engines) = live_engines(&state, q.model.as_deref())?;
    let session = LiveSession::new(&name, engines.stt.info().languages.clone());
    upgrade(&state, ws, engines, session)
}

/// OpenAI Realtime transcription session (see docs/api.md, "Realtime transcription").
#[utoipa::path(get, path = "/v1/realtime", tag = "speech-to-text", security(("api_key" = [])),
    params(("intent" = Option<String>, Query, description = "`transcription` (the only intent served)"),
           ("model" = Option<String>, Query, description = "speech-to-text model (default: the first ready one)")),
    responses((status = 101, description = "switching to WebSocket"),
              (status = 404, description = "no such model", body = crate::error::ErrorEnvelope),
              (status = 422, description = "an intent other than transcription", body = crate::error::ErrorEnvelope),
              (status = 503, description = "model or VAD not ready, or MAX_CONCURRENT_SESSIONS reached", body = crate::error::ErrorEnvelope)))]
pub async fn realtime(
    State(state): State<AppState>,
    Query(q): Query<RealtimeQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if let Some(intent) = q.intent.as_deref().filter(|i| *i != "transcription") {
        return Err(ApiError::invalid_field(
            "intent",
            format!("intent `{intent}` is not served; timbre's realtime endpoint does transcription only"),
        ));
    }
    let (name, engines) = live_engines(&state, q.model.as_deref())?;
    let id = format!("sess_{}", uuid::Uuid::new_v4().simple());
    let session = RealtimeSession::new(&id, &name, engines.stt.info().languages.clone())
        .map_err(|e| ApiError::internal(format!("cannot start the session: {e}")))?;
    // Browsers offer the `realtime` subprotocol (OpenAI's SDKs do); agree to it when offered.
    upgrade(&state, ws.protocols(["realtime"]), engines, session)
}
