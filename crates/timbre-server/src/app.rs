//! Router assembly and serving. `app` and `serve` are apart from `main` so tests bind port 0 and
//! drive the exact stack production runs.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::openapi::ApiDoc;
use crate::request_id::MakeFastRequestId;
use crate::routes::{
    health, jobs, models, songs, speech, streams, stt_stream, tag_stream, tags, transcriptions, tts_stream, ws,
};
use crate::state::AppState;
use crate::{auth, error, imports, limits, metrics};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes anyone may call: health for load balancers, docs for people.
fn public_routes(state: &AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route("/", get(health::root))
        .route(crate::HEALTH_PATH, get(health::health))
        .route(crate::LIVENESS_PATH, get(health::healthz))
        .route(crate::READINESS_PATH, get(health::readyz))
        .route("/ping", get(health::ping));
    if !state.config.metrics_auth {
        r = r.route("/metrics", get(metrics::render));
    }
    r
}

/// Routes behind the API key, the rate limit, the in-flight cap and the processing timeout.
pub fn api_routes(state: &AppState) -> Router<AppState> {
    let mut r = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/ws/ping", get(ws::ping))
        .route("/v1/audio/classification", post(tags::classify))
        .route("/v1/tag/stream", get(tag_stream::tag_stream))
        .route("/v1/imports", post(imports::create))
        .route("/v1/imports/{id}", get(imports::get))
        // SonoTag's URL import.
        .route("/download_youtube", post(imports::create))
        // SonoTag's endpoints, same capability.
        .route("/classify", post(tags::classify))
        .route("/classify-local", post(tags::classify))
        // SonoTag's analysis endpoint: answered inline until durable jobs land.
        .route("/analyze", post(tags::classify))
        .route("/v1/streams/{model}", get(streams::stream))
        // Durable jobs.
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/noop", post(jobs::noop))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        // Text-to-speech (OpenAI's speech API) and text-in streaming; `/ws/tts` is Hana's path.
        .route("/v1/audio/speech", post(speech::speech))
        .route("/v1/audio/voices", get(speech::voices))
        .route("/v1/tts/stream", get(tts_stream::tts_stream))
        .route("/ws/tts", get(tts_stream::tts_stream))
        // Speech-to-text: OpenAI's transcription routes and the live protocols.
        .route("/v1/audio/transcriptions", post(transcriptions::transcriptions))
        .route("/v1/audio/translations", post(transcriptions::translations))
        .route("/v1/stt/stream", get(stt_stream::stt_stream))
        .route("/v1/realtime", get(stt_stream::realtime))
        // Hana's live-transcription socket.
        .route("/ws/echo", get(stt_stream::stt_stream))
        // Songs: upload, analysis (an `analyze_song` job), waveform, beat-aligned clip plans.
        .route("/v1/songs", post(songs::upload).get(songs::list))
        .route("/v1/songs/{id}", get(songs::get).delete(songs::delete))
        .route("/v1/songs/{id}/analysis", get(songs::analysis))
        .route("/v1/songs/{id}/waveform", get(songs::waveform))
        .route("/v1/songs/{id}/clips", get(songs::clip_plan))
        // SonoTag: upload a file for later analysis.
        .route("/upload_audio", post(songs::upload));
    if state.config.metrics_auth {
        r = r.route("/metrics", get(metrics::render));
    }
    r
}

/// The production router.
pub fn app(state: AppState) -> Router {
    let api = api_routes(&state);
    with_api(state, api)
}

/// The full stack around `api` (the protected routes). Tests use this to add routes with
/// controlled behaviour (a slow handler for the timeout) under exactly the production layers.
pub fn with_api(state: AppState, api: Router<AppState>) -> Router {
    let protected = api.layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(state.clone(), auth::require_key))
            .layer(from_fn_with_state(state.clone(), limits::rate_limit))
            .layer(from_fn_with_state(state.clone(), limits::inflight_cap))
            .layer(from_fn_with_state(state.clone(), limits::processing_timeout)),
    );
    let docs = SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi());
    let body_limit = usize::try_from(state.config.max_upload_bytes()).unwrap_or(usize::MAX);
    let routes = Router::new()
        .merge(public_routes(&state))
        .merge(protected)
        .merge(docs)
        .fallback(error::not_found_fallback)
        .layer(metrics::RouteLabelLayer)
        .with_state(state.clone());
    // Everything that does not depend on the route wraps the router once instead of every
    // route: `Router::layer` puts layers inside each route's boxed service, which axum clones
    // (with every layer in it) for each request and for each `from_fn` on the way.
    let edge = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeFastRequestId))
        .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(log_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(metrics::TrackLayer)
        .layer(cors(&state))
        .layer(limits::BodyLimitLayer::new(state.config.max_upload_bytes()))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(routes);
    Router::new().fallback_service(edge)
}

