//! Health, readiness, liveness and service info.
//!
//! `/health` always answers 200 with the truth in the body: Railway and similar platforms kill
//! a container whose health check fails while a model is still loading, which is what the seeds
//! fought. `/readyz` is the strict one, for load balancers and Kubernetes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use timbre_engines::{ModelState, ServiceStatus, Snapshot};
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `starting` until every model was tried once, then `healthy` or `degraded`.
    #[schema(example = "healthy")]
    pub status: String,
    /// Every required model is ready (what `/readyz` answers).
    pub ready: bool,
    /// At least one model is ready (seed compatibility).
    pub model_loaded: bool,
    pub models: BTreeMap<String, ModelHealth>,
    /// Why the service is not healthy, one line each.
    pub reasons: Vec<String>,
    pub version: String,
    pub uptime_s: f64,
}

#[derive(Serialize, ToSchema)]
pub struct ModelHealth {
    /// absent | downloading | loading | warming | ready | failed | skipped
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f32>,
    pub required: bool,
    pub capability: String,
}

pub fn status_str(s: ServiceStatus) -> &'static str {
    match s {
        ServiceStatus::Starting => "starting",
        ServiceStatus::Healthy => "healthy",
        ServiceStatus::Degraded => "degraded",
    }
}

pub fn health_of(state: &AppState, snapshot: &Snapshot) -> Health {
    Health {
        status: status_str(snapshot.status()).to_string(),
        ready: snapshot.ready(),
        model_loaded: snapshot.any_model_ready(),
        models: snapshot
            .models
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    ModelHealth {
                        state: m.state.as_str().to_string(),
                        reason: m.reason.clone(),
                        load_ms: m.load_ms,
                        memory_mb: m.memory_mb,
                        progress: m.progress,
                        required: m.required,
                        capability: m.capability.clone(),
                    },
                )
            })
            .collect(),
        reasons: snapshot.reasons(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s: uptime_s(state),
    }
}

/// Detailed health. Always 200; read `status` and `ready`.
///
/// Load balancers poll this path more than any other, so its body is not rebuilt per request:
/// everything but `uptime_s` is serialized once per registry change (see [`HealthCache`]).
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let body = state.health_cache.body(&state);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// `/health`'s JSON up to `"uptime_s":`, rebuilt only when the registry publishes a new
/// snapshot (models change state a handful of times per process; health is polled constantly).
pub struct HealthCache {
    inner: Mutex<Cached>,
}

struct Cached {
    models: watch::Receiver<Snapshot>,
    prefix: Option<Bytes>,
}

impl HealthCache {
    pub fn new(models: watch::Receiver<Snapshot>) -> Self {
        Self { inner: Mutex::new(Cached { models, prefix: None }) }
    }

    /// The full `/health` body: the cached prefix, the uptime, the closing brace.
    pub fn body(&self, state: &AppState) -> Bytes {
        let prefix = match self.inner.lock() {
            Ok(mut cached) => cached.prefix(state),
            // A panic while rebuilding poisoned the lock: build without the cache.
            Err(_) => health_prefix(&health_of(state, &state.snapshot())),
        };
        let mut body = Vec::with_capacity(prefix.len() + 24);
        body.extend_from_slice(&prefix);
        // serde_json writes the f64 exactly as serializing `Health` would.
        if serde_json::to_writer(&mut body, &uptime_s(state)).is_err() {
            body.push(b'0');
        }
        body.push(b'}');
        Bytes::from(body)
    }
}

impl Cached {
    fn prefix(&mut self, state: &AppState) -> Bytes {
        // An error means the registry is gone: its last snapshot stays the truth.
        let changed = self.models.has_changed().unwrap_or(false);
        match &self.prefix {
            Some(prefix) if !changed => prefix.clone(),
            _ => {
                let snapshot = self.models.borrow_and_update().clone();
                let prefix = health_prefix(&health_of(state, &snapshot));
                self.prefix = Some(prefix.clone());
                prefix
            }
        }
    }
}

const UPTIME_KEY: &[u8] = b"\"uptime_s\":";

/// The serialized `Health` cut just after `"uptime_s":` (its last field, a number).
fn health_prefix(health: &Health) -> Bytes {
    let mut json = serde_json::to_vec(health).unwrap_or_default();
    match json.windows(UPTIME_KEY.len()).rposition(|w| w == UPTIME_KEY) {
        Some(at) => json.truncate(at + UPTIME_KEY.len()),
        None => {
            // Unreachable while `uptime_s` is a field; keep the body valid JSON regardless.
            json = br#"{"status":"degraded","uptime_s":"#.to_vec();
        }
    }
    Bytes::from(json)
}

