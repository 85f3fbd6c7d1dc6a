//! Which engine loads which model family.

use std::sync::Arc;

use crate::manifest::Manifest;
use crate::registry::{Engine, Loader};
use crate::state::ModelState;

/// Engine settings taken from the process configuration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Intra-op threads per session; 0 = one per core.
    pub threads: usize,
}

/// Dispatches on `family`. A family with no engine in this build fails with that reason rather
/// than pretending to be ready.
pub struct FamilyLoader {
    #[allow(dead_code)]
    settings: Settings,
}

impl Loader for FamilyLoader {
    fn load(&self, manifest: &Manifest, _progress: &dyn Fn(ModelState)) -> Result<Engine, String> {
        Err(format!(
            "no engine for model family `{}` in this build",
            manifest.family
        ))
    }
}

pub fn default_loader(settings: &Settings) -> Arc<dyn Loader> {
    Arc::new(FamilyLoader {
        settings: settings.clone(),
    })
}
