//! The speech-to-text contract between the Whisper engine and everything that serves it (HTTP,
//! SSE, both WebSocket protocols, the CLI). Kept apart from the model code so the serving side
//! and the engine can evolve separately: they meet only on these types.

use serde::Serialize;

/// What the decoder is asked to produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Transcribe,
    /// Speech in any language → English text. Only multilingual checkpoints can do it.
    Translate,
}

/// Decoding options, with faster-whisper's defaults so results are comparable with it.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscribeOptions {
    /// ISO 639-1 code; `None` = detect (multilingual) or English (`.en` models).
    pub language: Option<String>,
    pub task: Task,
    /// Initial prompt: earlier text or spellings of names, fed as previous-context tokens.
    pub prompt: Option<String>,
    /// Temperature schedule for fallback; the first entry is tried first. `[0.0]` = greedy only.
    pub temperatures: Vec<f32>,
    /// 1 = greedy; > 1 = beam search at temperature 0.
    pub beam_size: usize,
    /// Candidates sampled per non-zero temperature.
    pub best_of: usize,
    pub word_timestamps: bool,
    /// Split long audio on Silero VAD speech regions before decoding.
    pub vad_filter: bool,
    /// Fallback when gzip compression ratio is above this (repetition loops).
    pub compression_ratio_threshold: Option<f32>,
    /// Fallback when the average log-probability is below this.
    pub log_prob_threshold: Option<f32>,
    /// A window is silence when no-speech probability is above this and log-prob is low.
    pub no_speech_threshold: Option<f32>,
    pub condition_on_previous_text: bool,
    /// Encode only the audio (plus a second of padding) instead of a full 30 s window. Whisper
    /// was trained on 30 s windows and file transcription always uses them (that is what
    /// faster-whisper does and what the fidelity tests compare); a live utterance of a few
    /// seconds encodes several times faster this way, which is what lets a final arrive soon
    /// after the speaker stops. Measured on the speech test set in `docs/benchmarks.md`.
    pub fit_window: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
            prompt: None,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            beam_size: 5,
            best_of: 5,
            word_timestamps: false,
            vad_filter: true,
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            fit_window: false,
        }
    }
}

/// One word with its time span (seconds, absolute in the input) from cross-attention alignment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Word {
    pub start: f64,
    pub end: f64,
    /// As Whisper emits it, usually with its leading space.
    pub word: String,
    pub probability: f32,
}

/// One decoded segment; fields and meanings follow OpenAI's `verbose_json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    pub id: usize,
    pub seek: usize,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f32,
    pub avg_logprob: f32,
    pub compression_ratio: f32,
    pub no_speech_prob: f32,
    /// Empty unless word timestamps were asked for.
    pub words: Vec<Word>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transcript {
    pub text: String,
    pub language: String,
    /// Seconds of input audio.
    pub duration: f64,
    pub segments: Vec<Segment>,
}

/// What a loaded checkpoint can do, for validating requests before they queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    pub multilingual: bool,
    pub n_mels: usize,
    /// Language codes the checkpoint knows (`["en"]` for English-only models).
    pub languages: Vec<String>,
}

/// Why a request was refused or failed. Option errors map to 422 naming `param`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranscribeError {
    #[error("{message}")]
    InvalidOption { param: &'static str, message: String },
    #[error(transparent)]
    Engine(#[from] crate::actor::EngineError),
}
