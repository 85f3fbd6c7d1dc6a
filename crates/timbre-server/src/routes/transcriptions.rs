//! `POST /v1/audio/transcriptions` and `POST /v1/audio/translations`: OpenAI's speech-to-text,
//! same fields and answers, so OpenAI's clients work when pointed at timbre.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use timbre_engines::whisper::Transcriber;
use timbre_engines::whisper::api::{Task, TranscribeOptions};
use timbre_engines::whisper::format;
use tokio::sync::mpsc;

use crate::capabilities::engine_for;
use crate::error::{ApiError, transcribe_error};
use crate::routes::tags::{decode_16k, ms};
use crate::state::AppState;
use crate::stt::request::{self, TranscriptionRequest};
use crate::stt::{CAPABILITY, sse};
use crate::upload::Form;

/// Speech to text in the spoken language.
///
/// Multipart fields (OpenAI's): `file`, `model` (`whisper-1` = the default model), `language`,
/// `prompt`, `temperature`, `response_format` (json, text, srt, vtt, verbose_json),
/// `timestamp_granularities[]` (segment, word), `stream`; timbre's: `beam_size`, `best_of`,
/// `vad_filter`, `word_timestamps`. See docs/api.md.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "speech-to-text", security(("api_key" = [])),
    request_body(content_type = "multipart/form-data", description = "`file` plus options (OpenAI's fields)"),
    responses((status = 200, description = "the transcript in `response_format`; `text/event-stream` when `stream=true`"),
              (status = 400, body = crate::error::ErrorEnvelope), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 413, body = crate::error::ErrorEnvelope), (status = 415, body = crate::error::ErrorEnvelope),
              (status = 422, body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn transcriptions(State(state): State<AppState>, multipart: Multipart) -> Result<Response, ApiError> {
    handle(&state, multipart, Task::Transcribe).await
}

/// Speech in any language to English text (multilingual models only).
///
/// Same fields as transcriptions; English-only models (`*.en`) answer 422.
#[utoipa::path(post, path = "/v1/audio/translations", tag = "speech-to-text", security(("api_key" = [])),
    request_body(content_type = "multipart/form-data", description = "`file` plus options (OpenAI's fields)"),
    responses((status = 200, description = "the English transcript in `response_format`"),
              (status = 400, body = crate::error::ErrorEnvelope), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 413, body = crate::error::ErrorEnvelope), (status = 415, body = crate::error::ErrorEnvelope),
              (status = 422, body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn translations(State(state): State<AppState>, multipart: Multipart) -> Result<Response, ApiError> {
    handle(&state, multipart, Task::Translate).await
}

/// What the model can do versus what was asked, before any audio is decoded.
fn check_model(name: &str, engine: &Transcriber, req: &TranscriptionRequest) -> Result<(), ApiError> {
    let info = engine.info();
    if req.options.task == Task::Translate && !info.multilingual {
        return Err(ApiError::invalid_field(
            "model",
            format!("model `{name}` is English-only and cannot translate; use a multilingual Whisper model"),
        ));
    }
    if let Some(lang) = &req.options.language
        && !info.languages.is_empty()
        && !info.languages.contains(lang)
    {
        return Err(ApiError::invalid_field(
            "language",
            format!("model `{name}` does not know language `{lang}` (it knows: {})", info.languages.join(", ")),
        ));
    }
    Ok(())
}

async fn handle(state: &AppState, multipart: Multipart, task: Task) -> Result<Response, ApiError> {
    let mut form = Form::read(multipart, "file").await?;
    let req = request::parse(&form, task)?;
    let file = form.require_file("file")?;
    let (name, engine) = engine_for::<Transcriber>(state, CAPABILITY, req.model.as_deref())?;
    check_model(&name, &engine, &req)?;
    let hint = file.hint();
    let samples = decode_16k(file.bytes, hint, "file").await?;
    if req.stream {
        return Ok(stream(engine, samples, req.options));
    }
    let timed = engine.transcribe(samples, req.options, None).await.map_err(transcribe_error)?;
    let body = format::render(&timed.value, req.format, task, req.granularities);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(req.format.content_type()));
    headers.insert("x-queue-time", ms(timed.queued));
    headers.insert("x-inference-time", ms(timed.inference));
    Ok(response)
}

/// `stream=true`: a delta per segment as the engine finishes it, then `done` (or an `error`
/// event: the 200 is already sent by then).
fn stream(engine: Arc<Transcriber>, samples: Vec<f32>, options: TranscribeOptions) -> Response {
    let (tx, rx) = mpsc::channel::<serde_json::Value>(64);
    tokio::spawn(async move {
        let (segments_tx, mut segments) = mpsc::channel(64);
        let work = engine.transcribe(samples, options, Some(segments_tx));
        tokio::pin!(work);
        let mut deltas = sse::Deltas::default();
        let result = loop {
            tokio::select! {
                Some(segment) = segments.recv() => {
                    if let Some(event) = deltas.next(&segment.text)
                        && tx.send(event).await.is_err()
                    {
                        return; // the client left; the engine finishes this request on its own
                    }
                }
                result = &mut work => break result,
            }
        };
        while let Ok(segment) = segments.try_recv() {
            if let Some(event) = deltas.next(&segment.text) {
                let _ = tx.send(event).await;
            }
        }
        let last = match result {
            Ok(timed) => sse::done(&timed.value),
            Err(e) => sse::error(&transcribe_error(e)),
        };
        let _ = tx.send(last).await;
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|v| (Ok::<_, Infallible>(Event::default().data(v.to_string())), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use timbre_engines::actor::EngineError;
    use timbre_engines::whisper::api::TranscribeError;

    use super::*;

    #[test]
    fn engine_failures_map_to_http() {
        let busy = transcribe_error(TranscribeError::Engine(EngineError::Overloaded { engine: "w".into(), depth: 8 }));
        assert_eq!((busy.status.as_u16(), busy.code), (503, "overloaded"));
        assert_eq!(busy.retry_after, Some(Duration::from_secs(1)));
        let stopped = transcribe_error(TranscribeError::Engine(EngineError::Stopped { engine: "w".into() }));
        assert_eq!((stopped.status.as_u16(), stopped.code), (503, "model_unavailable"));
        let bad = transcribe_error(TranscribeError::InvalidOption { param: "language", message: "no".into() });
        assert_eq!((bad.status.as_u16(), bad.param.as_deref()), (422, Some("language")));
    }
}
