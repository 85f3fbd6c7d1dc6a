//! Whisper speech-to-text. The weights come as a CTranslate2 directory (what faster-whisper
//! loads), read natively by [`ct2`].

pub mod ct2;