fn uptime_s(state: &AppState) -> f64 {
    (state.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// Readiness: 200 when every required model is ready, else 503 with the same body.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health, description = "not ready; see `reasons`")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshot();
    let body = health_of(&state, &snapshot);
    if body.ready {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        let retry = if snapshot.models.values().any(|m| m.state.in_progress()) {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        };
        if let Ok(v) = HeaderValue::from_str(&retry.as_secs().to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

#[derive(Serialize, ToSchema)]
pub struct Alive {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: 200 whenever the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Alive)))]
pub async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Pong {
    #[schema(example = "pong")]
    pub message: &'static str,
}

/// Connectivity check.
#[utoipa::path(get, path = "/ping", tag = "health", responses((status = 200, body = Pong)))]
pub async fn ping() -> Json<Pong> {
    Json(Pong { message: "pong" })
}

#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    #[schema(example = "timbre")]
    pub name: &'static str,
    pub version: &'static str,
    pub environment: String,
    pub status: String,
    pub capabilities: Vec<Capability>,
    pub links: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct Capability {
    /// stt, vad, tts, tagging, beats, …
    pub name: String,
    /// `ready` when at least one of its models is ready, else the most advanced state of them.
    pub state: String,
    pub models: Vec<String>,
}

fn rank(s: ModelState) -> u8 {
    match s {
        ModelState::Ready => 6,
        ModelState::Warming => 5,
        ModelState::Loading => 4,
        ModelState::Downloading => 3,
        ModelState::Skipped => 2,
        ModelState::Failed => 1,
        ModelState::Absent => 0,
    }
}

pub fn capabilities(snapshot: &Snapshot) -> Vec<Capability> {
    let mut by_cap: BTreeMap<&str, (ModelState, Vec<String>)> = BTreeMap::new();
    for m in snapshot.models.values() {
        let entry = by_cap.entry(m.capability.as_str()).or_insert((ModelState::Absent, Vec::new()));
        if rank(m.state) >= rank(entry.0) {
            entry.0 = m.state;
        }
        entry.1.push(m.name.clone());
    }
    by_cap
        .into_iter()
        .map(|(name, (st, models))| Capability { name: name.to_string(), state: st.as_str().to_string(), models })
        .collect()
}

/// Service info: name, version, capabilities and where the docs are.
#[utoipa::path(get, path = "/", tag = "health", responses((status = 200, body = ServiceInfo)))]
pub async fn root(State(state): State<AppState>) -> Json<ServiceInfo> {
    let snapshot = state.snapshot();
    Json(ServiceInfo {
        name: "timbre",
        version: env!("CARGO_PKG_VERSION"),
        environment: state.config.environment.clone(),
        status: status_str(snapshot.status()).to_string(),
        capabilities: capabilities(&snapshot),
        links: BTreeMap::from([
            ("docs", "/docs"),
            ("openapi", "/openapi.json"),
            ("health", "/health"),
            ("ready", "/readyz"),
            ("metrics", "/metrics"),
            ("models", "/v1/models"),
        ]),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use timbre_engines::{ModelStatus, Registry};

    use super::*;
    use crate::Config;

    /// The cached body parses to what serializing `Health` gives, apart from the uptime.
    fn assert_matches_fresh(state: &AppState) -> serde_json::Value {
        let cached: serde_json::Value = serde_json::from_slice(&state.health_cache.body(state)).unwrap();
        let mut fresh = serde_json::to_value(health_of(state, &state.snapshot())).unwrap();
        assert!(cached["uptime_s"].as_f64().unwrap() <= fresh["uptime_s"].as_f64().unwrap());
        fresh["uptime_s"] = cached["uptime_s"].clone();
        assert_eq!(cached, fresh);
        cached
    }

    #[tokio::test]
    async fn cached_body_follows_the_registry() {
        let registry = Registry::new();
        let state = AppState::new(Config::default(), Arc::clone(&registry));
        assert_eq!(assert_matches_fresh(&state)["status"], "starting");

        let mut m = ModelStatus::new("ced-tiny", "ced", "tagging", true);
        m.state = ModelState::Failed;
        m.reason = Some("missing file".into());
        registry.update(m);
        registry.finish_first_pass();
        let v = assert_matches_fresh(&state);
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["models"]["ced-tiny"]["reason"], "missing file");

        let mut m = ModelStatus::new("ced-tiny", "ced", "tagging", true);
        m.state = ModelState::Ready;
        registry.update(m);
        let v = assert_matches_fresh(&state);
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["ready"], true);
    }
}
