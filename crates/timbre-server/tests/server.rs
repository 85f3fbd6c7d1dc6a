//! The server foundation through real sockets: health states, auth, limits, errors, request ids,
//! CORS, metrics, OpenAPI, WebSocket sessions and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::routing::{get, post};
use common::*;
use futures_util::{SinkExt, StreamExt};
use timbre_engines::{ModelState, ModelStatus};
use timbre_server::config::Secret;
use timbre_server::{AppState, Config};
use tokio_tungstenite::tungstenite::Message;

#[derive(serde::Deserialize)]
struct Sleep {
    ms: u64,
}

/// Routes with controlled behaviour, mounted under the production middleware.
fn test_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/test/slow",
            get(|Query(q): Query<Sleep>| async move {
                tokio::time::sleep(Duration::from_millis(q.ms)).await;
                "done"
            }),
        )
        .route("/v1/test/echo", post(|body: Bytes| async move { body.len().to_string() }))
}

fn model(name: &str, required: bool, state: ModelState, reason: Option<&str>) -> ModelStatus {
    let mut m = ModelStatus::new(name, "ced", "tagging", required);
    m.state = state;
    m.reason = reason.map(str::to_string);
    m
}

#[tokio::test]
async fn health_reports_every_state_honestly() {
    let server = start(base_config()).await;
    let c = client();

    // Before the registry's first pass: starting, not ready, but /health is 200.
    server.registry.update(model("ced-tiny", true, ModelState::Loading, None));
    let r = c.get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = json(r).await;
    assert_eq!(h["status"], "starting");
    assert_eq!(h["ready"], false);
    assert_eq!(h["model_loaded"], false);
    assert_eq!(h["models"]["ced-tiny"]["state"], "loading");
    for key in ["version", "uptime_s", "models", "reasons"] {
        assert!(h.get(key).is_some(), "{key} missing in {h}");
    }
    let r = c.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json(r).await["status"], "starting", "readyz carries the same body");

    // All required models ready: healthy and ready.
    server.registry.update(model("ced-tiny", true, ModelState::Ready, None));
    server.registry.update(model("beatnet", false, ModelState::Ready, None));
    server.registry.finish_first_pass();
    let h = json(c.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["ready"], true);
    assert_eq!(h["model_loaded"], true);
    assert_eq!(c.get(server.url("/readyz")).send().await.unwrap().status(), 200);

    // An optional model failing: degraded (with its reason) but still ready.
    server.registry.update(model("beatnet", false, ModelState::Failed, Some("missing file /m/beatnet-1.onnx")));
    let h = json(c.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["ready"], true);
    assert_eq!(h["models"]["beatnet"]["reason"], "missing file /m/beatnet-1.onnx");
    assert!(h["reasons"][0].as_str().unwrap().contains("/m/beatnet-1.onnx"));
    assert_eq!(c.get(server.url("/readyz")).send().await.unwrap().status(), 200);

    // A required model failing: not ready.
    server.registry.update(model("ced-tiny", true, ModelState::Failed, Some("bad graph")));
    assert_eq!(c.get(server.url("/readyz")).send().await.unwrap().status(), 503);
    let info = json(c.get(server.url("/")).send().await.unwrap()).await;
    assert_eq!(info["name"], "timbre");
    assert_eq!(info["status"], "degraded");
    assert_eq!(info["capabilities"][0]["name"], "tagging");
    assert_eq!(info["links"]["docs"], "/docs");

    let r = c.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["status"], "ok");
    assert_eq!(json(c.get(server.url("/ping")).send().await.unwrap()).await["message"], "pong");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn skip_model_loading_is_degraded_with_the_reason() {
    let server = start(Config { skip_model_loading: true, ..base_config() }).await;
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("ced-tiny");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("model.toml"), "name='ced-tiny'\nfamily='ced'\ncapability='tagging'\n").unwrap();
    let plan = server.registry.discover(dir.path());
    server.registry.skip_all(&plan);
    let h = json(client().get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["ready"], false);
    assert_eq!(h["models"]["ced-tiny"]["state"], "skipped");
    assert_eq!(h["reasons"][0], "model loading skipped by configuration");
    assert_eq!(client().get(server.url("/readyz")).send().await.unwrap().status(), 503);
    server.stop().await.unwrap();
}

