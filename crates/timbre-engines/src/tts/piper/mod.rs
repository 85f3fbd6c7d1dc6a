//! Piper VITS voices: espeak-ng phonemes → ids → one ONNX call per sentence → float samples.
//!
//! Each worker thread owns an ONNX session and an espeak-ng process (see [`espeak`]), so a
//! sentence is phonemized and synthesized on the same thread without locks.

pub mod config;
pub mod espeak;
pub mod ids;

use ort::value::{DynValue, Tensor};

use crate::actor::Worker;
use crate::onnx::OnnxSession;
use crate::tts::text::{Clause, clauses};

pub use config::PiperConfig;

/// Per-request synthesis parameters; `None` takes the voice config's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PiperParams {
    pub noise_scale: Option<f32>,
    pub length_scale: Option<f32>,
    pub noise_w: Option<f32>,
    /// Speaking rate: the effective length scale is divided by it.
    pub speed: f32,
    pub speaker_id: Option<i64>,
    /// Scale each sentence to peak 1.0, as piper-tts does by default.
    pub normalize: bool,
}

pub enum PiperInput {
    /// A sentence of text: phonemized clause by clause.
    Text(String),
    /// Ready phoneme ids (for fidelity checks against piper-tts).
    Ids(Vec<i64>),
}

pub struct PiperRequest {
    pub input: PiperInput,
    pub params: PiperParams,
}

#[derive(Debug)]
pub struct PiperAudio {
    pub samples: Vec<f32>,
    /// The phonemes the model read (empty for `Ids` input).
    pub phonemes: String,
}

pub struct PiperWorker {
    onnx: OnnxSession,
    config: std::sync::Arc<PiperConfig>,
    espeak: Option<espeak::Espeak>,
    has_sid: bool,
}

impl PiperWorker {
    pub fn new(onnx: OnnxSession, config: std::sync::Arc<PiperConfig>) -> Result<Self, String> {
        let has_sid = onnx.inputs().iter().any(|i| i.name == "sid");
        if config.multi_speaker() && !has_sid {
            return Err(format!("config says {} speakers but the model has no `sid` input", config.num_speakers));
        }
        let espeak = Some(espeak::Espeak::spawn(&config.espeak_voice)?);
        Ok(Self { onnx, config, espeak, has_sid })
    }

    /// A sentence's phonemes: all its clauses in one espeak-ng round trip; a dead process is
    /// restarted once.
    fn phonemize(&mut self, clauses: &[Clause]) -> Result<String, String> {
        for attempt in 0..2 {
            if self.espeak.is_none() {
                self.espeak = Some(espeak::Espeak::spawn(&self.config.espeak_voice)?);
            }
            let Some(e) = self.espeak.as_mut() else { continue };
            match sentence_phonemes(e, clauses) {
                Ok(phonemes) => return Ok(phonemes),
                Err(err) => {
                    self.espeak = None;
                    if attempt == 1 {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "espeak-ng failed; restarting it");
                }
            }
        }
        Err("espeak-ng unavailable".into())
    }

    fn infer(&mut self, ids: Vec<i64>, p: &PiperParams) -> Result<Vec<f32>, String> {
        let c = &self.config;
        let speed = if p.speed > 0.0 { p.speed } else { 1.0 };
        let scales = vec![
            p.noise_scale.unwrap_or(c.noise_scale),
            p.length_scale.unwrap_or(c.length_scale) / speed,
            p.noise_w.unwrap_or(c.noise_w),
        ];
        let n = ids.len();
        let mut inputs: Vec<(String, DynValue)> = vec![
            ("input".into(), tensor_i64(vec![1, n], ids)?),
            ("input_lengths".into(), tensor_i64(vec![1], vec![n as i64])?),
            ("scales".into(), Tensor::from_array((vec![3usize], scales)).map_err(|e| e.to_string())?.into_dyn()),
        ];
        if self.has_sid {
            let sid = p.speaker_id.unwrap_or(c.default_speaker_id);
            inputs.push(("sid".into(), tensor_i64(vec![1], vec![sid])?));
        }
        let outputs = self.onnx.session.run(inputs).map_err(|e| e.to_string())?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        let mut samples = audio.to_vec();
        if p.normalize {
            normalize_peak(&mut samples);
        }
        Ok(samples)
    }
}

/// Piper's phoneme string for a sentence: each clause's IPA followed by its punctuation, and a
/// space after `,` `:` `;`.
pub fn sentence_phonemes(espeak: &mut espeak::Espeak, clauses: &[Clause]) -> Result<String, String> {
    let texts: Vec<&str> = clauses.iter().map(|c| c.text.as_str()).collect();
    let mut out = String::new();
    for (clause, ipa) in clauses.iter().zip(espeak.phonemize_all(&texts)?) {
        push_clause(&mut out, &ipa, clause.terminator);
    }
    Ok(out)
}

fn push_clause(out: &mut String, ipa: &str, terminator: Option<char>) {
    out.push_str(ipa);
    if let Some(t) = terminator {
        out.push(t);
        if matches!(t, ',' | ':' | ';') {
            out.push(' ');
        }
    }
}

fn tensor_i64(shape: Vec<usize>, v: Vec<i64>) -> Result<DynValue, String> {
    Tensor::from_array((shape, v)).map(|t| t.into_dyn()).map_err(|e| e.to_string())
}

/// piper-tts's `normalize_audio`: divide by the peak (silence stays silence), then clip.
pub fn normalize_peak(samples: &mut [f32]) {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak < 1e-8 {
        samples.iter_mut().for_each(|s| *s = 0.0);
        return;
    }
    for s in samples.iter_mut() {
        *s = (*s / peak).clamp(-1.0, 1.0);
    }
}

impl Worker for PiperWorker {
    type Request = PiperRequest;
    type Response = PiperAudio;

    fn handle(&mut self, request: PiperRequest) -> Result<PiperAudio, String> {
        let (ids, phonemes) = match request.input {
            PiperInput::Ids(ids) => (ids, String::new()),
            PiperInput::Text(sentence) => {
                let phonemes = self.phonemize(&clauses(&sentence))?;
                let (ids, missing) = ids::phonemes_to_ids(&ids::phoneme_list(&phonemes), &self.config.phoneme_id_map);
                if !missing.is_empty() {
                    tracing::debug!(?missing, "phonemes missing from the voice's id map were skipped");
                }
                (ids, phonemes)
            }
        };
        // BOS, pad, EOS and nothing else: nothing to say.
        if ids.len() <= 3 {
            return Ok(PiperAudio { samples: Vec::new(), phonemes });
        }
        let samples = self.infer(ids, &request.params)?;
        Ok(PiperAudio { samples, phonemes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_matches_piper() {
        let mut a = vec![0.25, -0.5, 0.1];
        normalize_peak(&mut a);
        assert_eq!(a, vec![0.5, -1.0, 0.2]);
        let mut quiet = vec![1e-9, -1e-9];
        normalize_peak(&mut quiet);
        assert_eq!(quiet, vec![0.0, 0.0]);
    }
}
