//! Piper VITS voices: espeak-ng phonemes → ids → one ONNX call per sentence → float samples.
//!
//! Each worker thread owns an ONNX session and an espeak-ng process (see [`espeak`]), so a
//! sentence is phonemized and synthesized on the same thread without locks.
//!
//! Where the model allows it (see [`latent`]), a worker holds the model cut in two — text →
//! latent, latent → audio — so a sentence someone is waiting for can be encoded once and its
//! latent decoded in slices by several workers at once.

pub mod config;
pub mod espeak;
pub mod ids;
pub mod latent;

use std::ops::Range;
use std::sync::Arc;

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
    /// Decode these frames of a latent made by a [`Stage::Latent`] request (raw samples, not
    /// normalized: the caller puts the slices together and normalizes the whole).
    Decode { latent: Arc<latent::Latent>, frames: Range<usize> },
}

/// How far a `Text`/`Ids` request goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Stage {
    #[default]
    Audio,
    /// Stop at the latent (only for workers whose model is split, [`PiperWorker::splits`]).
    Latent,
}

pub struct PiperRequest {
    pub input: PiperInput,
    pub params: PiperParams,
    pub stage: Stage,
}

impl PiperRequest {
    pub fn audio(input: PiperInput, params: PiperParams) -> Self {
        Self { input, params, stage: Stage::Audio }
    }
}

#[derive(Debug)]
pub struct PiperAudio {
    pub samples: Vec<f32>,
    /// The phonemes the model read (empty for `Ids` and `Decode` input).
    pub phonemes: String,
    /// The sentence's latent, for [`Stage::Latent`] requests (`None` when there is nothing to say).
    pub latent: Option<latent::Latent>,
}

/// The model as one session, or cut at the decoder's input.
enum Graph {
    Whole(OnnxSession),
    /// `input`: the decoder's input (the latent tensor's name in the original graph).
    Split {
        encoder: OnnxSession,
        decoder: OnnxSession,
        input: String,
    },
}

pub struct PiperWorker {
    graph: Graph,
    config: Arc<PiperConfig>,
    espeak: Option<espeak::Espeak>,
    has_sid: bool,
}

impl PiperWorker {
    pub fn new(onnx: OnnxSession, config: Arc<PiperConfig>) -> Result<Self, String> {
        Self::with_graph(Graph::Whole(onnx), config)
    }

    /// A worker on the model cut by [`latent::split_model`]: `encoder` gives the latent,
    /// `decoder` the audio.
    pub fn split(encoder: OnnxSession, decoder: OnnxSession, config: Arc<PiperConfig>) -> Result<Self, String> {
        let input = decoder.inputs().first().map(|i| i.name.clone()).ok_or("the decoder has no input")?;
        Self::with_graph(Graph::Split { encoder, decoder, input }, config)
    }

    fn with_graph(graph: Graph, config: Arc<PiperConfig>) -> Result<Self, String> {
        let first = match &graph {
            Graph::Whole(s) | Graph::Split { encoder: s, .. } => s,
        };
        let has_sid = first.inputs().iter().any(|i| i.name == "sid");
        if config.multi_speaker() && !has_sid {
            return Err(format!("config says {} speakers but the model has no `sid` input", config.num_speakers));
        }
        let espeak = Some(espeak::Espeak::spawn(&config.espeak_voice)?);
        Ok(Self { graph, config, espeak, has_sid })
    }

    /// Whether this worker can stop at the latent and decode slices of one.
    pub fn splits(&self) -> bool {
        matches!(self.graph, Graph::Split { .. })
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

    fn infer(&mut self, ids: Vec<i64>, p: &PiperParams, stage: Stage) -> Result<PiperAudio, String> {
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
        let mut samples = match (&mut self.graph, stage) {
            (Graph::Whole(onnx), Stage::Audio) => first_output(&mut onnx.session, inputs)?,
            (Graph::Split { encoder, decoder, input }, stage) => {
                let outputs = encoder.session.run(inputs).map_err(|e| e.to_string())?;
                let z = latent::Latent::from_value(&outputs[0])?;
                drop(outputs);
                if stage == Stage::Latent {
                    return Ok(PiperAudio { samples: Vec::new(), phonemes: String::new(), latent: Some(z) });
                }
                let frames = z.frames;
                decode(&mut decoder.session, input, &z, 0..frames)?
            }
            (Graph::Whole(_), Stage::Latent) => return Err("this voice's model is not split".into()),
        };
        if p.normalize {
            normalize_peak(&mut samples);
        }
        Ok(PiperAudio { samples, phonemes: String::new(), latent: None })
    }
}

fn first_output(session: &mut ort::session::Session, inputs: Vec<(String, DynValue)>) -> Result<Vec<f32>, String> {
    let outputs = session.run(inputs).map_err(|e| e.to_string())?;
    let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
    Ok(audio.to_vec())
}

/// `frames` of `z` through the decoder, with [`latent::PAD`] frames of context on each side
/// (cut off again), so the slice comes out as it does in a decode of the whole latent.
fn decode(
    session: &mut ort::session::Session,
    input: &str,
    z: &latent::Latent,
    frames: Range<usize>,
) -> Result<Vec<f32>, String> {
    if frames.is_empty() {
        return Ok(Vec::new());
    }
    let window = latent::padded(&frames, z.frames);
    let value = Tensor::from_array((vec![1, z.channels, window.len()], z.window(&window)))
        .map_err(|e| e.to_string())?
        .into_dyn();
    let audio = first_output(session, vec![(input.to_string(), value)])?;
    latent::trim(audio, &window, &frames)
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
            PiperInput::Decode { latent, frames } => {
                let Graph::Split { decoder, input, .. } = &mut self.graph else {
                    return Err("this voice's model is not split".into());
                };
                let samples = decode(&mut decoder.session, input, &latent, frames)?;
                return Ok(PiperAudio { samples, phonemes: String::new(), latent: None });
            }
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
            return Ok(PiperAudio { samples: Vec::new(), phonemes, latent: None });
        }
        let audio = self.infer(ids, &request.params, request.stage)?;
        Ok(PiperAudio { phonemes, ..audio })
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
