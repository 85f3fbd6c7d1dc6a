//! `POST /v1/audio/classification` (and SonoTag's `/classify`, `/classify-local`): what sounds
//! are in a file, and when.

use std::time::Duration;

use axum::Json;
use axum::extract::{Multipart, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use timbre_engines::tagging::{TagOptions, TagReport, Tagger};

use crate::capabilities::engine_for;
use crate::error::ApiError;
use crate::jobs::analyze_audio;
use crate::jobs::submit::IdempotencyKey;
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

/// The audio: an uploaded `file`, or an earlier URL import by `import_id`.
async fn audio_of(state: &AppState, form: &mut Form) -> Result<(bytes::Bytes, Option<String>, &'static str), ApiError> {
    match (form.file.is_some(), form.text("import_id").map(str::to_string)) {
        (false, Some(id)) => {
            let (bytes, hint) = crate::imports::media(state, &id).await?;
            Ok((bytes, hint, "import_id"))
        }
        _ => {
            let file = form.require_file("file")?;
            let hint = file.hint();
            Ok((file.bytes, hint, "file"))
        }
    }
}

/// `?async=true` (or the form field `async`) runs the request as an `analyze_audio` job.
#[derive(Debug, Default, Deserialize)]
pub struct ClassifyQuery {
    #[serde(rename = "async")]
    pub run_async: Option<String>,
}

fn wants_async(query: &ClassifyQuery, form: &Form) -> Result<bool, ApiError> {
    match query.run_async.as_deref().or_else(|| form.text("async")) {
        None => Ok(false),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" | "" => Ok(false),
            other => Err(ApiError::invalid_field("async", format!("`{other}` is not true or false"))),
        },
    }
}

fn ms(d: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0)).unwrap_or(HeaderValue::from_static("0"))
}

/// Tags, a timeline, events and prompt heatmaps for an uploaded audio file.
///
/// Multipart fields: `file` (or `import_id` of a URL import), `model`, `top_k` (10), `threshold` (0.3), `window` (2 s),
/// `hop` (1 s), `min_event` (0.5 s), `prompts` (`;`-separated). With `async=true` (query or field) the
/// file is queued as an `analyze_audio` job instead: 202 with the job id (`Idempotency-Key` dedupes).
#[utoipa::path(post, path = "/v1/audio/classification", tag = "tagging", security(("api_key" = [])),
    params(("async" = Option<bool>, Query, description = "run as an `analyze_audio` job and answer 202"),
           ("Idempotency-Key" = Option<String>, Header, description = "with `async`: a repeated key returns the first job")),
    request_body(content_type = "multipart/form-data", description = "`file` plus options"),
    responses((status = 200, description = "tags, frames, events, prompt heatmap"),
              (status = 202, body = crate::jobs::submit::Accepted, description = "`async=true`: the job"),
              (status = 400, body = crate::error::ErrorEnvelope), (status = 413, body = crate::error::ErrorEnvelope),
              (status = 415, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope),
              (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn classify(
    State(state): State<AppState>,
    Query(query): Query<ClassifyQuery>,
    key: IdempotencyKey,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut form = Form::read(multipart, "file").await?;
    let opts = options_from(&form)?;
    if wants_async(&query, &form)? {
        let model = form.text("model").map(str::to_owned);
        let (bytes, hint, _) = audio_of(&state, &mut form).await?;
        return Ok(analyze_audio::enqueue(&state, &key, bytes, hint, model, &opts).await?.into_response());
    }
    let (_, tagger) = engine_for::<Tagger>(&state, CAPABILITY, form.text("model"))?;
    let (bytes, hint, param) = audio_of(&state, &mut form).await?;
    let samples = decode_16k(bytes, hint, param).await?;
    let timed = tagger.tag(&samples, &opts).await.map_err(crate::error::engine_error)?;
    let mut response = Json::<TagReport>(timed.value).into_response();
    let headers = response.headers_mut();
    headers.insert("x-queue-time", ms(timed.queued));
    headers.insert("x-inference-time", ms(timed.inference));
    Ok(response)
}
