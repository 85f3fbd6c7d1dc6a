//! Which engine loads which model family.

use std::sync::Arc;

use crate::ced::CedTagger;
use crate::manifest::Manifest;
use crate::music::beatnet::BeatNet;
use crate::registry::{Engine, Loader};
use crate::state::ModelState;
use crate::stream::StreamClassifier;
use crate::tagging::Tagger;
use crate::vad::SileroVad;
use crate::warmed::WarmedOnnx;
use crate::whisper::ct2;

/// Engine settings taken from the process configuration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Intra-op threads per session; 0 = one per core.
    pub threads: usize,
}

/// Dispatches on `family`. A family with no engine in this build fails with that reason rather
/// than pretending to be ready.
pub struct FamilyLoader {
    settings: Settings,
}

impl Loader for FamilyLoader {
    fn load(&self, manifest: &Manifest, progress: &dyn Fn(ModelState)) -> Result<Engine, String> {
        let threads = self.settings.threads;
        match manifest.family.as_str() {
            // The tagging service wraps the model actor; capabilities ask the registry for it.
            "ced" => {
                Ok(Arc::new(Tagger::new(&manifest.name, Arc::new(CedTagger::load(manifest, threads, 1, progress)?))))
            }
            "vad" => Ok(Arc::new(SileroVad::load(manifest, 1, progress)?)),
            "piper" | "kokoro" => Ok(Arc::new(WarmedOnnx::load(manifest, threads, progress)?)),
            "beatnet" => Ok(Arc::new(BeatNet::load(manifest, progress)?)),
            "whisper" => Ok(Arc::new(ct2::load_dir(&manifest.dir)?)),
            // Worker threads, not intra-op threads: many small concurrent inferences.
            "stream-classifier" => Ok(Arc::new(StreamClassifier::load(manifest, threads, progress)?)),
            other => Err(format!("no engine for model family `{other}` in this build")),
        }
    }
}

pub fn default_loader(settings: &Settings) -> Arc<dyn Loader> {
    Arc::new(FamilyLoader { settings: settings.clone() })
}