fn keyed() -> Config {
    Config { service_token: Some(Secret::new("tok-A")), api_keys: vec![Secret::new("tok-B")], ..base_config() }
}

#[tokio::test]
async fn api_keys_in_every_form() {
    let server = start(keyed()).await;
    let c = client();
    let url = server.url("/v1/models");

    let v = assert_envelope(c.get(&url).send().await.unwrap(), 401, "missing_api_key").await;
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_envelope(c.get(&url).bearer_auth("tok-C").send().await.unwrap(), 401, "invalid_api_key").await;
    assert_envelope(c.get(&url).header("x-api-key", "tok-").send().await.unwrap(), 401, "invalid_api_key").await;

    assert_eq!(c.get(&url).bearer_auth("tok-A").send().await.unwrap().status(), 200, "Bearer, SERVICE_TOKEN");
    assert_eq!(
        c.get(&url).header("x-api-key", "tok-B").send().await.unwrap().status(),
        200,
        "X-API-Key, TIMBRE_API_KEYS"
    );
    assert_eq!(c.get(server.url("/v1/models?api_key=tok-A")).send().await.unwrap().status(), 200, "query");
    let body = json(c.get(&url).bearer_auth("tok-A").send().await.unwrap()).await;
    assert_eq!(body["object"], "list");

    for public in ["/", "/health", "/healthz", "/readyz", "/ping", "/openapi.json", "/docs/", "/metrics"] {
        let status = c.get(server.url(public)).send().await.unwrap().status().as_u16();
        assert_ne!(status, 401, "{public} must be public");
    }
    server.stop().await.unwrap();

    let server = start(Config { metrics_auth: true, ..keyed() }).await;
    assert_eq!(c.get(server.url("/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(server.url("/metrics")).bearer_auth("tok-B").send().await.unwrap().status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let server = start(Config { rate_limit_per_minute: 3, ..keyed() }).await;
    let c = client();
    let url = server.url("/v1/models");
    for expected_remaining in ["2", "1", "0"] {
        let r = c.get(&url).bearer_auth("tok-A").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(r.headers()["x-ratelimit-remaining"], expected_remaining);
        assert!(r.headers()["x-ratelimit-reset"].to_str().unwrap().parse::<u64>().unwrap() <= 60);
    }
    let r = c.get(&url).bearer_auth("tok-A").send().await.unwrap();
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "one slot frees every 20 s: {retry}");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_envelope(r, 429, "rate_limit_exceeded").await;
    // Another key has its own budget; health is never rate limited.
    assert_eq!(c.get(&url).bearer_auth("tok-B").send().await.unwrap().status(), 200);
    for _ in 0..5 {
        assert_eq!(c.get(server.url("/health")).send().await.unwrap().status(), 200);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_get_413_declared_or_streamed() {
    let server = start_with(Config { max_upload_mb: 1, ..base_config() }, test_routes()).await;
    let c = client();
    let big = vec![7u8; 2 * 1024 * 1024];
    let v = assert_envelope(
        c.post(server.url("/v1/test/echo")).body(big.clone()).send().await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("TIMBRE_MAX_UPLOAD_MB"));
    // Chunked (no Content-Length): the extractor's limit trips, answered in the same envelope.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    assert_envelope(c.post(server.url("/v1/test/echo")).body(body).send().await.unwrap(), 413, "payload_too_large")
        .await;
    // Under the limit passes, and the server kept serving.
    let r = c.post(server.url("/v1/test/echo")).body(vec![1u8; 1000]).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "1000");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn slow_requests_get_504() {
    let server = start_with(Config { processing_timeout: 0.3, ..base_config() }, test_routes()).await;
    let c = client();
    let started = Instant::now();
    let v =
        assert_envelope(c.get(server.url("/v1/test/slow?ms=3000")).send().await.unwrap(), 504, "processing_timeout")
            .await;
    assert!(started.elapsed() < Duration::from_secs(2), "answered at the timeout, not after the work");
    assert!(v["error"]["message"].as_str().unwrap().contains("PROCESSING_TIMEOUT"));
    assert_eq!(c.get(server.url("/v1/test/slow?ms=10")).send().await.unwrap().status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn inflight_cap_answers_503_with_retry_after() {
    let server = start_with(Config { max_inflight: 1, ..base_config() }, test_routes()).await;
    let c = client();
    let slow = tokio::spawn({
        let c = c.clone();
        let url = server.url("/v1/test/slow?ms=800");
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c.get(server.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert_envelope(r, 503, "overloaded").await;
    assert_eq!(c.get(server.url("/health")).send().await.unwrap().status(), 200, "health is outside the cap");
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(c.get(server.url("/v1/models")).send().await.unwrap().status(), 200, "slot released");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_envelope() {
    let server = start(base_config()).await;
    let c = client();
    let v = assert_envelope(c.get(server.url("/v1/nope")).send().await.unwrap(), 404, "not_found").await;
    assert!(v["error"]["message"].as_str().unwrap().contains("/v1/nope"));
    assert_envelope(c.post(server.url("/health")).send().await.unwrap(), 405, "method_not_allowed").await;
    assert_envelope(c.delete(server.url("/v1/models")).send().await.unwrap(), 405, "method_not_allowed").await;
    let v = assert_envelope(c.get(server.url("/v1/models/whisper-9")).send().await.unwrap(), 404, "not_found").await;
    assert_eq!(v["error"]["param"], "id");
    // Plain GET on a WebSocket route: the upgrade rejection becomes an envelope too.
    let r = c.get(server.url("/v1/ws/ping")).send().await.unwrap();
    assert!(r.status().is_client_error());
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn request_ids_are_propagated_or_generated() {
    let server = start(base_config()).await;
    let c = client();
    let r = c.get(server.url("/health")).header("x-request-id", "req-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-123");
    let r = c.get(server.url("/v1/nope")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "generated UUID: {id}");
    assert!(r.headers().contains_key("x-total-time"));
    let r2 = c.get(server.url("/v1/nope")).send().await.unwrap();
    assert_ne!(r2.headers()["x-request-id"].to_str().unwrap(), id);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let server = start(Config { cors_origins: vec!["https://app.example".into()], ..base_config() }).await;
    let c = client();
    let preflight = |origin: &'static str| {
        c.request(reqwest::Method::OPTIONS, server.url("/v1/models"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight("https://app.example").await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    let r = preflight("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_and_openapi_describe_the_service() {
    let server = start(base_config()).await;
    server.registry.update(model("ced-tiny", true, ModelState::Ready, None));
    let c = client();
    c.get(server.url("/v1/models")).send().await.unwrap();
    c.delete(server.url("/v1/models")).send().await.unwrap();
    c.get(server.url("/v1/no-such-route")).send().await.unwrap();
    let text = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"timbre_http_requests_total{route="/v1/models",method="GET",status="200"}"#), "{text}");
    // Rejections are counted too; an unknown path gets one shared label, not its raw path.
    assert!(text.contains(r#"method="DELETE",status="405"}"#), "{text}");
    assert!(!text.contains("no-such-route"), "{text}");
    assert!(text.contains(r#"timbre_http_requests_total{route="unmatched",method="GET",status="404"}"#), "{text}");
    assert!(text.contains("timbre_http_request_duration_seconds_bucket"), "histogram: {text}");
    assert!(text.contains(r#"timbre_model_state{model="ced-tiny",state="ready"} 1"#), "{text}");
    assert!(text.contains(r#"timbre_model_state{model="ced-tiny",state="failed"} 0"#), "{text}");
    assert!(text.contains("timbre_build_info"), "{text}");
    assert!(text.contains("timbre_inflight_requests"), "{text}");

    let spec = json(c.get(server.url("/openapi.json")).send().await.unwrap()).await;
    for path in [
        "/",
        "/health",
        "/healthz",
        "/readyz",
        "/ping",
        "/metrics",
        "/v1/models",
        "/v1/models/{id}",
        "/v1/ws/ping",
        "/v1/streams/{model}",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
    assert!(spec["components"]["schemas"].get("ErrorEnvelope").is_some());
    assert!(spec["components"]["securitySchemes"].get("api_key").is_some());
    let docs = c.get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"), "Swagger UI page");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn websocket_sessions_are_capped_and_closed_1001_on_shutdown() {
    let mut server = start(Config { max_concurrent_sessions: 1, ..keyed() }).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/v1/ws/ping?api_key=tok-A")).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    ws.send(Message::Text("marco".into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().to_text().unwrap(), "marco");

    // The second session is refused with 503 before the upgrade.
    let err = tokio_tungstenite::connect_async(server.ws_url("/v1/ws/ping?api_key=tok-A")).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status().as_u16(), 503);
            assert!(resp.headers().contains_key("retry-after"));
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    // Without a key the upgrade is refused with 401.
    match tokio_tungstenite::connect_async(server.ws_url("/v1/ws/ping")).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status().as_u16(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }

    server.trigger_shutdown();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    match msg {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    server.task.take().unwrap().await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut server = start_with(Config { shutdown_grace: 5.0, ..base_config() }, test_routes()).await;
    let c = client();
    let inflight = tokio::spawn({
        let c = c.clone();
        let url = server.url("/v1/test/slow?ms=700");
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.trigger_shutdown();
    let (status, body) = inflight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "done"), "the in-flight request completes");
    let addr = server.addr;
    server.task.take().unwrap().await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn shutdown_grace_bounds_the_wait() {
    let mut server = start_with(Config { shutdown_grace: 0.3, ..base_config() }, test_routes()).await;
    let c = client();
    let stuck = tokio::spawn({
        let url = server.url("/v1/test/slow?ms=10000");
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    server.trigger_shutdown();
    server.task.take().unwrap().await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "gave up after the grace period: {:?}", started.elapsed());
    stuck.abort();
}

/// Two replicas sharing one Redis see one budget per key.
#[tokio::test]
async fn redis_rate_limit_is_shared_by_replicas() {
    use timbre_server::rate_limit::{RateLimiter, RedisLimiter};
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("timbre-test:{}:", uuid_like());
    let config = Config { rate_limit_per_minute: 3, ..keyed() };
    let connect = || async {
        let limiter = RedisLimiter::connect(&url, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}: is Redis running at {url}? (.ci/run starts it)"));
        RateLimiter::Redis(limiter.with_prefix(prefix.clone()))
    };
    let a = start_with_limiter(config.clone(), connect().await).await;
    let b = start_with_limiter(config, connect().await).await;
    let c = client();
    let get = |s: &TestServer| c.get(s.url("/v1/models")).bearer_auth("tok-A").send();
    let r = get(&a).await.unwrap();
    assert_eq!(r.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(get(&b).await.unwrap().headers()["x-ratelimit-remaining"], "1", "b sees a's request");
    assert_eq!(get(&a).await.unwrap().headers()["x-ratelimit-remaining"], "0");
    let r = get(&b).await.unwrap();
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_envelope(r, 429, "rate_limit_exceeded").await;
    // Another key has its own budget across both replicas.
    assert_eq!(c.get(a.url("/v1/models")).bearer_auth("tok-B").send().await.unwrap().status(), 200);
    a.stop().await.unwrap();
    b.stop().await.unwrap();

    let err = RedisLimiter::connect("redis://127.0.0.1:1", 3).await.err().unwrap();
    assert!(err.contains("Redis"), "{err}");
}

fn uuid_like() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}
