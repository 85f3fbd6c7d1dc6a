use thiserror::Error;

/// What went wrong with a piece of audio, typed so that a server can answer precisely:
/// `Empty`/`Corrupt` → 422, `Unsupported` → 415, `TooLong` → 413, `InvalidParameter` → 422
/// naming the parameter, `Internal` → 500.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The input had no bytes or decoded to no samples.
    #[error("no audio: the input is empty")]
    Empty,
    /// A container or codec this build cannot handle (and ffmpeg could not help).
    #[error("unsupported audio: {reason}")]
    Unsupported { reason: String },
    /// Recognised but malformed input: bad headers, impossible parameters, undecodable data.
    #[error("corrupt audio: {reason}")]
    Corrupt { reason: String },
    /// Decoding was stopped because the audio exceeds the configured [`crate::DecodeLimits`].
    #[error("audio too long: more than {max_seconds} s or {max_samples} samples")]
    TooLong { max_seconds: f64, max_samples: usize },
    /// A caller-supplied argument is out of range (a sample rate of 0, an empty format, …).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// A failure that is not the input's fault: an encoder library or subprocess misbehaved.
    #[error("audio processing failed: {reason}")]
    Internal { reason: String },
}

impl AudioError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Self::Corrupt { reason: reason.into() }
    }

    pub(crate) fn unsupported(reason: impl Into<String>) -> Self {
        Self::Unsupported { reason: reason.into() }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }

    pub(crate) fn internal(reason: impl Into<String>) -> Self {
        Self::Internal { reason: reason.into() }
    }
}