/// Signify compatibility (`TIMBRE_STREAM_PORT`): the keypoint stream of `stream_model` at `/`,
/// behind the same API keys as the main port.
pub fn stream_app(state: AppState) -> Router {
    Router::new()
        .route("/", get(streams::seed_stream))
        .layer(from_fn_with_state(state.clone(), auth::require_key))
        .fallback(error::not_found_fallback)
        .layer(from_fn(error::normalize_errors))
        .with_state(state)
}

/// Signify compatibility (`HEALTH_PORT`): health, liveness and readiness on a port of their own.
pub fn health_app(state: AppState) -> Router {
    Router::new()
        .route(crate::HEALTH_PATH, get(health::health))
        .route(crate::LIVENESS_PATH, get(health::healthz))
        .route(crate::READINESS_PATH, get(health::readyz))
        .fallback(error::not_found_fallback)
        .layer(from_fn(error::normalize_errors))
        .with_state(state)
}

/// Serve an extra listener (`stream_app`, `health_app`) until the main server begins shutting
/// down; its WebSocket sessions are counted and closed (1001) like the main port's.
pub async fn serve_extra(listener: TcpListener, router: Router, state: AppState) -> std::io::Result<()> {
    let mut shutdown = state.sessions.shutdown_signal();
    axum::serve(nodelay(listener), router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { crate::sessions::shutting_down(&mut shutdown).await })
        .await
}

/// Accepted connections send small writes at once: a streamed response (TTS audio chunks, SSE
/// deltas) would otherwise wait on Nagle's algorithm for the peer's delayed ACK between chunks.
fn nodelay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(tcp: &mut TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

fn cors(state: &AppState) -> CorsLayer {
    let origins = &state.config.cors_origins;
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::PUT, Method::PATCH, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any);
    if origins.iter().any(|o| o == "*") {
        base.allow_origin(Any)
    } else if origins.is_empty() {
        base.allow_origin(AllowOrigin::list(Vec::<HeaderValue>::new()))
    } else {
        base.allow_origin(AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok())))
    }
}

/// Every log line inside a request carries its `request_id` through this span.
fn request_span(request: &Request) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

fn log_response(response: &axum::response::Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request finished"
    );
}

/// Serve until `shutdown` resolves, then stop accepting, tell sessions to close (1001), and give
/// in-flight requests up to `shutdown_grace` to finish before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs_f64(state.config.shutdown_grace);
    let router = app(state.clone());
    serve_router(listener, router, state, grace, shutdown).await
}

pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    state: AppState,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signaled_tx, signaled_rx) = tokio::sync::oneshot::channel::<()>();
    let notify = state.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new connections, finishing in-flight requests");
        notify.begin_shutdown();
        let _ = signaled_tx.send(());
    };
    let pruner = state.rate_limit.clone().map(|rl| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                rl.prune();
            }
        })
    });
    let server = axum::serve(nodelay(listener), router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(graceful);
    let mut server = tokio::spawn(server.into_future());
    let result = tokio::select! {
        res = &mut server => flatten(res),
        _ = signaled_rx => {
            let deadline = tokio::time::Instant::now() + grace;
            let res = match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(res) => flatten(res),
                Err(_) => {
                    tracing::warn!(grace_s = grace.as_secs_f64(), "grace period over; dropping remaining connections");
                    server.abort();
                    Ok(())
                }
            };
            // WebSocket sessions were upgraded out of the HTTP server; wait for them to send
            // their 1001 close frames, within the same deadline.
            while state.sessions.active() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            res
        }
    };
    if let Some(p) = pruner {
        p.abort();
    }
    result
}

fn flatten(res: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    res.map_err(std::io::Error::other)?
}
