//! Prometheus metrics: one process-wide recorder (the `metrics` facade is global), request
//! counters and latency histograms recorded by a middleware, model state refreshed at scrape.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
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
/// 413s); the route comes back on the response from [`RouteLabelLayer`]. A hand-written service,
/// not `from_fn`: that boxes a future and a clone of the inner stack on every request, and this
/// layer sees every request the server answers.
#[derive(Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let method = request.method().clone();
        TrackFuture { inner: self.inner.call(request), normalizing: None, pending: Some(Pending::start(method)) }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        // Rewriting an error body into the envelope reads the body: rare, so boxed.
        normalizing: Option<Pin<Box<dyn Future<Output = Response> + Send>>>,
        pending: Option<Pending>,
    }
}

/// A request being answered: counted in the in-flight gauge until it is finished or dropped
/// (a client that hangs up mid-request must not leave the gauge one too high).
struct Pending {
    started: Instant,
    method: Method,
}

impl Pending {
    fn start(method: Method) -> Self {
        inflight_gauge().increment(1.0);
        Self { started: Instant::now(), method }
    }

    fn finish(self, mut response: Response) -> Response {
        let elapsed = self.started.elapsed();
        let route = response.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
        request_handles().record(route, &self.method, response.status().as_u16(), elapsed.as_secs_f64());
        if let Some(v) = millis_header(elapsed) {
            response.headers_mut().insert(TOTAL_TIME, v);
        }
        response
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        inflight_gauge().decrement(1.0);
    }
}

impl<F> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = if let Some(fut) = this.normalizing.as_mut() {
            let Poll::Ready(response) = fut.as_mut().poll(cx) else { return Poll::Pending };
            response
        } else {
            let Poll::Ready(Ok(response)) = this.inner.poll(cx) else { return Poll::Pending };
            if crate::error::needs_envelope(&response) {
                let mut fut = Box::pin(crate::error::normalize(response));
                let Poll::Ready(response) = fut.as_mut().poll(cx) else {
                    *this.normalizing = Some(fut);
                    return Poll::Pending;
                };
                response
            } else {
                response
            }
        };
        Poll::Ready(Ok(match this.pending.take() {
            Some(pending) => pending.finish(response),
            None => response,
        }))
    }
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
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        metrics::gauge!("timbre_runtime_workers").set(rt.metrics().num_workers() as f64);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use tower::{Layer, ServiceExt};

    fn inflight() -> f64 {
        let text = super::handle().render();
        let line = text.lines().find(|l| l.starts_with("timbre_inflight_requests ")).unwrap_or("x 0");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// A client that hangs up drops the request's future half-way: the gauge must come back down.
    #[tokio::test]
    async fn a_dropped_request_leaves_the_inflight_gauge() {
        let never = tower::service_fn(|_: Request| std::future::pending::<Result<Response, Infallible>>());
        let mut call = Box::pin(super::TrackLayer.layer(never).oneshot(Request::new(Body::empty())));
        let before = inflight();
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut call).await.is_err());
        assert_eq!(inflight(), before + 1.0, "counted while in flight");
        drop(call);
        assert_eq!(inflight(), before, "released when dropped");
    }

    /// A plain-text error from inside the stack leaves in the envelope, counted and timed.
    #[tokio::test]
    async fn errors_are_enveloped_counted_and_timed() {
        let teapot = tower::service_fn(|_: Request| async {
            Ok::<_, Infallible>(Response::builder().status(418).body(Body::from("short and stout")).unwrap())
        });
        let response = super::TrackLayer.layer(teapot).oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), 418);
        assert!(response.headers().contains_key("x-total-time"));
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["message"], "short and stout");
        let text = super::handle().render();
        assert!(
            text.lines().any(|l| l.starts_with("timbre_http_requests_total")
                && l.contains("route=\"unmatched\"")
                && l.contains("status=\"418\"")),
            "{text}"
        );
    }

    #[test]
    fn handle_is_shared() {
        let a = super::handle();
        metrics::counter!("timbre_test_counter_total").increment(3);
        let text = super::handle().render();
        assert!(text.contains("timbre_test_counter_total 3"), "{text}");
        drop(a);
    }
}
