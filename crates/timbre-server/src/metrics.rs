//! Prometheus metrics: one process-wide recorder (the `metrics` facade is global), request
//! counters and latency histograms recorded by a middleware, model state refreshed at scrape.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use timbre_engines::ModelState;

use crate::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The process-wide recorder, installed on first use. If another recorder was installed first
/// (an embedding application), timbre renders an empty registry rather than failing.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                metrics::gauge!("timbre_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            }
            handle
        })
        .clone()
}

/// Counts and times every request, labelled by the matched route (not the raw path, which would
/// explode label cardinality), and adds `x-total-time` in milliseconds.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    metrics::gauge!("timbre_inflight_requests").increment(1.0);
    let mut response = next.run(request).await;
    metrics::gauge!("timbre_inflight_requests").decrement(1.0);
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    metrics::counter!("timbre_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!("timbre_http_request_duration_seconds", "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", elapsed.as_secs_f64() * 1000.0)) {
        response.headers_mut().insert("x-total-time", v);
    }
    response
}

/// `GET /metrics` in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let snapshot = state.snapshot();
    for (name, model) in &snapshot.models {
        for st in ModelState::ALL {
            let v = if model.state == st { 1.0 } else { 0.0 };
            metrics::gauge!("timbre_model_state", "model" => name.clone(), "state" => st.as_str()).set(v);
        }
    }
    metrics::gauge!("timbre_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

#[cfg(test)]
mod tests {
    #[test]
    fn handle_is_shared() {
        let a = super::handle();
        metrics::counter!("timbre_test_counter_total").increment(3);
        let text = super::handle().render();
        assert!(text.contains("timbre_test_counter_total 3"), "{text}");
        drop(a);
    }
}
