//! What every job-creating `POST` shares: the `Idempotency-Key` header, enqueuing with inputs
//! stored under the job's blob prefix first, and the 202 answer.

use std::future::Future;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Serialize;
use timbre_jobs::{Job, NewJob, blob_prefix, new_job_id};
use utoipa::ToSchema;

use crate::error::{ApiError, jobs_error};
use crate::state::AppState;

/// The request header that makes a job-creating POST safe to retry.
pub const HEADER: &str = "idempotency-key";
/// Longest key accepted (Stripe's limit).
pub const MAX_KEY_LEN: usize = 255;

/// The request's `Idempotency-Key`, if any: 1–255 visible ASCII characters, else 422.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub fn parse(value: Option<&HeaderValue>) -> Result<Self, ApiError> {
        let Some(value) = value else { return Ok(Self(None)) };
        let bad = || {
            ApiError::invalid_field("Idempotency-Key", format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"))
        };
        let text = value.to_str().map_err(|_| bad())?.trim();
        if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        Ok(Self(Some(text.to_owned())))
    }

    /// Keys are scoped to the job kind: the same key on two different endpoints makes two jobs.
    pub fn scoped(&self, kind: &str) -> Option<String> {
        self.0.as_ref().map(|k| format!("{kind}:{k}"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::parse(parts.headers.get(HEADER))
    }
}

/// A job created (or found by its idempotency key).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: Job,
    /// The key was seen before: this is the earlier job, nothing new was enqueued.
    pub replayed: bool,
}

/// The 202 body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub job_id: String,
    #[schema(example = "analyze_audio")]
    pub kind: String,
    /// The job's status now (a replayed key may return a finished job).
    #[schema(example = "queued")]
    pub status: String,
    /// Poll this for status, progress and result.
    #[schema(example = "/v1/jobs/0190f0c2e1b47c3a9e5d3b2a1c0d9e8f")]
    pub url: String,
    /// Server-sent events of the job's progress.
    pub events_url: String,
}

impl Submitted {
    pub fn body(&self) -> Accepted {
        Accepted {
            job_id: self.job.id.clone(),
            kind: self.job.kind.clone(),
            status: self.job.status.as_str().to_owned(),
            url: format!("/v1/jobs/{}", self.job.id),
            events_url: format!("/v1/jobs/{}/events", self.job.id),
        }
    }

    /// 202 with `Location` and, for a replayed key, `Idempotent-Replayed: true`, around `body`
    /// (endpoints with richer bodies, like `{song_id, job_id}`, pass their own).
    pub fn respond<T: Serialize>(&self, body: T) -> Response {
        let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", self.job.id)) {
            headers.insert(header::LOCATION, v);
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

impl IntoResponse for Submitted {
    fn into_response(self) -> Response {
        self.respond(self.body())
    }
}

/// Creates a job of `kind`, unless `key` was used before for this kind (then the earlier job is
/// returned and `prepare` never runs).
///
/// `prepare` gets the new job's id and returns its payload; store inputs under
/// `jobs/<id>/` there so retention deletes them with the job. If a concurrent request with the
/// same key wins the race, what `prepare` stored is deleted and the winner's job returned.
pub async fn submit<F, Fut>(
    state: &AppState,
    key: &IdempotencyKey,
    kind: &str,
    prepare: F,
) -> Result<Submitted, ApiError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, ApiError>>,
{
    let queue = state.jobs.queue()?;
    let scoped = key.scoped(kind);
    if let Some(k) = &scoped
        && let Some(job) = queue.find_by_idempotency_key(k).await.map_err(jobs_error)?
    {
        return Ok(Submitted { job, replayed: true });
    }
    let id = new_job_id();
    let payload = prepare(id.clone()).await?;
    let mut new = NewJob::new(kind, payload).with_id(&id);
    if let Some(k) = scoped {
        new = new.idempotency_key(k);
    }
    let enqueued = queue.enqueue(new).await.map_err(jobs_error)?;
    if !enqueued.created {
        discard_inputs(state, &id).await;
    }
    Ok(Submitted { job: enqueued.job, replayed: !enqueued.created })
}

/// Removes what a losing duplicate stored under its never-enqueued job's prefix.
async fn discard_inputs(state: &AppState, id: &str) {
    let Ok(store) = state.store.get() else { return };
    let keys: Result<Vec<String>, _> = store.blobs.list(&blob_prefix(id)).map_ok(|e| e.key).try_collect().await;
    for key in keys.unwrap_or_default() {
        let _ = store.blobs.delete(&key).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_validated_and_scoped() {
        assert_eq!(IdempotencyKey::parse(None).unwrap(), IdempotencyKey(None));
        let key = IdempotencyKey::parse(Some(&HeaderValue::from_static(" order-42 "))).unwrap();
        assert_eq!(key.0.as_deref(), Some("order-42"));
        assert_eq!(key.scoped("noop").as_deref(), Some("noop:order-42"));
        for bad in ["", "has space", &"x".repeat(256)] {
            let err = IdempotencyKey::parse(Some(&HeaderValue::from_str(bad).unwrap())).unwrap_err();
            assert_eq!((err.status.as_u16(), err.param.as_deref()), (422, Some("Idempotency-Key")), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(Some(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap())).is_err());
    }
}
