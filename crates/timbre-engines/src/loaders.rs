//! Which engine loads which model family.

use std::sync::Arc;

use crate::ced::CedTagger;
use crate::manifest::Manifest;
use crate::music::beatnet::BeatNet;
use crate::registry::{Engine, Loader};
use crate::state::ModelState;
use crate::stream::StreamClassifier;
use crate::tagging::Tagger;
use crate::tts;
use crate::vad::SileroVad;
use crate::whisper::Transcriber;

/// Engine settings taken from the process configuration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Intra-op threads per session; 0 = one per core.
    pub threads: usize,
    /// Worker threads (each with its own session) per TTS voice model; 0 = 1.
    pub tts_workers: usize,
    /// Seconds of silence between synthesized sentences.
    pub tts_sentence_silence: f32,
    /// Whisper decoding workers sharing one copy of the weights; 0 = one per core.
    pub stt_workers: usize,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Intra-op threads per TTS worker. An explicit setting is used as given; by default the cores
/// are divided among the workers (at least one each). Every worker owning one thread per core
/// oversubscribes the cores as soon as requests overlap: on 2 cores with 2 workers, 2 threads
/// each gave 4 concurrent requests only 1.09x the throughput of one at a time, 1 thread each
/// 2.03x (docs/benchmarks.md, text-to-speech).
fn tts_threads(threads: usize, workers: usize, cores: usize) -> usize {
    if threads > 0 { threads } else { (cores / workers.max(1)).max(1) }
}

/// Silero VAD for Whisper's `vad_filter`, from the `silero-vad` directory beside the Whisper
/// model. Without it long inputs are decoded whole (still correct, slower on silence).
fn sibling_vad(manifest: &Manifest) -> Option<Arc<SileroVad>> {
    let path = manifest.dir.parent()?.join("silero-vad").join("model.toml");
    let vad_manifest = Manifest::from_file(&path).ok()?;
    match SileroVad::load(&vad_manifest, 1, &|_| {}) {
        Ok(vad) => Some(Arc::new(vad)),
        Err(e) => {
            tracing::warn!(model = %manifest.name, "no VAD for vad_filter ({e}); long inputs are decoded whole");
            None
        }
    }
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
                let (workers, threads) = crate::ced::pool_shape(threads, cores());
                let engine = CedTagger::load(manifest, threads, workers, progress)?;
                Ok(Arc::new(Tagger::new(&manifest.name, Arc::new(engine))))
            }
            "vad" => Ok(Arc::new(SileroVad::load(manifest, 1, progress)?)),
            "piper" | "kokoro" => {
                let s = &self.settings;
                let threads = tts_threads(threads, s.tts_workers, cores());
                let speaker = if manifest.family == "piper" {
                    tts::catalog::load_piper(manifest, threads, s.tts_workers, s.tts_sentence_silence)?
                } else {
                    tts::catalog::load_kokoro(manifest, threads, s.tts_workers, s.tts_sentence_silence)?
                };
                progress(ModelState::Warming);
                warm_up(&speaker)?;
                Ok(Arc::new(speaker))
            }
            "beatnet" => Ok(Arc::new(BeatNet::load(manifest, progress)?)),
            "whisper" => {
                let workers = if self.settings.stt_workers == 0 { cores() } else { self.settings.stt_workers };
                let threads = if threads == 0 { cores() } else { threads };
                Ok(Arc::new(Transcriber::load(manifest, workers, threads, sibling_vad(manifest), progress)?))
            }
            // Worker threads, not intra-op threads: many small concurrent inferences.
            "stream-classifier" => Ok(Arc::new(StreamClassifier::load(manifest, threads, progress)?)),
            other => Err(format!("no engine for model family `{other}` in this build")),
        }
    }
}

/// One real sentence through phonemizer, model and signal tail: `ready` means speech comes out.
fn warm_up(speaker: &tts::Speaker) -> Result<(), String> {
    let voice = speaker.default_voice().to_string();
    let audio = speaker
        .sentence_blocking(&voice, "Hello.", &tts::SpeechOptions::default())
        .map_err(|e| format!("warm-up synthesis failed: {e}"))?;
    if audio.value.is_empty() || audio.value.iter().any(|s| !s.is_finite()) {
        return Err("warm-up synthesis produced no usable audio".into());
    }
    Ok(())
}

pub fn default_loader(settings: &Settings) -> Arc<dyn Loader> {
    Arc::new(FamilyLoader { settings: settings.clone() })
}

#[cfg(test)]
mod tests {
    use super::tts_threads;

    #[test]
    fn tts_threads_share_the_cores_unless_set() {
        assert_eq!(tts_threads(0, 2, 2), 1);
        assert_eq!(tts_threads(0, 2, 8), 4);
        assert_eq!(tts_threads(0, 3, 2), 1);
        assert_eq!(tts_threads(0, 0, 4), 4);
        assert_eq!(tts_threads(2, 2, 2), 2);
    }
}
