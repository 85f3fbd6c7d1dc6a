//! `/v1/jobs`: list, read, follow (SSE) and cancel jobs; `POST /v1/jobs/noop` for diagnostics.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use timbre_jobs::{CancelOutcome, Job, JobEvent, JobStatus, ListQuery, NoopPayload, Queue};
use tokio::sync::broadcast;
use utoipa::ToSchema;

use crate::error::{ApiError, jobs_error};
use crate::jobs::submit::{IdempotencyKey, submit};
use crate::jobs::view::JobView;
use crate::state::AppState;

/// While a client follows a job, the row is re-read this often: events are hints, and a worker
/// in another process on a shared SQLite file raises none here.
const RESYNC: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    #[schema(example = "list")]
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<JobView>,
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

fn queue(state: &AppState) -> Result<Queue, ApiError> {
    state.jobs.queue()
}

/// Job ids are 32 hex digits; anything else is a 404 without a database round trip.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) { Ok(()) } else { Err(not_found(id)) }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("job `{id}` does not exist (or was deleted after the retention period)"))
}

async fn load(queue: &Queue, id: &str) -> Result<Job, ApiError> {
    check_id(id)?;
    queue.get(id).await.map_err(jobs_error)?.ok_or_else(|| not_found(id))
}

/// Jobs, newest first, filtered by `status` and `kind`, `limit` (1–200, default 50) per page;
/// follow `next_cursor` with `cursor`.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("api_key" = [])),
    params(("status" = Option<String>, Query, description = "queued | running | succeeded | failed | cancelled"),
           ("kind" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1–200, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = JobList), (status = 422, body = crate::error::ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>, Query(p): Query<ListParams>) -> Result<Json<JobList>, ApiError> {
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<JobStatus>().map_err(|e| ApiError::invalid_field("status", e.to_string())))
        .transpose()?;
    if let Some(limit) = p.limit
        && !(1..=timbre_jobs::model::MAX_PAGE).contains(&limit)
    {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 200"));
    }
    if let Some(cursor) = &p.cursor {
        check_id(cursor).map_err(|_| ApiError::invalid_field("cursor", "not a cursor this API returned"))?;
    }
    let q = ListQuery { status, kind: p.kind.filter(|k| !k.is_empty()), limit: p.limit.unwrap_or(0), cursor: p.cursor };
    let page = queue(&state)?.list(&q).await.map_err(jobs_error)?;
    Ok(Json(JobList {
        object: "list",
        has_more: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        data: page.jobs.into_iter().map(JobView::from).collect(),
    }))
}

/// One job: status, progress, result or error.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    Ok(Json(load(&queue(&state)?, &id).await?.into()))
}

/// Cancels a job. Queued: 200, cancelled at once. Running: 202, `cancel_requested` is set and
/// the handler stops within a second. Finished: 409 `job_finished`. Unknown: 404.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = JobView, description = "was queued: now cancelled"),
              (status = 202, body = JobView, description = "running: stopping"),
              (status = 404, body = crate::error::ErrorEnvelope),
              (status = 409, body = crate::error::ErrorEnvelope, description = "already finished")))]
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    check_id(&id)?;
    match queue(&state)?.cancel(&id).await.map_err(jobs_error)? {
        CancelOutcome::Cancelled(job) => Ok((StatusCode::OK, Json(JobView::from(job))).into_response()),
        CancelOutcome::Requested(job) => Ok((StatusCode::ACCEPTED, Json(JobView::from(job))).into_response()),
        CancelOutcome::AlreadyFinished(job) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "job_finished",
            format!("job `{id}` already {}; there is nothing to cancel", job.status),
        )),
        CancelOutcome::NotFound => Err(not_found(&id)),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NoopRequest {
    /// Time to spend, ms (≤ 600000).
    #[serde(default)]
    pub sleep_ms: u64,
    /// Progress reports over that time.
    #[serde(default)]
    pub steps: u32,
    /// Fail (retryably) this many attempts first.
    #[serde(default)]
    pub fail_attempts: i32,
}

