//! Text-to-speech: Piper (VITS + espeak-ng) and Kokoro/hibari (lexicon G2P + spectral tail)
//! voices behind one service, [`Speaker`], that the server, the WebSocket protocol and the CLI
//! share.
//!
//! A request's text is cut into sentences; each sentence is one engine call on a worker thread
//! (phonemes and inference together), so audio streams out sentence by sentence and a cancelled
//! stream stops between sentences.

pub mod catalog;
pub mod kokoro;
pub mod piper;
pub mod text;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::actor::{Actor, EngineError, Timed};
pub use catalog::VoiceInfo;

/// What a caller may ask of one synthesis.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechOptions {
    /// Speaking rate, 1.0 = the voice's own pace (OpenAI's `speed`, 0.25–4).
    pub speed: f32,
    /// Piper overrides (ignored by voices without them).
    pub noise_scale: Option<f32>,
    pub length_scale: Option<f32>,
    pub noise_w: Option<f32>,
    /// Speaker of a multi-speaker voice, by name or number.
    pub speaker: Option<String>,
}

impl Default for SpeechOptions {
    fn default() -> Self {
        Self { speed: 1.0, noise_scale: None, length_scale: None, noise_w: None, speaker: None }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TtsError {
    #[error("voice `{voice}` does not exist in model `{model}`; voices: {available}")]
    UnknownVoice { model: String, voice: String, available: String },
    #[error("{0}")]
    InvalidOption(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Below this many latent frames per slice (~0.28 s of Piper audio) a parallel decode is not
/// worth the context each slice decodes twice.
const MIN_SLICE_FRAMES: usize = 24;

/// One synthesized sentence, with the silence that separates it from the one before already
/// prepended (the first sentence has none).
#[derive(Debug)]
pub struct SentenceAudio {
    pub index: usize,
    pub text: String,
    pub samples: Vec<f32>,
    pub queued: Duration,
    pub inference: Duration,
}

enum Backend {
    /// `splits`: every worker holds the model cut at the decoder (see [`Speaker::sentence_soon`]).
    Piper {
        actor: Actor<piper::PiperRequest, piper::PiperAudio>,
        config: Arc<piper::PiperConfig>,
        splits: bool,
    },
    Kokoro {
        actor: Actor<kokoro::KokoroRequest, Vec<f32>>,
    },
}

/// A loaded TTS model and its voices.
pub struct Speaker {
    pub model: String,
    pub sample_rate: u32,
    pub voices: Vec<VoiceInfo>,
    /// Seconds of silence between sentences.
    pub sentence_silence: f32,
    backend: Backend,
}

impl Speaker {
    pub fn default_voice(&self) -> &str {
        self.voices.first().map(|v| v.name.as_str()).unwrap_or("")
    }

    pub fn has_voice(&self, voice: &str) -> bool {
        self.voices.iter().any(|v| v.name == voice)
    }

    /// The sentences this model synthesizes one at a time.
    pub fn sentences(&self, text: &str) -> Vec<String> {
        match &self.backend {
            Backend::Piper { .. } => text::sentences(text).iter().map(|s| text::sentence_text(s)).collect(),
            Backend::Kokoro { .. } => kokoro::split_sentences(text),
        }
    }

    fn check_voice(&self, voice: &str) -> Result<(), TtsError> {
        if self.has_voice(voice) {
            return Ok(());
        }
        Err(TtsError::UnknownVoice {
            model: self.model.clone(),
            voice: voice.to_string(),
            available: self.voices.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    fn piper_params(config: &piper::PiperConfig, opts: &SpeechOptions) -> Result<piper::PiperParams, TtsError> {
        let speaker_id = match opts.speaker.as_deref() {
            None => None,
            Some(s) => Some(config.speaker_id(Some(s)).map_err(TtsError::InvalidOption)?),
        };
        Ok(piper::PiperParams {
            noise_scale: opts.noise_scale,
            length_scale: opts.length_scale,
            noise_w: opts.noise_w,
            speed: opts.speed,
            speaker_id,
            normalize: true,
        })
    }

    /// Samples for one sentence (no silence added).
    pub async fn sentence(
        &self,
        voice: &str,
        sentence: &str,
        opts: &SpeechOptions,
    ) -> Result<Timed<Vec<f32>>, TtsError> {
        self.check_voice(voice)?;
        Ok(match &self.backend {
            Backend::Piper { actor, config, .. } => {
                let params = Self::piper_params(config, opts)?;
                let t =
                    actor.call(piper::PiperRequest::audio(piper::PiperInput::Text(sentence.into()), params)).await?;
                Timed { value: t.value.samples, queued: t.queued, inference: t.inference }
            }
            Backend::Kokoro { actor } => actor.call(kokoro::KokoroRequest::text(voice, sentence, opts.speed)).await?,
        })
    }

    /// Like [`Speaker::sentence`], for a sentence someone is waiting to hear (the first of a
    /// stream, a live text-in sentence): when the voice's other workers are idle, a Piper
    /// sentence is encoded once and its latent decoded in slices on all of them at once — the
    /// same samples (see [`piper::latent`]) sooner. Busy workers, a short sentence or an unsplit
    /// model take the ordinary path.
    pub async fn sentence_soon(
        &self,
        voice: &str,
        sentence: &str,
        opts: &SpeechOptions,
    ) -> Result<Timed<Vec<f32>>, TtsError> {
        let Backend::Piper { actor, config, splits: true } = &self.backend else {
            return self.sentence(voice, sentence, opts).await;
        };
        if actor.idle_workers() < 2 {
            return self.sentence(voice, sentence, opts).await;
        }
        self.check_voice(voice)?;
        let params = Self::piper_params(config, opts)?;
        let started = std::time::Instant::now();
        let encoded = actor
            .call(piper::PiperRequest {
                input: piper::PiperInput::Text(sentence.into()),
                params: params.clone(),
                stage: piper::Stage::Latent,
            })
            .await?;
        let queued = encoded.queued;
        let Some(latent) = encoded.value.latent else {
            return Ok(Timed { value: Vec::new(), queued, inference: encoded.inference });
        };
        let latent = Arc::new(latent);
        let slices = piper::latent::slices(latent.frames, actor.idle_workers().max(1), MIN_SLICE_FRAMES);
        if slices.len() > 1 {
            metrics::counter!("timbre_tts_parallel_decodes_total", "model" => self.model.clone()).increment(1);
        }
        let decodes = slices.into_iter().map(|frames| {
            let input = piper::PiperInput::Decode { latent: Arc::clone(&latent), frames };
            actor.call(piper::PiperRequest::audio(input, params.clone()))
        });
        let mut samples = Vec::new();
        for part in futures_util::future::join_all(decodes).await {
            samples.extend(part?.value.samples);
        }
        if params.normalize {
            piper::normalize_peak(&mut samples);
        }
        Ok(Timed { value: samples, queued, inference: started.elapsed().saturating_sub(queued) })
    }

    /// The same, for synchronous callers (the CLI).
    pub fn sentence_blocking(
        &self,
        voice: &str,
        sentence: &str,
        opts: &SpeechOptions,
    ) -> Result<Timed<Vec<f32>>, TtsError> {
        self.check_voice(voice)?;
        Ok(match &self.backend {
            Backend::Piper { actor, config, .. } => {
                let params = Self::piper_params(config, opts)?;
                let t = actor
                    .call_blocking(piper::PiperRequest::audio(piper::PiperInput::Text(sentence.into()), params))?;
                Timed { value: t.value.samples, queued: t.queued, inference: t.inference }
            }
            Backend::Kokoro { actor } => {
                actor.call_blocking(kokoro::KokoroRequest::text(voice, sentence, opts.speed))?
            }
        })
    }

    /// Piper only: synthesize ready phoneme ids (fidelity checks against piper-tts).
    pub fn piper_ids_blocking(&self, ids: Vec<i64>, params: piper::PiperParams) -> Result<Vec<f32>, TtsError> {
        match &self.backend {
            Backend::Piper { actor, .. } => {
                Ok(actor.call_blocking(piper::PiperRequest::audio(piper::PiperInput::Ids(ids), params))?.value.samples)
            }
            Backend::Kokoro { .. } => Err(TtsError::InvalidOption(format!("`{}` is not a Piper voice", self.model))),
        }
    }

    /// Kokoro only: synthesize a phoneme string (fidelity checks against hibari-tts). `noise`
    /// false leaves out the random component of the spectrum.
    pub fn kokoro_phonemes_blocking(
        &self,
        voice: &str,
        phonemes: &str,
        speed: f32,
        noise: bool,
    ) -> Result<Vec<f32>, TtsError> {
        self.check_voice(voice)?;
        match &self.backend {
            Backend::Kokoro { actor } => {
                let mut request = kokoro::KokoroRequest::phonemes(voice, phonemes, speed);
                request.noise = noise;
                Ok(actor.call_blocking(request)?.value)
            }
            Backend::Piper { .. } => Err(TtsError::InvalidOption(format!("`{}` is not a Kokoro voice", self.model))),
        }
    }

    pub fn silence(&self) -> Vec<f32> {
        vec![0.0; (self.sentence_silence.max(0.0) * self.sample_rate as f32) as usize]
    }

    /// Synthesize `text` sentence by sentence into a bounded channel. The task stops as soon as
    /// the receiver is dropped (a cancelled or disconnected client), between sentences.
    /// `first_soon`: someone is waiting for the first sentence (a streamed response), so it
    /// goes through [`Speaker::sentence_soon`].
    pub fn stream(
        self: &Arc<Self>,
        voice: &str,
        text: &str,
        opts: &SpeechOptions,
        first_soon: bool,
    ) -> Result<mpsc::Receiver<Result<SentenceAudio, TtsError>>, TtsError> {
        self.check_voice(voice)?;
        let sentences = self.sentences(text);
        let (tx, rx) = mpsc::channel(2);
        let me = Arc::clone(self);
        let voice = voice.to_string();
        let opts = opts.clone();
        tokio::spawn(async move {
            let silence = me.silence();
            let mut index = 0;
            for sentence in sentences {
                if tx.is_closed() {
                    return;
                }
                let result = if first_soon && index == 0 {
                    me.sentence_soon(&voice, &sentence, &opts).await
                } else {
                    me.sentence(&voice, &sentence, &opts).await
                };
                let item = match result {
                    Ok(t) if t.value.is_empty() => continue,
                    Ok(t) => {
                        let mut samples = if index > 0 { silence.clone() } else { Vec::new() };
                        samples.extend_from_slice(&t.value);
                        let audio =
                            SentenceAudio { index, text: sentence, samples, queued: t.queued, inference: t.inference };
                        index += 1;
                        Ok(audio)
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// Builders used by the loaders.
impl Speaker {
    pub(crate) fn piper(
        model: &str,
        voices: Vec<VoiceInfo>,
        config: Arc<piper::PiperConfig>,
        actor: Actor<piper::PiperRequest, piper::PiperAudio>,
        splits: bool,
        sentence_silence: f32,
    ) -> Self {
        Self {
            model: model.into(),
            sample_rate: config.sample_rate,
            voices,
            sentence_silence,
            backend: Backend::Piper { actor, config, splits },
        }
    }

    pub(crate) fn kokoro(
        model: &str,
        voices: Vec<VoiceInfo>,
        actor: Actor<kokoro::KokoroRequest, Vec<f32>>,
        sentence_silence: f32,
    ) -> Self {
        Self {
            model: model.into(),
            sample_rate: kokoro::SAMPLE_RATE,
            voices,
            sentence_silence,
            backend: Backend::Kokoro { actor },
        }
    }
}
