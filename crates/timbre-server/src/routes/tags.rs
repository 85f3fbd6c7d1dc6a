//! `POST /v1/audio/classification` (and SonoTag's `/classify`, `/classify-local`): what sounds
//! are in a file, and when.

use std::time::Duration;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use timbre_engines::tagging::{TagOptions, TagReport, Tagger};

use crate::capabilities::engine_for;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upload::Form;

pub const CAPABILITY: &str = "tagging";
const TAG_RATE: u32 = 16_000;

/// Parse the form's options over the defaults; 422 names the field.
pub fn options_from(form: &Form) -> Result<TagOptions, ApiError> {
    let d = TagOptions::default();
    let opts = TagOptions {
        window: form.number("window")?.unwrap_or(d.window),
        hop: form.number("hop")?.unwrap_or(d.hop),
        top_k: form.number("top_k")?.unwrap_or(d.top_k),
        threshold: form.number("threshold")?.unwrap_or(d.threshold),
        min_event: form.number("min_event")?.unwrap_or(d.min_event),
        prompts: Vec::new(),
    };
    let opts = match form.text("prompts") {
        Some(raw) => opts.with_prompt_text(raw),
        None => opts,
    };
    opts.validate().map_err(|e| ApiError::invalid_field(e.field, e.message))?;
    Ok(opts)
}

/// Decode off the async runtime: a long mp3 takes real CPU time.
pub async fn decode_16k(bytes: bytes::Bytes, hint: Option<String>, param: &'static str) -> Result<Vec<f32>, ApiError> {
    let decoded = tokio::task::spawn_blocking(move || {
        timbre_audio::decode_mono_with(&bytes, hint.as_deref(), TAG_RATE, &timbre_audio::DecodeOptions::default())
    })
    .await
    .map_err(|e| ApiError::internal(format!("decoder task failed: {e}")))?;
    decoded.map_err(|e| crate::error::audio_error(e, param))
}

/// A duration as a timing header value (milliseconds, 3 decimals).
pub fn ms(d: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0)).unwrap_or(HeaderValue::from_static("0"))
}

/// Tags, a timeline, events and prompt heatmaps for an uploaded audio file.
///
/// Multipart fields: `file` (or `import_id` of a URL import), `model`, `top_k` (10), `threshold` (0.3), `window` (2 s),
/// `hop` (1 s), `min_event` (0.5 s), `prompts` (`;`-separated).
#[utoipa::path(post, path = "/v1/audio/classification", tag = "tagging", security(("api_key" = [])),
    request_body(content_type = "multipart/form-data", description = "`file` plus options"),
    responses((status = 200, description = "tags, frames, events, prompt heatmap"),
              (status = 400, body = crate::error::ErrorEnvelope), (status = 413, body = crate::error::ErrorEnvelope),
              (status = 415, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope),
              (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn classify(State(state): State<AppState>, multipart: Multipart) -> Result<Response, ApiError> {
    let mut form = Form::read(multipart, "file").await?;
    let opts = options_from(&form)?;
    let (_, tagger) = engine_for::<Tagger>(&state, CAPABILITY, form.text("model"))?;
    // The audio: an uploaded `file`, or an earlier URL import by `import_id`.
    let (bytes, hint, param) = match (form.file.is_some(), form.text("import_id").map(str::to_string)) {
        (false, Some(id)) => {
            let (bytes, hint) = crate::imports::media(&state, &id).await?;
            (bytes, hint, "import_id")
        }
        _ => {
            let file = form.require_file("file")?;
            let hint = file.hint();
            (file.bytes, hint, "file")
        }
    };
    let samples = decode_16k(bytes, hint, param).await?;
    let timed = tagger.tag(&samples, &opts).await.map_err(crate::error::engine_error)?;
    let mut response = Json::<TagReport>(timed.value).into_response();
    let headers = response.headers_mut();
    headers.insert("x-queue-time", ms(timed.queued));
    headers.insert("x-inference-time", ms(timed.inference));
    Ok(response)
}