/// Enqueues a `noop` job: checks that workers claim, run and finish jobs end to end.
#[utoipa::path(post, path = "/v1/jobs/noop", tag = "jobs", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "a repeated key returns the first job")),
    request_body = NoopRequest,
    responses((status = 202, body = crate::jobs::submit::Accepted), (status = 422, body = crate::error::ErrorEnvelope)))]
pub async fn noop(
    State(state): State<AppState>,
    key: IdempotencyKey,
    body: Result<Json<NoopRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) =
        body.map_err(|e| ApiError::bad_request("invalid_json", format!("expected a JSON object: {}", e.body_text())))?;
    let payload = NoopPayload {
        sleep_ms: req.sleep_ms,
        steps: req.steps,
        fail_attempts: req.fail_attempts,
        ..NoopPayload::default()
    };
    payload.validate().map_err(|m| ApiError::invalid_field("body", m))?;
    let value = serde_json::json!({"sleep_ms": payload.sleep_ms, "steps": payload.steps, "fail_attempts": payload.fail_attempts});
    let submitted = submit(&state, &key, timbre_jobs::noop::KIND, |_| async move { Ok(value) }).await?;
    Ok(submitted.into_response())
}

/// Server-sent events of one job until it finishes: `status` (on connect and on changes),
/// `progress`, `log`, and a final `done` carrying the whole job, after which the stream ends. A
/// client connecting after the job finished gets `done` at once.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", description = "`status`, `progress`, `log`, `done` events"),
              (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let queue = queue(&state)?;
    check_id(&id)?;
    // Subscribe before reading the row: nothing that happens in between is missed.
    let rx = queue.subscribe();
    let job = load(&queue, &id).await?;
    let follow = Follow::new(queue, job, rx);
    let stream = futures_util::stream::unfold(follow, |mut f| async move { f.next().await.map(|e| (Ok(e), f)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The state of one SSE stream.
struct Follow {
    queue: Queue,
    id: String,
    rx: broadcast::Receiver<JobEvent>,
    pending: VecDeque<Event>,
    last: (JobStatus, bool),
    finished: bool,
    next_resync: tokio::time::Instant,
}

fn sse(name: &str, data: &impl Serialize) -> Event {
    Event::default().event(name).json_data(data).unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

impl Follow {
    fn new(queue: Queue, job: Job, rx: broadcast::Receiver<JobEvent>) -> Self {
        let mut f = Self {
            queue,
            id: job.id.clone(),
            rx,
            pending: VecDeque::new(),
            last: (job.status, job.cancel_requested),
            finished: false,
            next_resync: tokio::time::Instant::now() + RESYNC,
        };
        f.observe(job, true);
        f
    }

    /// Queues `status` (when it changed, or `always`) or the final `done`.
    fn observe(&mut self, job: Job, always: bool) {
        if job.status.is_terminal() {
            self.pending.push_back(sse("done", &JobView::from(job)));
            self.finished = true;
            return;
        }
        let now = (job.status, job.cancel_requested);
        if always || now != self.last {
            self.last = now;
            self.pending.push_back(sse("status", &JobView::from(job)));
        }
    }

    async fn resync(&mut self) {
        self.next_resync = tokio::time::Instant::now() + RESYNC;
        match self.queue.get(&self.id).await {
            Ok(Some(job)) => self.observe(job, false),
            // Deleted (retention) while followed: nothing more will happen.
            Ok(None) => self.finished = true,
            Err(e) => tracing::warn!(job_id = %self.id, error = %e, "job events: cannot read the job"),
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            let received = tokio::time::timeout_at(self.next_resync, self.rx.recv()).await;
            match received {
                Err(_) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => self.resync().await,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Ok(event)) if event.job_id() == self.id => match event {
                    JobEvent::Progress { progress, .. } => self.pending.push_back(sse("progress", &progress)),
                    JobEvent::Log { level, message, .. } => {
                        self.pending.push_back(sse("log", &serde_json::json!({"level": level, "message": message})));
                    }
                    _ => self.resync().await,
                },
                Ok(Ok(_)) => {}
            }
        }
    }
}
