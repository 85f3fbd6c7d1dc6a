//! Whisper speech-to-text. Weights come as a CTranslate2 directory (what faster-whisper loads,
//! read natively by [`ct2`]) or a Hugging Face safetensors directory; [`api`] is the contract
//! the serving side relies on, [`Transcriber`] the service.
//!
//! Decoding follows faster-whisper (CTranslate2) step by step so transcripts match it:
//! [`pipeline`] (30 s windows, fallback, prompts), [`search`] (greedy/beam/sampling),
//! [`logits`] (suppression and timestamp rules), [`align`] (word timestamps), [`speech`]
//! (VAD regions). The network itself is [`model`] on [`ops`].

pub mod align;
pub mod api;
pub mod checkpoint;
pub mod ct2;
pub mod format;
pub mod gemm;
pub mod int8;
pub mod logits;
pub mod model;
pub mod ops;
pub mod pipeline;
pub mod safetensors;
pub mod screen;
pub mod search;
pub mod speech;
pub mod tokenizer;
pub mod transcriber;
pub mod weights;

pub use transcriber::Transcriber;
