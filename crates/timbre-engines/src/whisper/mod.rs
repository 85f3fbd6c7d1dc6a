//! Whisper speech-to-text. The weights come as a CTranslate2 directory (what faster-whisper
//! loads), read natively by [`ct2`]; [`api`] is the contract the serving side relies on.

pub mod api;
pub mod ct2;
pub mod format;
pub mod transcriber;

pub use transcriber::Transcriber;
