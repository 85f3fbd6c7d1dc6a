//! Prometheus metrics: one process-wide recorder (the `metrics` facade is global), request
//! counters and latency histograms recorded by a middleware, model state refreshed at scrape.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Gauge, Histogram, Label};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use timbre_engines::ModelState;
use tower::{Layer, Service};

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
/// explode label cardinality), and adds `x-total-time` in milliseconds. Error responses are
/// put in the envelope here too ([`crate::error::normalize`]), before they are counted.
///
/// It runs outside the router (so it also counts what the outer layers answer: CORS preflights,
/// 413s); the route comes back on the response from [`RouteLabelLayer`].
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let inflight = inflight_gauge();
    inflight.increment(1.0);
    let mut response = crate::error::normalize(next.run(request).await).await;
    inflight.decrement(1.0);
    let elapsed = started.elapsed();
    let route = response.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    request_handles().record(route, &method, response.status().as_u16(), elapsed.as_secs_f64());
    if let Some(v) = millis_header(elapsed) {
        response.headers_mut().insert(TOTAL_TIME, v);
    }
    response
}

const TOTAL_TIME: HeaderName = HeaderName::from_static("x-total-time");

/// `x-total-time` with three decimals, formatted on the stack.
fn millis_header(elapsed: Duration) -> Option<HeaderValue> {
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{:.3}", elapsed.as_secs_f64() * 1000.0).ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    HeaderValue::from_bytes(&buf[..len]).ok()
}

fn inflight_gauge() -> &'static Gauge {
    static GAUGE: OnceLock<Gauge> = OnceLock::new();
    GAUGE.get_or_init(|| {
        handle();
        metrics::gauge!("timbre_inflight_requests")
    })
}

/// The request counter and latency histogram of one (route, method, status). Looking them up
/// in the recorder builds a labelled key (three `String`s) and hashes it; caching the handles
/// makes the per-request cost two atomic updates under a shared read lock.
#[derive(Default)]
struct RequestHandles {
    by_route: RwLock<HashMap<String, RouteHandles>>,
}

/// One route's handles by (method, status).
type RouteHandles = HashMap<(Method, u16), (Counter, Histogram)>;

fn request_handles() -> &'static RequestHandles {
    static HANDLES: OnceLock<RequestHandles> = OnceLock::new();
    HANDLES.get_or_init(|| {
        handle();
        RequestHandles::default()
    })
}

impl RequestHandles {
    fn record(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        if let Ok(map) = self.by_route.read()
            && let Some((counter, histogram)) = map.get(route).and_then(|m| m.get(&(method.clone(), status)))
        {
            counter.increment(1);
            histogram.record(seconds);
            return;
        }
        let labels = vec![Label::new("route", route.to_string()), Label::new("method", method.as_str().to_string())];
        let mut with_status = labels.clone();
        with_status.push(Label::new("status", status.to_string()));
        let counter = metrics::counter!("timbre_http_requests_total", with_status);
        let histogram = metrics::histogram!("timbre_http_request_duration_seconds", labels);
        counter.increment(1);
        histogram.record(seconds);
        if let Ok(mut map) = self.by_route.write() {
            map.entry(route.to_string()).or_default().insert((method.clone(), status), (counter, histogram));
        }
    }
}

/// Copies the route template axum matched (`/v1/jobs/{id}`) onto the response, where [`track`],
/// which runs before routing, can read it. A plain future, not `from_fn`: this layer is inside
/// every route, where each boxing and clone is paid per request.
#[derive(Clone, Copy, Default)]
pub struct RouteLabelLayer;

impl<S> Layer<S> for RouteLabelLayer {
    type Service = RouteLabel<S>;

    fn layer(&self, inner: S) -> RouteLabel<S> {
        RouteLabel { inner }
    }
}

#[derive(Clone)]
pub struct RouteLabel<S> {
    inner: S,
}

impl<S> Service<Request> for RouteLabel<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RouteLabelFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        RouteLabelFuture { inner: self.inner.call(request), route }
    }
}

pub struct RouteLabelFuture<F> {
    inner: F,
    route: Option<MatchedPath>,
}

impl<F, E> Future for RouteLabelFuture<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Poll::Ready(mut result) = Pin::new(&mut this.inner).poll(cx) else {
            return Poll::Pending;
        };
        if let (Ok(response), Some(route)) = (&mut result, this.route.take()) {
            response.extensions_mut().insert(route);
        }
        Poll::Ready(result)
    }
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
