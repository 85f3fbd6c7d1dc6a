//! Which voices a TTS model offers, read from its files without loading it: the API lists
//! voices (and answers 503 for a voice whose model failed) even when the model is not running.

use std::sync::Arc;

use serde::Serialize;

use crate::manifest::Manifest;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VoiceInfo {
    /// The name clients pass as `voice`.
    pub name: String,
    /// The model (directory) that speaks it.
    pub model: String,
    pub family: String,
    /// BCP 47 tag, e.g. `en-US`.
    pub language: String,
    pub sample_rate: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Speaker names of a multi-speaker Piper voice (pass one as `speaker`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<String>,
}

fn bcp47(code: &str) -> String {
    code.replace('_', "-")
}

/// The voices of a `piper` or `kokoro` manifest.
pub fn voices_of(manifest: &Manifest) -> Result<Vec<VoiceInfo>, String> {
    match manifest.family.as_str() {
        "piper" => {
            let onnx = manifest.file_with_role("onnx").ok_or("manifest lists no `onnx` file")?;
            let config_path = manifest.file_with_role("config").unwrap_or_else(|| {
                let mut p = onnx.clone().into_os_string();
                p.push(".json");
                p.into()
            });
            let config = super::piper::PiperConfig::load(&config_path)?;
            let name = onnx
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.trim_end_matches(".onnx").to_string())
                .unwrap_or_else(|| manifest.name.clone());
            let mut speakers: Vec<(i64, String)> = config.speaker_id_map.iter().map(|(k, v)| (*v, k.clone())).collect();
            speakers.sort();
            Ok(vec![VoiceInfo {
                name,
                model: manifest.name.clone(),
                family: manifest.family.clone(),
                language: bcp47(config.language.as_deref().unwrap_or(&config.espeak_voice)),
                sample_rate: config.sample_rate,
                gender: None,
                speakers: speakers.into_iter().map(|(_, n)| n).collect(),
            }])
        }
        "kokoro" => Ok(super::kokoro::read_voices(&manifest.dir)?
            .into_iter()
            .map(|(name, v)| VoiceInfo {
                name,
                model: manifest.name.clone(),
                family: manifest.family.clone(),
                language: v.language,
                sample_rate: super::kokoro::SAMPLE_RATE,
                gender: Some(v.gender),
                speakers: Vec::new(),
            })
            .collect()),
        other => Err(format!("`{other}` is not a TTS model family")),
    }
}

/// Load a Piper voice: `workers` threads, each with its ONNX session and espeak-ng process.
pub fn load_piper(
    manifest: &Manifest,
    threads: usize,
    workers: usize,
    sentence_silence: f32,
) -> Result<super::Speaker, String> {
    use super::piper::{PiperConfig, PiperWorker};
    let voices = voices_of(manifest)?;
    let onnx = manifest.file_with_role("onnx").ok_or("manifest lists no `onnx` file")?;
    let config_path = manifest.file_with_role("config").unwrap_or_else(|| {
        let mut p = onnx.clone().into_os_string();
        p.push(".json");
        p.into()
    });
    let config = Arc::new(PiperConfig::load(&config_path)?);
    let spin = workers <= 1;
    let open = |model: &[u8]| crate::onnx::OnnxSession::open_bytes(model, &onnx, threads, spin);
    let split_pool = piper_model_split(&onnx).and_then(|(encoder, decoder)| {
        let pool: Result<Vec<_>, String> = (0..workers.max(1))
            .map(|_| PiperWorker::split(open(&encoder)?, open(&decoder)?, Arc::clone(&config)))
            .collect();
        pool.map_err(
            |e| tracing::warn!(model = %onnx.display(), error = %e, "the split model does not load; loading it whole"),
        )
        .ok()
    });
    let pool = match split_pool {
        Some(pool) => pool,
        None => {
            let mut conv2d = piper_model_2d(&onnx);
            let mut pool = Vec::new();
            for _ in 0..workers.max(1) {
                let session = match conv2d.as_deref().map(open) {
                    Some(Ok(session)) => session,
                    Some(Err(e)) => {
                        tracing::warn!(model = %onnx.display(), error = %e, "the rewritten model does not load; loading the file as it is");
                        conv2d = None;
                        crate::onnx::OnnxSession::open_with(&onnx, threads, spin)?
                    }
                    None => crate::onnx::OnnxSession::open_with(&onnx, threads, spin)?,
                };
                pool.push(PiperWorker::new(session, Arc::clone(&config))?);
            }
            pool
        }
    };
    let splits = pool.iter().all(PiperWorker::splits);
    let actor = crate::actor::Actor::spawn(&manifest.name, pool, 64)?;
    Ok(super::Speaker::piper(&manifest.name, voices, config, actor, splits, sentence_silence))
}

