//! The one error type every handler returns, and the one place it becomes HTTP.
//!
//! Clients of the OpenAI API parse `{"error":{"message","type","param","code"}}`; every
//! non-2xx answer from timbre has that shape — including axum's own rejections (405, malformed
//! JSON), which [`normalize_errors`] rewrites.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<Duration>,
}

/// The envelope as documented in OpenAPI.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, code, message: message.into(), param: None, retry_after: None }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    /// A field that parsed but has an unacceptable value: 422 naming the field.
    pub fn invalid_field(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", "invalid_value", message).with_param(param)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", code, message)
    }

    pub fn payload_too_large(limit_bytes: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "payload_too_large",
            format!("request body is larger than the {} MiB limit (TIMBRE_MAX_UPLOAD_MB)", limit_bytes / (1024 * 1024)),
        )
    }

    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", "unsupported_media_type", message)
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            "rate limit exceeded; retry after the time in Retry-After",
        )
        .with_retry_after(retry_after)
    }

    /// The server (or one engine) is at capacity; the client should retry shortly.
    pub fn overloaded(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "overloaded", message).with_retry_after(retry_after)
    }

    /// A model this request needs is not ready; the reason says why (loading, failed, skipped).
    pub fn model_unavailable(message: impl Into<String>, retry_after: Duration) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "model_unavailable", message)
            .with_retry_after(retry_after)
    }

    pub fn timeout(after: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "processing_timeout",
            format!("request took longer than {:.1} s (PROCESSING_TIMEOUT)", after.as_secs_f64()),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal_error", message)
    }

    fn envelope(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.envelope())).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry storm.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Audio the decoder rejected: unsupported → 415, too long → 413, empty/corrupt/bad parameter →
/// 422 naming the field the audio came from.
pub fn audio_error(e: timbre_audio::AudioError, param: &str) -> ApiError {
    use timbre_audio::AudioError as A;
    match e {
        A::Unsupported { .. } => ApiError::unsupported_media(e.to_string()).with_param(param),
        A::TooLong { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "audio_too_long", e.to_string())
                .with_param(param)
        }
        A::Empty | A::Corrupt { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", "invalid_audio", e.to_string())
                .with_param(param)
        }
        A::InvalidParameter { name, .. } => ApiError::invalid_field(name, e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

/// An engine that is busy answers 503 + Retry-After; one that failed, 500.
pub fn engine_error(e: timbre_engines::actor::EngineError) -> ApiError {
    use timbre_engines::actor::EngineError as E;
    match e {
        E::Overloaded { .. } => ApiError::overloaded(e.to_string(), Duration::from_secs(1)),
        E::Stopped { .. } => ApiError::model_unavailable(e.to_string(), Duration::from_secs(5)),
        E::Inference { .. } => ApiError::internal(e.to_string()),
    }
}

/// The job queue's errors: database trouble is 503 + Retry-After (the queue comes back); a
/// malformed job is the caller's 422; anything else is ours.
pub fn jobs_error(e: timbre_jobs::JobsError) -> ApiError {
    use timbre_jobs::JobsError as J;
    match e {
        J::Db(_) | J::Blob(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "jobs_unavailable",
            format!("the job queue is unavailable: {e}"),
        )
        .with_retry_after(Duration::from_secs(5)),
        J::Invalid(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error", "invalid_job", e.to_string())
        }
        J::Corrupt(_) => ApiError::internal(e.to_string()),
    }
}

/// A transcription refused for an option (422 naming it) or failed in the engine.
pub fn transcribe_error(e: timbre_engines::whisper::api::TranscribeError) -> ApiError {
    use timbre_engines::whisper::api::TranscribeError as T;
    match e {
        T::InvalidOption { param, message } => ApiError::invalid_field(param, message),
        T::Engine(e) => engine_error(e),
    }
}

/// Fallback for unknown routes.
pub async fn not_found_fallback(request: Request) -> ApiError {
    ApiError::not_found(format!("no route for {} {}", request.method(), request.uri().path()))
}

/// Rewrites error responses that are not already JSON (axum's 405, extractor rejections, a
/// panic caught by the outer layer) into the envelope, so no client ever sees a bare string.
pub async fn normalize_errors(request: Request, next: Next) -> Response {
    normalize(next.run(request).await).await
}

/// [`normalize_errors`] on a response in hand: the main stack calls it from its metrics
/// middleware, one layer less per request.
pub async fn normalize(response: Response) -> Response {
    if !needs_envelope(&response) {
        return response;
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    // Rejection bodies are short; cap what we read so a streaming error body cannot stall us.
    let text = match tokio::time::timeout(Duration::from_secs(1), body.collect()).await {
        Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes()).chars().take(1000).collect::<String>(),
        _ => String::new(),
    };
    let (kind, code, default_message) = classify(status);
    let message = if text.trim().is_empty() { default_message.to_string() } else { text.trim().to_string() };
    let mut fresh = ApiError { status, kind, code, message, param: None, retry_after: None }.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

/// An error status whose body is not JSON yet (axum's plain-text rejections, tower's 413/408).
pub fn needs_envelope(response: &Response) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    !response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn classify(status: StatusCode) -> (&'static str, &'static str, &'static str) {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("invalid_request_error", "method_not_allowed", "method not allowed for this route")
        }
        StatusCode::NOT_FOUND => ("invalid_request_error", "not_found", "not found"),
        StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request_error", "payload_too_large", "request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("invalid_request_error", "unsupported_media_type", "unsupported media type")
        }
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid_request_error", "invalid_value", "invalid request"),
        StatusCode::BAD_REQUEST => ("invalid_request_error", "bad_request", "bad request"),
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ("server_error", "timeout", "timed out"),
        s if s.is_server_error() => ("server_error", "internal_error", "internal server error"),
        _ => ("invalid_request_error", "bad_request", "request failed"),
    }
}

/// Turns a caught panic into a 500 envelope; the connection and the server survive.
pub fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    ApiError::internal("internal error (the failure was logged)").into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn envelope_shape_and_retry_after() {
        let r = ApiError::rate_limited(Duration::from_millis(1500)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert!(v["error"]["param"].is_null());
        assert!(v["error"]["message"].as_str().unwrap().contains("rate limit"));
        let r = ApiError::invalid_field("speed", "must be 0.25–4").into_response();
        let v: serde_json::Value = serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(v["error"]["param"], "speed");
    }
}
