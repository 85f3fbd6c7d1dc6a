//! `POST /v1/audio/speech` (OpenAI's shape) and `GET /v1/audio/voices`.
//!
//! Without `stream_format` the answer is one complete file. `stream_format: "audio"` sends the
//! encoded audio with chunked transfer as sentences are synthesized (the first chunk right after
//! the first sentence); `"sse"` sends OpenAI's `speech.audio.delta` events with base64 audio,
//! then `speech.audio.done`. The first sentence is synthesized before the status line is sent,
//! so a busy engine or a bad option still gets its proper error status.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use timbre_audio::OutputFormat;
use timbre_engines::tts::{SentenceAudio, SpeechOptions, TtsError};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tts::{self as service, ListedVoice};

/// The request body. Unknown fields are ignored (OpenAI clients send `instructions`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SpeechRequest {
    /// `tts-1` / `tts-1-hd` (the default TTS model) or a model name.
    #[serde(default)]
    pub model: Option<String>,
    /// Text to speak, at most 4096 characters.
    pub input: String,
    /// A voice name from `GET /v1/audio/voices`, or an OpenAI voice name (→ the default voice).
    #[serde(default)]
    pub voice: Option<String>,
    /// `mp3` (default), `opus`, `flac`, `wav`, `pcm` (24 kHz s16le); `aac` answers 422.
    #[serde(default)]
    pub response_format: Option<String>,
    /// 0.25–4.0, default 1.0.
    #[serde(default)]
    pub speed: Option<f32>,
    /// Absent: one file. `audio`: chunked stream. `sse`: server-sent events.
    #[serde(default)]
    pub stream_format: Option<String>,
    /// Piper voices: generator noise (0 = deterministic), default from the voice config.
    #[serde(default)]
    pub noise_scale: Option<f32>,
    /// Piper voices: phoneme duration scale (divided by `speed`).
    #[serde(default)]
    pub length_scale: Option<f32>,
    /// Piper voices: duration noise.
    #[serde(default)]
    pub noise_w: Option<f32>,
    /// Multi-speaker Piper voices: speaker name or number.
    #[serde(default)]
    pub speaker: Option<String>,
}

enum Mode {
    File,
    Audio,
    Sse,
}

fn check_scale(name: &str, v: Option<f32>, max: f32) -> Result<Option<f32>, ApiError> {
    match v {
        Some(x) if !(x.is_finite() && (0.0..=max).contains(&x)) => {
            Err(ApiError::invalid_field(name, format!("{name} must be between 0 and {max}")))
        }
        _ => Ok(v),
    }
}

fn ms(d: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0)).unwrap_or(HeaderValue::from_static("0"))
}

/// Synthesize speech (OpenAI-compatible).
#[utoipa::path(post, path = "/v1/audio/speech", tag = "speech", security(("api_key" = [])),
    request_body = SpeechRequest,
    responses((status = 200, description = "audio in the requested format (or SSE events with stream_format=sse)",
               content_type = "audio/mpeg"),
              (status = 404, description = "unknown voice (the message lists the voices)", body = crate::error::ErrorEnvelope),
              (status = 422, description = "empty/too long/unspeakable input, speed outside 0.25–4, unknown or unavailable format", body = crate::error::ErrorEnvelope),
              (status = 503, description = "the voice's model is not ready, or the engine is busy", body = crate::error::ErrorEnvelope)))]
