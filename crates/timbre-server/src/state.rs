//! What every handler can reach. Cloning it is one reference-count increment: axum clones the
//! state for every extractor and every middleware of every request, and a struct of a dozen
//! `Arc`s and watch receivers made those clones and drops a fifth of `/health`'s CPU time.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use timbre_engines::{Registry, Snapshot};
use tokio::sync::{Semaphore, watch};

use crate::auth::ApiKeys;
use crate::config::Config;
use crate::jobs::JobsHandle;
use crate::metrics;
use crate::rate_limit::{LocalLimiter, RateLimiter};
use crate::routes::health::HealthCache;
use crate::sessions::Sessions;
use crate::storage::StoreHandle;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`]; handlers reach them through `Deref` (`state.config`).
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub models: watch::Receiver<Snapshot>,
    pub started: Instant,
    pub api_keys: Arc<ApiKeys>,
    pub rate_limit: Option<Arc<RateLimiter>>,
    pub inflight: Arc<Semaphore>,
    pub sessions: Sessions,
    pub metrics: PrometheusHandle,
    pub store: StoreHandle,
    /// The job queue (once storage is connected) and this process's workers.
    pub jobs: JobsHandle,
    /// `/health`'s body, reserialized only when the registry's snapshot changes.
    pub health_cache: Arc<HealthCache>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl AppState {
    pub fn new(config: Config, registry: Arc<Registry>) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        Self(Arc::new(Shared {
            api_keys: Arc::new(ApiKeys::new(&config.all_api_keys())),
            rate_limit: LocalLimiter::new(config.rate_limit_per_minute).map(|l| Arc::new(RateLimiter::Local(l))),
            inflight: Arc::new(Semaphore::new(config.max_inflight)),
            sessions: Sessions::new(config.max_concurrent_sessions, shutdown_rx),
            models: registry.subscribe(),
            health_cache: Arc::new(HealthCache::new(registry.subscribe())),
            registry,
            started: Instant::now(),
            metrics: metrics::handle(),
            store: StoreHandle::default(),
            jobs: JobsHandle::default(),
            shutdown: Arc::new(shutdown),
            config: Arc::new(config),
        }))
    }

    /// Replace the limiter (the Redis-backed one is connected asynchronously by the caller).
    pub fn with_rate_limiter(mut self, limiter: RateLimiter) -> Self {
        // Called before the state is shared; if it ever is, the other holders keep the old one.
        Arc::make_mut(&mut self.0).rate_limit = Some(Arc::new(limiter));
        self
    }

    pub fn snapshot(&self) -> Snapshot {
        self.models.borrow().clone()
    }

    /// Tell long-lived sessions to close (code 1001). Idempotent.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
