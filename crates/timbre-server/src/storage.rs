//! The blob store and database, connected in the background after the server listens: a
//! database that is down at start makes health `degraded` with the reason while the connection
//! is retried with backoff, instead of a crash loop on the platform.

use std::sync::Arc;
use std::time::Duration;

use timbre_engines::Registry;
use timbre_store::{S3Settings, Store, StoreSettings};
use tokio::sync::OnceCell;

use crate::config::Config;
use crate::error::ApiError;

/// Where storage comes from: the seeds' variables (`DATABASE_URL`, `S3_*`) or the data dir.
pub fn settings(config: &Config) -> StoreSettings {
    let mut s = StoreSettings::new(&config.data_dir);
    s.database_url = config.database_url.as_ref().map(|u| u.expose().to_string());
    s.s3 = config.s3_bucket_name.as_ref().map(|bucket| S3Settings {
        bucket: bucket.clone(),
        region: config.s3_region.clone(),
        endpoint: config.s3_endpoint_url.clone(),
        access_key: config.s3_access_key_id.as_ref().map(|k| k.expose().to_string()),
        secret_key: config.s3_secret_access_key.as_ref().map(|k| k.expose().to_string()),
        allow_http: config.s3_endpoint_url.as_deref().is_some_and(|e| e.starts_with("http://")),
    });
    s
}

/// The store once connected; handlers that need it answer 503 until then.
#[derive(Clone, Default)]
pub struct StoreHandle {
    cell: Arc<OnceCell<Arc<Store>>>,
}

impl StoreHandle {
    pub fn get(&self) -> Result<Arc<Store>, ApiError> {
        self.cell.get().cloned().ok_or_else(|| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "storage_unavailable",
                "the database is not connected yet; see /health",
            )
            .with_retry_after(Duration::from_secs(5))
        })
    }

    pub fn set(&self, store: Arc<Store>) {
        let _ = self.cell.set(store);
    }

    /// Connect until it works: each round tries `connect_attempts` times with backoff, then the
    /// failure is reported on health and the next round starts after a capped pause. Returns
    /// the store once connected (the job queue opens on it next).
    pub async fn connect_forever(self, settings: StoreSettings, registry: Arc<Registry>) -> Arc<Store> {
        let mut pause = Duration::from_secs(2);
        registry.set_component_problem("storage", Some("connecting".into()));
        loop {
            match Store::open(&settings).await {
                Ok(store) => {
                    tracing::info!(database = %store.db.target(), blobs = ?store.blobs, "storage ready");
                    registry.set_component_problem("storage", None);
                    let store = Arc::new(store);
                    self.set(Arc::clone(&store));
                    return store;
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in_s = pause.as_secs(), "storage unavailable");
                    registry.set_component_problem("storage", Some(format!("{e}; retrying")));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}
