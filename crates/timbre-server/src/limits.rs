//! Request limits as middleware: per-caller rate (see `rate_limit`), body size, in-flight cap
//! and processing timeout.
//! Each answers in the error envelope with the headers clients need to back off.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::rate_limit::Verdict;
use crate::state::AppState;

fn client_ip(request: &Request, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, v);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(limit) = state.rate_limit.as_ref() else {
        return Ok(next.run(request).await);
    };
    let key = match request.extensions().get::<Caller>() {
        Some(Caller::Key { id, .. }) => format!("key:{id}"),
        _ => match client_ip(&request, state.config.trust_proxy) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_string(),
        },
    };
    match limit.check(&key).await {
        Verdict::Allowed { remaining, reset } => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            set_header(headers, "x-ratelimit-limit", limit.per_minute());
            set_header(headers, "x-ratelimit-remaining", remaining);
            set_header(headers, "x-ratelimit-reset", ceil_secs(reset));
            Ok(response)
        }
        Verdict::Limited { retry_after } => {
            metrics::counter!("timbre_rate_limited_total").increment(1);
            let mut response = axum::response::IntoResponse::into_response(ApiError::rate_limited(retry_after));
            let headers = response.headers_mut();
            set_header(headers, "x-ratelimit-limit", limit.per_minute());
            set_header(headers, "x-ratelimit-remaining", 0);
            set_header(headers, "x-ratelimit-reset", ceil_secs(retry_after).max(1));
            Ok(response)
        }
    }
}

/// Rejects a declared body over the limit before reading a byte of it. Chunked bodies are capped
/// by axum's `DefaultBodyLimit` in the extractors, and their rejection is normalised to the
/// same 413 envelope. A plain service rather than `from_fn`: it sits in front of every route.
#[derive(Clone, Copy)]
pub struct BodyLimitLayer {
    limit: u64,
}

impl BodyLimitLayer {
    pub fn new(limit: u64) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> BodyLimit<S> {
        BodyLimit { inner, limit: self.limit }
    }
}

#[derive(Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: u64,
}

impl<S> Service<Request> for BodyLimit<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if declared_length(request.headers()).is_some_and(|n| n > self.limit) {
            return Either::Left(ready(Ok(ApiError::payload_too_large(self.limit).into_response())));
        }
        Either::Right(self.inner.call(request))
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Global cap on API requests being processed; beyond it, 503 + Retry-After instead of a queue
/// that grows until memory runs out.
pub async fn inflight_cap(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let permits: &Arc<Semaphore> = &state.inflight;
    let Ok(_permit) = Arc::clone(permits).try_acquire_owned() else {
        metrics::counter!("timbre_overloaded_total").increment(1);
        return Err(ApiError::overloaded(
            format!("server is at its limit of {} requests in flight (TIMBRE_MAX_INFLIGHT)", state.config.max_inflight),
            Duration::from_secs(1),
        ));
    };
    Ok(next.run(request).await)
}

pub async fn processing_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let limit = Duration::from_secs_f64(state.config.processing_timeout);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => Ok(response),
        Err(_) => {
            metrics::counter!("timbre_timeouts_total").increment(1);
            Err(ApiError::timeout(limit))
        }
    }
}
