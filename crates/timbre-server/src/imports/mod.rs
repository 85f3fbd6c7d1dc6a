//! `POST /v1/imports`: bring media in by URL (SSRF-checked), prove it is audio with the
//! decoder, and keep it in the blob store for the capabilities to use by `import_id`.

pub mod fetch;
pub mod ssrf;

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use fetch::{ImportError, ImportPolicy};

#[derive(Deserialize, ToSchema)]
pub struct ImportRequest {
    /// An http(s) URL of an audio or video file, or (with yt-dlp enabled) a YouTube/SoundCloud page.
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportRecord {
    pub id: String,
    pub url: String,
    pub final_url: String,
    /// `direct` or `yt-dlp`.
    pub via: String,
    pub bytes: u64,
    pub content_type: Option<String>,
    pub codec: String,
    pub duration: f64,
    pub sample_rate: u32,
    pub channels: u16,
    pub created_at: u64,
}

fn source_key(id: &str) -> String {
    format!("imports/{id}/source")
}

fn meta_key(id: &str) -> String {
    format!("imports/{id}/meta.json")
}

pub fn policy(state: &AppState) -> ImportPolicy {
    let c = &state.config;
    ImportPolicy {
        allow_private: c.import_allow_private,
        max_bytes: c.import_max_mb.saturating_mul(1 << 20),
        timeout: Duration::from_secs_f64(c.import_timeout),
        ytdlp: c.import_ytdlp,
        allow_addrs: c.import_allow_addrs.iter().filter_map(|a| a.parse().ok()).collect(),
    }
}

fn import_error(e: ImportError) -> ApiError {
    let msg = e.to_string();
    match e {
        ImportError::InvalidUrl(_) => ApiError::invalid_field("url", msg),
        ImportError::Forbidden { .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "invalid_request_error", "url_forbidden", msg).with_param("url")
        }
        ImportError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "payload_too_large", msg)
                .with_param("url")
        }
        ImportError::Timeout(_) => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "server_error", "import_timeout", msg).with_param("url")
        }
        ImportError::Upstream { status, .. } if status < 500 => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", "upstream_error", msg)
                .with_param("url")
        }
        ImportError::Upstream { .. }
        | ImportError::Network(_)
        | ImportError::TooManyRedirects
        | ImportError::Ytdlp(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "server_error", "upstream_error", msg).with_param("url")
        }
    }
}

/// The extension of the URL's path, as a decoder hint.
fn url_hint(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let last = path.rsplit('/').next()?;
    last.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).filter(|e| e.len() <= 5)
}

/// Fetch, sniff, store. Nothing is stored unless the decoder accepts the bytes.
pub async fn import(state: &AppState, url: &str) -> Result<ImportRecord, ApiError> {
    let store = state.store.get()?;
    let fetched = fetch::fetch(url, &policy(state)).await.map_err(import_error)?;
    let hint = fetched
        .content_type
        .clone()
        .filter(|ct| ct.starts_with("audio/") || ct.starts_with("video/"))
        .or_else(|| url_hint(&fetched.final_url));
    let bytes = fetched.bytes.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        timbre_audio::decode_with(&bytes, hint.as_deref(), &timbre_audio::DecodeOptions::default())
    })
    .await
    .map_err(|e| ApiError::internal(format!("decoder task failed: {e}")))?
    .map_err(|e| crate::error::audio_error(e, "url"))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let record = ImportRecord {
        id: id.clone(),
        url: url.to_string(),
        final_url: fetched.final_url,
        via: fetched.via.to_string(),
        bytes: fetched.bytes.len() as u64,
        content_type: fetched.content_type.clone(),
        codec: decoded.codec.clone(),
        duration: (decoded.duration_s * 1000.0).round() / 1000.0,
        sample_rate: decoded.sample_rate,
        channels: decoded.channels,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let ct = fetched.content_type.unwrap_or_else(|| "application/octet-stream".into());
    store
        .blobs
        .put(&source_key(&id), fetched.bytes, &ct)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the import: {e}")))?;
    let meta = serde_json::to_vec(&record).map_err(|e| ApiError::internal(e.to_string()))?;
    store
        .blobs
        .put(&meta_key(&id), Bytes::from(meta), "application/json")
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the import: {e}")))?;
    tracing::info!(import = %id, bytes = record.bytes, via = %record.via, "imported");
    Ok(record)
}

fn valid_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("import `{id}` does not exist")).with_param("import_id"))
    }
}

pub async fn record(state: &AppState, id: &str) -> Result<ImportRecord, ApiError> {
    valid_id(id)?;
    let store = state.store.get()?;
    let (_, bytes) = store
        .blobs
        .get_bytes(&meta_key(id))
        .await
        .map_err(|_| ApiError::not_found(format!("import `{id}` does not exist")).with_param("import_id"))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(format!("import `{id}` metadata is unreadable: {e}")))
}

/// The stored media of an import, with a decoder hint.
pub async fn media(state: &AppState, id: &str) -> Result<(Bytes, Option<String>), ApiError> {
    let rec = record(state, id).await?;
    let store = state.store.get()?;
    let (_, bytes) = store
        .blobs
        .get_bytes(&source_key(id))
        .await
        .map_err(|e| ApiError::internal(format!("import `{id}` media is missing: {e}")))?;
    Ok((
        bytes,
        rec.content_type
            .filter(|ct| ct.starts_with("audio/") || ct.starts_with("video/"))
            .or_else(|| url_hint(&rec.final_url)),
    ))
}

/// Import media by URL.
#[utoipa::path(post, path = "/v1/imports", tag = "imports", security(("api_key" = [])),
    request_body = ImportRequest,
    responses((status = 201, body = ImportRecord),
              (status = 403, description = "the URL resolves to a private, loopback, link-local or metadata address", body = crate::error::ErrorEnvelope),
              (status = 413, body = crate::error::ErrorEnvelope), (status = 415, body = crate::error::ErrorEnvelope),
              (status = 422, body = crate::error::ErrorEnvelope), (status = 502, body = crate::error::ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<ImportRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ImportRecord>), ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request("invalid_json", format!("expected JSON {{\"url\": \"…\"}}: {}", e.body_text()))
    })?;
    Ok((StatusCode::CREATED, Json(import(&state, &req.url).await?)))
}

/// One import's metadata.
#[utoipa::path(get, path = "/v1/imports/{id}", tag = "imports", security(("api_key" = [])),
    params(("id" = String, Path)), responses((status = 200, body = ImportRecord), (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ImportRecord>, ApiError> {
    Ok(Json(record(&state, &id).await?))
}
