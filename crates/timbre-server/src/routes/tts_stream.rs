//! `WS /v1/tts/stream` and Hana's `WS /ws/tts`: text in (LLM deltas), audio out, sentence by
//! sentence, with barge-in. The protocol lives in [`crate::tts_protocol`]; this module bridges a
//! real socket to it and resolves voices through the registry.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use timbre_engines::tts::{Speaker, SpeechOptions};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::sessions::{SessionGuard, close, shutting_down};
use crate::state::AppState;
use crate::tts::resolve;
use crate::tts_protocol::{Incoming, Outgoing, Synth, Voices, drive};

const IDLE: Duration = Duration::from_secs(60);

struct SpeakerVoice {
    speaker: Arc<Speaker>,
    voice: String,
}

impl Synth for SpeakerVoice {
    fn voice(&self) -> &str {
        &self.voice
    }
    fn sample_rate(&self) -> u32 {
        self.speaker.sample_rate
    }
    fn sentences(&self, text: &str) -> Vec<String> {
        self.speaker.sentences(text)
    }
    fn speak<'a>(&'a self, sentence: &'a str, speed: f32) -> BoxFuture<'a, Result<Vec<f32>, String>> {
        Box::pin(async move {
            let cleaned = crate::tts::clean_input(sentence)
                .map(Some)
                .or_else(|e| if e.code == "unspeakable_input" { Ok(None) } else { Err(e.message) })?;
            let Some(text) = cleaned else { return Ok(Vec::new()) };
            let opts = SpeechOptions { speed, ..SpeechOptions::default() };
            self.speaker.sentence_soon(&self.voice, &text, &opts).await.map(|t| t.value).map_err(|e| e.to_string())
        })
    }
}

struct StateVoices {
    state: AppState,
    model: Option<String>,
}

impl Voices for StateVoices {
    fn open(&self, voice: Option<&str>) -> Result<Arc<dyn Synth>, (String, String)> {
        match resolve(&self.state, self.model.as_deref(), voice) {
            Ok((speaker, voice)) => Ok(Arc::new(SpeakerVoice { speaker, voice })),
            Err(e) => {
                Err((if e.status.as_u16() == 404 { "unknown_voice".into() } else { e.code.to_string() }, e.message))
            }
        }
    }
}

#[derive(Deserialize)]
pub struct TtsQuery {
    model: Option<String>,
    voice: Option<String>,
}

/// Text-in streaming speech over WebSocket (protocol in the API guide).
#[utoipa::path(get, path = "/v1/tts/stream", tag = "speech", security(("api_key" = [])),
    params(("model" = Option<String>, Query, description = "TTS model (default: the default voice's)"),
           ("voice" = Option<String>, Query, description = "voice checked before the upgrade (the config message may change it)")),
    responses((status = 101, description = "switching to WebSocket"),
              (status = 404, description = "unknown voice", body = crate::error::ErrorEnvelope),
              (status = 503, description = "no TTS voice ready, or MAX_CONCURRENT_SESSIONS reached", body = crate::error::ErrorEnvelope)))]
pub async fn tts_stream(
    State(state): State<AppState>,
    Query(q): Query<TtsQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Unknown voice or no ready model: answered before the upgrade.
    resolve(&state, q.model.as_deref(), q.voice.as_deref())?;
    let guard = state.sessions.acquire()?;
    let shutdown = state.sessions.shutdown_signal();
    let voices: Arc<dyn Voices> = Arc::new(StateVoices { state, model: q.model });
    Ok(ws.max_message_size(256 * 1024).on_upgrade(move |socket| run(socket, voices, guard, shutdown)))
}

async fn run(
    socket: WebSocket,
    voices: Arc<dyn Voices>,
    _guard: SessionGuard,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(32);
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(32);
    let driver = tokio::spawn(drive(in_rx, out_tx.clone(), voices));
    let reader = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutting_down(&mut shutdown) => {
                    let _ = out_tx.send(Outgoing::Close(axum::extract::ws::close_code::AWAY, "server shutting down")).await;
                    return;
                }
                next = tokio::time::timeout(IDLE, stream.next()) => match next {
                    Err(_) => {
                        let _ = out_tx.send(Outgoing::Close(axum::extract::ws::close_code::NORMAL, "idle timeout")).await;
                        return;
                    }
                    Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                    Ok(Some(Ok(Message::Text(t)))) => {
                        if in_tx.send(Incoming::Text(t.to_string())).await.is_err() { return; }
                    }
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        if in_tx.send(Incoming::Binary(b.to_vec())).await.is_err() { return; }
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        }
    });
    while let Some(out) = out_rx.recv().await {
        let (msg, last) = match out {
            Outgoing::Text(t) => (Message::Text(t.into()), false),
            Outgoing::Binary(b) => (Message::Binary(b.into()), false),
            Outgoing::Close(code, reason) => (close(code, reason), true),
        };
        if sink.send(msg).await.is_err() || last {
            break;
        }
    }
    reader.abort();
    driver.abort();
}
