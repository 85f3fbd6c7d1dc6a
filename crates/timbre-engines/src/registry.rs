//! The model registry: which models exist, their load state, and the loaded engines.
//!
//! Loading happens in the background on blocking threads with bounded parallelism; the server
//! listens before any model is touched and reads the state through [`Registry::subscribe`].
//! A model that cannot load ends `failed` with a reason — there is no fallback that invents
//! output.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{Semaphore, watch};

use crate::manifest::{self, Manifest};
use crate::state::{ModelState, ModelStatus, SKIPPED_REASON, Snapshot};

/// A loaded engine, stored type-erased; capabilities downcast to the engine type they expect.
pub type Engine = Arc<dyn Any + Send + Sync>;

/// Turns a manifest into a running engine. Implementations run on a blocking thread and may
/// report `Warming` through `progress` before returning.
pub trait Loader: Send + Sync + 'static {
    fn load(&self, manifest: &Manifest, progress: &dyn Fn(ModelState)) -> Result<Engine, String>;
}

pub struct Registry {
    tx: watch::Sender<Snapshot>,
    engines: Mutex<BTreeMap<String, Engine>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        let (tx, _rx) = watch::channel(Snapshot::default());
        Arc::new(Self { tx, engines: Mutex::new(BTreeMap::new()) })
    }

    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    /// Change one model's status (inserting it if new) and publish.
    pub fn update(&self, status: ModelStatus) {
        self.tx.send_modify(|s| {
            s.models.insert(status.name.clone(), status);
        });
    }

    pub fn set_state(&self, name: &str, state: ModelState, reason: Option<String>) {
        self.tx.send_modify(|s| {
            if let Some(m) = s.models.get_mut(name) {
                m.state = state;
                m.reason = reason;
            }
        });
    }

    /// Publish a model's download progress (a fraction in `0.0..=1.0`, or `None` when unknown).
    pub fn set_progress(&self, name: &str, progress: Option<f32>) {
        self.tx.send_modify(|s| {
            if let Some(m) = s.models.get_mut(name) {
                m.progress = progress;
            }
        });
    }

    pub fn add_problem(&self, problem: String) {
        self.tx.send_modify(|s| s.problems.push(problem));
    }

    /// Report (or with `None`, clear) a problem with a part of the service outside the models.
    pub fn set_component_problem(&self, component: &str, problem: Option<String>) {
        self.tx.send_if_modified(|s| match problem {
            Some(p) => s.components.insert(component.to_string(), p.clone()).as_ref() != Some(&p),
            None => s.components.remove(component).is_some(),
        });
    }

    pub fn finish_first_pass(&self) {
        self.tx.send_modify(|s| s.first_pass_done = true);
    }

    pub fn engine<T: Any + Send + Sync>(&self, name: &str) -> Option<Arc<T>> {
        let engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        engines.get(name).cloned().and_then(|e| e.downcast::<T>().ok())
    }

    pub fn insert_engine(&self, name: &str, engine: Engine) {
        self.engines.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), engine);
    }

    /// Scan `models_dir` and register every manifest as `loading` (or `failed` if its manifest is
    /// unreadable). Returns the manifests to load.
    pub fn discover(&self, models_dir: &Path) -> Vec<Manifest> {
        self.discover_beside(models_dir, 0)
    }

    /// Like [`Registry::discover`], when `other_sources` models come from elsewhere (`[[models]]`
    /// entries): an empty or missing models dir is then normal, not a problem to report.
    pub fn discover_beside(&self, models_dir: &Path, other_sources: usize) -> Vec<Manifest> {
        let found = match manifest::discover(models_dir) {
            Ok(found) => found,
            Err(_) if other_sources > 0 => return Vec::new(),
            Err(e) => {
                self.add_problem(format!(
                    "models directory {} is not readable ({e}); run scripts/fetch-models or set TIMBRE_MODELS_DIR",
                    models_dir.display()
                ));
                return Vec::new();
            }
        };
        if found.is_empty() && other_sources == 0 {
            self.add_problem(format!("no models found in {}; run scripts/fetch-models", models_dir.display()));
        }
        let mut plan = Vec::new();
        for (dir_name, parsed) in found {
            match parsed {
                Ok(m) => {
                    self.update(ModelStatus::new(&m.name, &m.family, &m.capability, m.required));
                    plan.push(m);
                }
                Err(e) => {
                    let mut status = ModelStatus::new(&dir_name, "unknown", "unknown", true);
                    status.state = ModelState::Failed;
                    status.reason = Some(e.to_string());
                    self.update(status);
                }
            }
        }
        plan
    }

    /// Register every manifest as `skipped` (SKIP_MODEL_LOADING) and end the first pass.
    pub fn skip_all(&self, plan: &[Manifest]) {
        for m in plan {
            let mut status = ModelStatus::new(&m.name, &m.family, &m.capability, m.required);
            status.state = ModelState::Skipped;
            status.reason = Some(SKIPPED_REASON.into());
            self.update(status);
        }
        self.tx.send_modify(|s| s.skipped_by_config = true);
        self.finish_first_pass();
    }

    /// Load every planned model, at most `parallelism` at a time, then end the first pass.
    pub async fn load_all(self: Arc<Self>, plan: Vec<Manifest>, loader: Arc<dyn Loader>, parallelism: usize) {
        let permits = Arc::new(Semaphore::new(parallelism.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for manifest in plan {
            let registry = Arc::clone(&self);
            let loader = Arc::clone(&loader);
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let name = manifest.name.clone();
                let worker = Arc::clone(&registry);
                let joined = tokio::task::spawn_blocking(move || worker.load_one(&manifest, loader.as_ref())).await;
                if let Err(e) = joined {
                    registry.set_state(&name, ModelState::Failed, Some(format!("loader crashed: {e}")));
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        self.finish_first_pass();
    }

    fn load_one(&self, manifest: &Manifest, loader: &dyn Loader) {
        let name = manifest.name.as_str();
        if let Err(reason) = check_files(manifest) {
            // A manifest whose files are gone is a broken install, not a model that was never
            // fetched: `failed`, with the path, so the operator knows what to restore.
            tracing::error!(model = name, %reason, "model files missing");
            self.set_state(name, ModelState::Failed, Some(reason));
            return;
        }
        self.set_state(name, ModelState::Loading, None);
        let started = Instant::now();
        let rss_before = resident_mb();
        let progress = |state: ModelState| self.set_state(name, state, None);
        match loader.load(manifest, &progress) {
            Ok(engine) => {
                self.insert_engine(name, engine);
                let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let memory_mb = match (rss_before, resident_mb()) {
                    (Some(a), Some(b)) => Some(((b - a).max(0.0) * 10.0).round() / 10.0),
                    _ => None,
                };
                self.tx.send_modify(|s| {
                    if let Some(m) = s.models.get_mut(name) {
                        m.state = ModelState::Ready;
                        m.reason = None;
                        m.load_ms = Some(load_ms);
                        m.memory_mb = memory_mb;
                    }
                });
                tracing::info!(model = name, load_ms, "model ready");
            }
            Err(reason) => {
                tracing::error!(model = name, %reason, "model failed to load");
                self.set_state(name, ModelState::Failed, Some(reason));
            }
        }
    }
}

/// Every file the manifest lists exists with the recorded size. Full checksums are `timbre
/// models verify`'s job: hashing hundreds of MB on every start would delay readiness.
pub fn check_files(manifest: &Manifest) -> Result<(), String> {
    for file in &manifest.files {
        let path = manifest.path_of(file);
        let meta = std::fs::metadata(&path).map_err(|e| format!("missing file {}: {e}", path.display()))?;
        if let Some(expected) = file.bytes
            && meta.len() != expected
        {
            return Err(format!(
                "file {} has {} bytes, manifest says {expected} (truncated or replaced?)",
                path.display(),
                meta.len()
            ));
        }
    }
    Ok(())
}

/// Resident set size of this process in MiB (Linux; `None` elsewhere).
pub fn resident_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::ServiceStatus;

    struct Echo;
    impl Loader for Echo {
        fn load(&self, m: &Manifest, progress: &dyn Fn(ModelState)) -> Result<Engine, String> {
            progress(ModelState::Warming);
            if m.family == "broken" {
                Err("cannot build session: bad graph".into())
            } else {
                Ok(Arc::new(m.name.clone()))
            }
        }
    }

    fn write_model(root: &Path, name: &str, family: &str, required: bool, file: Option<&[u8]>) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut toml = format!("name='{name}'\nfamily='{family}'\ncapability='test'\nrequired={required}\n");
        if let Some(bytes) = file {
            toml.push_str(&format!("[[files]]\npath='m.onnx'\nrole='onnx'\nbytes={}\n", bytes.len()));
            std::fs::write(dir.join("m.onnx"), bytes).unwrap();
        } else {
            toml.push_str("[[files]]\npath='gone.onnx'\n");
        }
        std::fs::write(dir.join("model.toml"), toml).unwrap();
    }

    #[tokio::test]
    async fn loads_reports_failures_and_keeps_engines() {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), "good", "ok", true, Some(b"abc"));
        write_model(dir.path(), "broken", "broken", false, Some(b"abc"));
        write_model(dir.path(), "missing", "ok", false, None);
        let registry = Registry::new();
        let plan = registry.discover(dir.path());
        assert_eq!(registry.snapshot().status(), ServiceStatus::Starting);
        Arc::clone(&registry).load_all(plan, Arc::new(Echo), 2).await;

        let snap = registry.snapshot();
        assert!(snap.first_pass_done);
        assert_eq!(snap.models["good"].state, ModelState::Ready);
        assert!(snap.models["good"].load_ms.is_some());
        assert_eq!(snap.models["broken"].state, ModelState::Failed);
        assert_eq!(snap.models["broken"].reason.as_deref(), Some("cannot build session: bad graph"));
        assert_eq!(snap.models["missing"].state, ModelState::Failed);
        let missing_path = dir.path().join("missing").join("gone.onnx");
        assert!(snap.models["missing"].reason.as_deref().unwrap().contains(&missing_path.display().to_string()));
        assert_eq!(snap.status(), ServiceStatus::Degraded);
        assert!(snap.ready(), "only optional models failed");
        assert_eq!(registry.engine::<String>("good").as_deref().map(String::as_str), Some("good"));
        assert!(registry.engine::<u32>("good").is_none(), "wrong type is None, not a panic");
    }

    #[test]
    fn truncated_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), "t", "ok", true, Some(b"abc"));
        std::fs::write(dir.path().join("t/m.onnx"), b"a").unwrap();
        let m = Manifest::from_file(&dir.path().join("t/model.toml")).unwrap();
        assert!(check_files(&m).unwrap_err().contains("has 1 bytes, manifest says 3"));
    }

    #[test]
    fn empty_or_missing_dir_is_a_problem() {
        let registry = Registry::new();
        assert!(registry.discover(Path::new("/nonexistent/models")).is_empty());
        registry.finish_first_pass();
        let snap = registry.snapshot();
        assert_eq!(snap.status(), ServiceStatus::Degraded);
        assert!(snap.reasons()[0].contains("/nonexistent/models"));
    }
}