pub async fn speech(State(state): State<AppState>, Json(req): Json<SpeechRequest>) -> Result<Response, ApiError> {
    let input = service::clean_input(&req.input)?;
    let speed = service::check_speed(req.speed.unwrap_or(1.0))?;
    let format = service::response_format(req.response_format.as_deref())?;
    let mode = match req.stream_format.as_deref().map(str::trim) {
        None | Some("") => Mode::File,
        Some("audio") => Mode::Audio,
        Some("sse") => Mode::Sse,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "stream_format",
                format!("unknown stream_format `{other}` (audio, sse)"),
            ));
        }
    };
    let opts = SpeechOptions {
        speed,
        noise_scale: check_scale("noise_scale", req.noise_scale, 2.0)?,
        length_scale: check_scale("length_scale", req.length_scale, 10.0)?,
        noise_w: check_scale("noise_w", req.noise_w, 2.0)?,
        speaker: req.speaker.clone(),
    };
    let (speaker, voice) = service::resolve(&state, req.model.as_deref(), req.voice.as_deref())?;
    let streamed = !matches!(mode, Mode::File);
    let mut sentences = speaker.stream(&voice, &input, &opts, streamed).map_err(service::tts_error)?;
    // The first sentence decides the status line.
    let first = match sentences.recv().await {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return Err(service::tts_error(e)),
        None => None,
    };
    let native = speaker.sample_rate;
    let rate = service::target_rate(format, native);
    let tokens = input.chars().count().div_ceil(4);
    match mode {
        Mode::File => file_response(first, sentences, format, native, rate, &voice).await,
        Mode::Audio | Mode::Sse => {
            let sse = matches!(mode, Mode::Sse);
            let body = stream_body(first, sentences, format, native, rate, sse, tokens);
            let content_type = if sse { "text/event-stream" } else { format.mime_type() };
            let mut response = Response::new(body);
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-sample-rate", HeaderValue::from(rate));
            if let Ok(v) = HeaderValue::from_str(&voice) {
                h.insert("x-voice", v);
            }
            Ok(response)
        }
    }
}

async fn file_response(
    first: Option<SentenceAudio>,
    mut rest: mpsc::Receiver<Result<SentenceAudio, TtsError>>,
    format: OutputFormat,
    native: u32,
    rate: u32,
    voice: &str,
) -> Result<Response, ApiError> {
    let mut samples = Vec::new();
    let (mut queued, mut inference) = (Duration::ZERO, Duration::ZERO);
    let mut add = |s: SentenceAudio| {
        queued += s.queued;
        inference += s.inference;
        samples.extend(s.samples);
    };
    if let Some(s) = first {
        add(s);
    }
    while let Some(next) = rest.recv().await {
        add(next.map_err(service::tts_error)?);
    }
    let seconds = samples.len() as f64 / native as f64;
    let encode = move || {
        let samples = service::to_rate(samples, native, rate)?;
        timbre_audio::encode(&samples, rate, format).map_err(|e| ApiError::internal(format!("encoding failed: {e}")))
    };
    let bytes = if encodes_inline(format, native, rate) {
        encode()?
    } else {
        tokio::task::spawn_blocking(encode)
            .await
            .map_err(|e| ApiError::internal(format!("encoder task failed: {e}")))??
    };
    let mut response = (bytes::Bytes::from(bytes)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.mime_type()));
    h.insert("x-queue-time", ms(queued));
    h.insert("x-inference-time", ms(inference));
    h.insert("x-sample-rate", HeaderValue::from(rate));
    if let Ok(v) = HeaderValue::from_str(&format!("{seconds:.3}")) {
        h.insert("x-audio-duration", v);
    }
    if let Ok(v) = HeaderValue::from_str(voice) {
        h.insert("x-voice", v);
    }
    Ok(response)
}

/// WAV and PCM at the voice's own rate are a sample-format conversion (~0.1 ms for a sentence):
/// done on the request's task, without the hand-off to a blocking thread and back, which costs
/// more than that when the cores are busy. Compressed formats and resampling stay off the async
/// runtime.
fn encodes_inline(format: OutputFormat, native: u32, rate: u32) -> bool {
    native == rate && matches!(format, OutputFormat::Wav | OutputFormat::Pcm16)
}