/// The Piper model cut at its decoder's input (see [`super::piper::latent`]) with each half's
/// 1-D convolutions as 2-D ones, or `None` when the model cannot be cut there (it then loads
/// whole).
pub fn piper_model_split(onnx: &std::path::Path) -> Option<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(onnx).ok()?;
    let split = match super::piper::latent::split_model(&bytes) {
        Ok(Some(split)) => split,
        Ok(None) => {
            tracing::debug!(model = %onnx.display(), "no clean cut at the decoder's input; the model loads whole");
            return None;
        }
        Err(e) => {
            tracing::warn!(model = %onnx.display(), error = %e, "cannot cut the model at its decoder; it loads whole");
            return None;
        }
    };
    let as_2d = |half: Vec<u8>| match crate::onnx::conv2d::conv1d_as_2d(&half) {
        Ok(r) if r.convolutions > 0 => r.model,
        _ => half,
    };
    Some((as_2d(split.head), as_2d(split.tail)))
}

/// The Piper model with its 1-D convolutions as 2-D ones (~10% faster on CPU, same audio; see
/// [`crate::onnx::conv2d`]), or `None` to load the file as it is: the rewrite is an
/// optimization, so a model it cannot handle still loads.
pub fn piper_model_2d(onnx: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(onnx).ok()?;
    match crate::onnx::conv2d::conv1d_as_2d(&bytes) {
        Ok(r) if r.convolutions > 0 => {
            tracing::debug!(model = %onnx.display(), convolutions = r.convolutions, "1-D convolutions run as 2-D");
            Some(r.model)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(model = %onnx.display(), error = %e, "cannot rewrite the model's convolutions; loading it as it is");
            None
        }
    }
}

/// Load a hibari (Kokoro) model directory: every voice whose file is present, the G2P data once
/// (shared by the workers), the OOV network per worker.
pub fn load_kokoro(
    manifest: &Manifest,
    threads: usize,
    workers: usize,
    sentence_silence: f32,
) -> Result<super::Speaker, String> {
    use super::kokoro::{KokoroWorker, Oov, g2p::G2p, read_vocab, read_voices};
    let dir = &manifest.dir;
    let entries = read_voices(dir)?;
    if entries.is_empty() {
        return Err(format!("no voice listed in {}/voices.json has its model file", dir.display()));
    }
    let british = entries.first().is_some_and(|(_, v)| v.british);
    let g2p = Arc::new(G2p::load(dir, british)?);
    let vocab = Arc::new(read_vocab(dir)?);
    let oov_file = if british { "oov_gb.onnx" } else { "oov.onnx" };
    let mut pool = Vec::new();
    let spin = workers <= 1;
    for _ in 0..workers.max(1) {
        let mut sessions = std::collections::HashMap::new();
        for (name, v) in &entries {
            sessions.insert(name.clone(), open_kokoro_voice(&dir.join(&v.file), threads, spin)?);
        }
        pool.push(KokoroWorker::new(sessions, Oov::load(&dir.join(oov_file))?, Arc::clone(&g2p), Arc::clone(&vocab)));
    }
    let actor = crate::actor::Actor::spawn(&manifest.name, pool, 64)?;
    Ok(super::Speaker::kokoro(&manifest.name, voices_of(manifest)?, actor, sentence_silence))
}

/// A hibari voice's session, on the model with its spectral output frame-major (~8% less model
/// time, the same numbers; see [`super::kokoro::layout`]); the file as it is when the edit does
/// not apply or its result does not load.
fn open_kokoro_voice(path: &std::path::Path, threads: usize, spin: bool) -> Result<crate::onnx::OnnxSession, String> {
    if let Some(model) = kokoro_model_frame_major(path) {
        match crate::onnx::OnnxSession::open_bytes(&model, path, threads, spin) {
            Ok(session) => return Ok(session),
            Err(e) => {
                tracing::warn!(model = %path.display(), error = %e, "the edited model does not load; loading the file as it is")
            }
        }
    }
    crate::onnx::OnnxSession::open_with(path, threads, spin)
}

/// The hibari model at `path` with the frame-major output, or `None` to load the file as it is.
pub fn kokoro_model_frame_major(path: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    match super::kokoro::layout::frame_major(&bytes, super::kokoro::dsp::BINS as i64) {
        Ok(Some(model)) => Some(model),
        Ok(None) => {
            tracing::debug!(model = %path.display(), "the model does not end in the expected transpose and split; loading it as it is");
            None
        }
        Err(e) => {
            tracing::warn!(model = %path.display(), error = %e, "cannot edit the model's output layout; loading it as it is");
            None
        }
    }
}
