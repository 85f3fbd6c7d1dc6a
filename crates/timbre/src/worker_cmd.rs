//! `timbre worker`: job workers without HTTP. Loads the models its job kinds need, connects to
//! the database and blob store, claims jobs until SIGTERM/SIGINT, then drains within
//! `TIMBRE_SHUTDOWN_GRACE` (finish, or release to the queue).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use timbre_engines::Registry;
use timbre_jobs::{Queue, Worker};
use timbre_server::{jobs, storage, telemetry};

use crate::cli::{WorkerArgs, fail};
use crate::serve_cmd::{async_runtime, shutdown_signal, start_models};

pub fn run(args: WorkerArgs) -> ExitCode {
    let loaded = match args.load() {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let config = loaded.config;
    if config.workers == 0 {
        return fail(&"`timbre worker` needs a concurrency of at least 1 (--concurrency or TIMBRE_WORKERS)");
    }
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
    match runtime.block_on(work(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            fail(&e)
        }
    }
}

async fn work(config: timbre_server::Config) -> Result<(), String> {
    let mut shutdown = Box::pin(shutdown_signal()?);
    let registry = Registry::new();
    // Unknown kinds fail the start, before anything is loaded or connected.
    let store_handle = storage::StoreHandle::default();
    let handlers = jobs::handlers(&registry, &store_handle).only(&config.job_kinds)?;
    start_models(&config, Arc::clone(&registry));
    let store = store_handle.connect_forever(storage::settings(&config), Arc::clone(&registry));
    let store = tokio::select! {
        store = store => store,
        () = &mut shutdown => {
            tracing::info!("stopped before storage connected");
            return Ok(());
        }
    };
    let queue = Queue::open(store.db.clone(), jobs::queue_settings(&config)).await.map_err(|e| e.to_string())?;
    let worker = Worker::start(queue, handlers, Arc::clone(&store.blobs), jobs::worker_settings(&config, &registry));
    shutdown.await;
    let grace = Duration::from_secs_f64(config.shutdown_grace);
    tracing::info!(grace_s = config.shutdown_grace, "shutdown requested: draining jobs");
    worker.shutdown(grace).await;
    store.db.close().await;
    tracing::info!("stopped");
    Ok(())
}
