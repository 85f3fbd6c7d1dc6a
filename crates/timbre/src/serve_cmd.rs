//! `timbre serve`: listen first, load models in the background, shut down gracefully.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use timbre_engines::Registry;
use timbre_engines::hub::{HubClient, HubSettings, ModelSource};
use timbre_server::rate_limit::{RateLimiter, RedisLimiter};
use timbre_server::{AppState, telemetry};

use crate::cli::{ServeArgs, fail};

/// The multi-threaded runtime `serve` and `worker` run on, sized by
/// [`timbre_server::config::Config::async_worker_threads`].
pub fn async_runtime(config: &timbre_server::config::Config) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.async_worker_threads())
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub fn run(args: ServeArgs) -> ExitCode {
    let loaded = match args.load() {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let config = loaded.config;
    if let Err(e) = telemetry::init(&config) {
        return fail(&e);
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match async_runtime(&config) {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            fail(&e)
        }
    }
}

async fn serve(config: timbre_server::Config) -> Result<(), String> {
    // Install the handlers before announcing `listening`: a SIGTERM that arrives right after
    // must trigger the graceful path, not the default action that kills the process.
    let shutdown = shutdown_signal()?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    if config.all_api_keys().is_empty() {
        tracing::warn!(
            "NO API KEY CONFIGURED: every endpoint is open to anyone who can reach this port. Set SERVICE_TOKEN or TIMBRE_API_KEYS."
        );
    }
    tracing::info!(
        address = %local,
        version = env!("CARGO_PKG_VERSION"),
        environment = %config.environment,
        models_dir = %config.models_dir.display(),
        "listening"
    );

    let registry = Registry::new();
    let mut state = AppState::new(config.clone(), Arc::clone(&registry));
    if let (Some(url), true) = (&config.redis_url, config.rate_limit_per_minute > 0) {
        match RedisLimiter::connect(url.expose(), config.rate_limit_per_minute).await {
            Ok(limiter) => {
                tracing::info!("rate limits shared through Redis");
                state = state.with_rate_limiter(RateLimiter::Redis(limiter));
            }
            Err(e) => {
                tracing::warn!(error = %e, "REDIS_URL is set but Redis is unusable; rate limits are per replica")
            }
        }
    }
    spawn_storage_and_jobs(&config, &state);
    start_models(&config, registry);
    serve_seed_ports(&config, &state).await?;

    // One signal stops both the HTTP server and the in-process workers, which drain side by
    // side within the same grace period.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    let grace = Duration::from_secs_f64(config.shutdown_grace);
    let drain = {
        let state = state.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            state.jobs.shutdown(grace).await;
        })
    };
    let mut stop = stop_rx;
    let http_stop = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    timbre_server::serve(listener, state, http_stop).await.map_err(|e| format!("server error: {e}"))?;
    let _ = drain.await;
    tracing::info!("stopped");
    Ok(())
}

/// Connects storage in the background (health says `storage: connecting` meanwhile), then opens
/// the job queue on it and starts the in-process workers (`workers`, 0 for none).
fn spawn_storage_and_jobs(config: &timbre_server::Config, state: &AppState) {
    let settings = timbre_server::storage::settings(config);
    let state = state.clone();
    tokio::spawn(async move {
        let store = state.store.clone().connect_forever(settings, Arc::clone(&state.registry)).await;
        if let Err(e) = timbre_server::jobs::attach(&state, &store).await {
            tracing::error!(error = %e, "job queue unavailable");
            state.registry.set_component_problem(timbre_server::jobs::COMPONENT, Some(e));
        }
    });
}

/// Signify's extra listeners: the keypoint stream at `/` (`TIMBRE_STREAM_PORT`) and `/health`
/// (`HEALTH_PORT`). Bound before the main server runs, so a port in use fails the start.
async fn serve_seed_ports(config: &timbre_server::Config, state: &AppState) -> Result<(), String> {
    let extra = [
        (config.stream_port, "stream listener", timbre_server::app::stream_app(state.clone())),
        (config.health_port, "health listener", timbre_server::app::health_app(state.clone())),
    ];
    for (port, what, router) in extra {
        let Some(port) = port else { continue };
        let addr = format!("{}:{port}", config.host);
        let listener =
            tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(address = %local, "{what}");
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = timbre_server::app::serve_extra(listener, router, state).await {
                tracing::error!(error = %e, "{what} stopped");
            }
        });
    }
    Ok(())
}

/// Discover manifests and `[[models]]` entries and load them on blocking threads; the listener
/// is already up, so health answers `starting` meanwhile instead of the port refusing
/// connections. Hub downloads happen here too, reported as `downloading` with progress.
pub fn start_models(config: &timbre_server::Config, registry: Arc<Registry>) {
    let entries = config.models.clone();
    let plan = registry.discover_beside(&config.models_dir, entries.len());
    if config.skip_model_loading {
        tracing::warn!(
            models = plan.len() + entries.len(),
            "SKIP_MODEL_LOADING is set: no model is loaded and model endpoints answer 503"
        );
        registry.skip_entries(&entries);
        registry.skip_all(&plan);
        return;
    }
    let hub = match hub_client(config) {
        Ok(hub) => hub,
        Err(e) => {
            registry.add_problem(format!("Hugging Face client: {e}"));
            None
        }
    };
    let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings {
        threads: config.threads,
        tts_workers: config.tts_workers,
        tts_sentence_silence: config.tts_sentence_silence,
        stt_workers: config.stt_workers,
    });
    let parallelism = config.model_load_parallelism;
    tokio::spawn(async move {
        let mut plan = plan;
        plan.extend(registry.prepare_entries(&entries, hub.as_ref()).await);
        registry.load_all(plan, loader, parallelism).await;
    });
}

/// A hub client when any entry needs one. Its cache lives in the data dir (a Railway volume), so
/// a restart does not download again.
pub fn hub_client(config: &timbre_server::Config) -> Result<Option<HubClient>, String> {
    if !config.models.iter().any(|e| matches!(e.source, ModelSource::Hub(_))) {
        return Ok(None);
    }
    let token = config.hugging_face_hub_token.as_ref().map(|t| t.expose().to_string());
    let mut settings = HubSettings::new(config.data_dir.join("hf-cache"), token);
    settings.endpoint.clone_from(&config.hf_endpoint);
    settings.offline = config.hf_hub_offline;
    HubClient::new(settings).map(Some).map_err(|e| e.to_string())
}

pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, String> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
