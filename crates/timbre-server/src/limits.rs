//! Request limits: per-caller rate (GCRA), body size, in-flight cap and processing timeout.
//! Each answers in the error envelope with the headers clients need to back off.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, QuantaClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, QuantaClock, StateInformationMiddleware>;

/// GCRA limiter keyed by API key (or client IP when the server is open). Bursts up to the
/// per-minute figure, then one request every `60 / limit` seconds.
pub struct RateLimit {
    limiter: Keyed,
    per_minute: u32,
    clock: QuantaClock,
}

/// Outcome of one check, carrying what the `X-RateLimit-*` headers report.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allowed { remaining: u32, reset: Duration },
    Limited { retry_after: Duration },
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_minute)?;
        let limiter = RateLimiter::keyed(Quota::per_minute(n))
            .with_middleware::<StateInformationMiddleware>();
        Some(Self {
            limiter,
            per_minute,
            clock: QuantaClock::default(),
        })
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    pub fn check(&self, key: &str) -> Verdict {
        let period = Duration::from_secs_f64(60.0 / f64::from(self.per_minute));
        match self.limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Time until the bucket is full again: one period per used slot.
                let reset = period * (self.per_minute - remaining);
                Verdict::Allowed { remaining, reset }
            }
            Err(not_until) => Verdict::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// Forget callers whose buckets are full again, so the keyed map stays bounded.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

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
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, v);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub async fn rate_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(limit) = state.rate_limit.as_ref() else {
        return Ok(next.run(request).await);
    };
    let key = match request.extensions().get::<Caller>() {
        Some(Caller::Key(i)) => format!("key:{i}"),
        _ => match client_ip(&request, state.config.trust_proxy) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_string(),
        },
    };
    match limit.check(&key) {
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
            let mut response =
                axum::response::IntoResponse::into_response(ApiError::rate_limited(retry_after));
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
/// same 413 envelope.
pub async fn body_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let limit = state.config.max_upload_bytes();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(next.run(request).await)
}

/// Global cap on API requests being processed; beyond it, 503 + Retry-After instead of a queue
/// that grows until memory runs out.
pub async fn inflight_cap(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let permits: &Arc<Semaphore> = &state.inflight;
    let Ok(_permit) = Arc::clone(permits).try_acquire_owned() else {
        metrics::counter!("timbre_overloaded_total").increment(1);
        return Err(ApiError::overloaded(
            format!(
                "server is at its limit of {} requests in flight (TIMBRE_MAX_INFLIGHT)",
                state.config.max_inflight
            ),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_limits_per_key() {
        let rl = RateLimit::new(3).unwrap();
        assert!(matches!(
            rl.check("a"),
            Verdict::Allowed { remaining: 2, .. }
        ));
        assert!(matches!(
            rl.check("a"),
            Verdict::Allowed { remaining: 1, .. }
        ));
        assert!(matches!(
            rl.check("a"),
            Verdict::Allowed { remaining: 0, .. }
        ));
        match rl.check("a") {
            Verdict::Limited { retry_after } => {
                assert!(
                    retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
                    "{retry_after:?}"
                )
            }
            v => panic!("expected limited, got {v:?}"),
        }
        assert!(
            matches!(rl.check("b"), Verdict::Allowed { remaining: 2, .. }),
            "keys are independent"
        );
        assert!(RateLimit::new(0).is_none(), "0 disables");
    }
}
