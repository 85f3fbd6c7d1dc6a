//! Start the real server stack on 127.0.0.1:0 and talk HTTP/WS to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use timbre_engines::Registry;
use timbre_server::{AppState, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub registry: Arc<Registry>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Signal shutdown (like SIGTERM) without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn stop(mut self) -> std::io::Result<()> {
        self.trigger_shutdown();
        self.task.take().unwrap().await.unwrap()
    }
}

pub fn base_config() -> Config {
    Config { host: "127.0.0.1".into(), port: 0, rate_limit_per_minute: 0, ..Config::default() }
}

/// Serve `config` with the production routes plus `extra` protected routes.
pub async fn start_with(config: Config, extra: Router<AppState>) -> TestServer {
    let registry = Registry::new();
    let state = AppState::new(config.clone(), Arc::clone(&registry));
    start_state(config, state, registry, extra).await
}

pub async fn start_with_limiter(config: Config, limiter: timbre_server::rate_limit::RateLimiter) -> TestServer {
    let registry = Registry::new();
    let state = AppState::new(config.clone(), Arc::clone(&registry)).with_rate_limiter(limiter);
    start_state(config, state, registry, Router::new()).await
}

async fn start_state(config: Config, state: AppState, registry: Arc<Registry>, extra: Router<AppState>) -> TestServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = timbre_server::app::api_routes(&state).merge(extra);
    let router = timbre_server::app::with_api(state.clone(), api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let grace = Duration::from_secs_f64(config.shutdown_grace);
    let task = tokio::spawn(timbre_server::app::serve_router(listener, router, state.clone(), grace, async move {
        let _ = rx.await;
    }));
    TestServer { addr, registry, state, shutdown: Some(tx), task: Some(task) }
}

pub async fn start(config: Config) -> TestServer {
    start_with(config, Router::new()).await
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.unwrap()
}

/// Assert the OpenAI-style envelope and return it.
pub async fn assert_envelope(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: serde_json::Value = resp.json().await.unwrap();
    let err = &v["error"];
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {v}");
    assert!(err["type"].is_string(), "type in {v}");
    assert!(err.as_object().unwrap().contains_key("param"), "param key in {v}");
    assert_eq!(err["code"], code, "code in {v}");
    v
}

/// Give the server a real store (SQLite + local blobs in `dir`), as `timbre serve` does.
pub async fn attach_store(server: &TestServer, dir: &std::path::Path) {
    let store = timbre_store::Store::open(&timbre_store::StoreSettings::new(dir)).await.unwrap();
    server.state.store.set(Arc::new(store));
}