/// Encoder work runs on a blocking thread that reads sentences as they come and hands encoded
/// bytes to the body; a client that goes away drops the body, which stops the thread and, through
/// the dropped sentence channel, the synthesis.
fn stream_body(
    first: Option<SentenceAudio>,
    mut rest: mpsc::Receiver<Result<SentenceAudio, TtsError>>,
    format: OutputFormat,
    native: u32,
    rate: u32,
    sse: bool,
    tokens: usize,
) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let frame = |bytes: Vec<u8>| -> Bytes {
            if sse {
                let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
                Bytes::from(format!("data: {}\n\n", json!({"type": "speech.audio.delta", "audio": audio})))
            } else {
                Bytes::from(bytes)
            }
        };
        let fail = |message: String| -> Bytes {
            tracing::warn!(error = %message, "speech stream failed");
            Bytes::from(format!(
                "data: {}\n\n",
                json!({"type": "error", "error": {"message": message, "type": "server_error", "code": "synthesis_failed"}})
            ))
        };
        // FLAC cannot be streamed: it is encoded whole and sent as the one chunk.
        let mut encoder = timbre_audio::stream_encoder(format, rate).ok();
        let mut whole: Vec<f32> = Vec::new();
        let mut next = first.map(Ok);
        loop {
            let item = match next.take() {
                Some(i) => i,
                None => match rest.blocking_recv() {
                    Some(i) => i,
                    None => break,
                },
            };
            let sentence = match item {
                Ok(s) => s,
                Err(e) => {
                    if sse {
                        let _ = tx.blocking_send(fail(e.to_string()));
                    }
                    return;
                }
            };
            let samples = match service::to_rate(sentence.samples, native, rate) {
                Ok(s) => s,
                Err(e) => {
                    if sse {
                        let _ = tx.blocking_send(fail(e.message));
                    }
                    return;
                }
            };
            match encoder.as_mut() {
                Some(enc) => match enc.push(&samples) {
                    Ok(bytes) if !bytes.is_empty() => {
                        if tx.blocking_send(frame(bytes)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if sse {
                            let _ = tx.blocking_send(fail(e.to_string()));
                        }
                        return;
                    }
                },
                None => whole.extend(samples),
            }
        }
        let tail = match encoder.as_mut() {
            Some(enc) => enc.finish(),
            None => timbre_audio::encode(&whole, rate, format),
        };
        match tail {
            Ok(bytes) if !bytes.is_empty() => {
                if tx.blocking_send(frame(bytes)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if sse {
                    let _ = tx.blocking_send(fail(e.to_string()));
                }
                return;
            }
        }
        if sse {
            let done = json!({"type": "speech.audio.done",
                "usage": {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens}});
            let _ = tx.blocking_send(Bytes::from(format!("data: {done}\n\n")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
    });
    Body::from_stream(stream)
}

/// The installed voices: name, model, language, sample rate, the model's state, and which is
/// the default (what OpenAI voice names map to).
#[utoipa::path(get, path = "/v1/audio/voices", tag = "speech", security(("api_key" = [])),
    responses((status = 200, description = "`{object: \"list\", data: [voice…], default_voice, openai_voices}`")))]
pub async fn voices(State(state): State<AppState>) -> Json<serde_json::Value> {
    let listed: Vec<ListedVoice> = service::catalog(&state);
    let default = listed.iter().find(|v| v.default).map(|v| v.info.name.clone());
    Json(json!({
        "object": "list",
        "data": listed,
        "default_voice": default,
        "openai_voices": service::OPENAI_VOICES,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cheap_encodings_run_inline() {
        assert!(encodes_inline(OutputFormat::Wav, 24_000, 24_000));
        assert!(encodes_inline(OutputFormat::Pcm16, 24_000, 24_000));
        assert!(!encodes_inline(OutputFormat::Pcm16, 22_050, 24_000), "resampling is real work");
        assert!(!encodes_inline(OutputFormat::Mp3, 24_000, 24_000));
        assert!(!encodes_inline(OutputFormat::Flac, 22_050, 22_050));
    }
}
