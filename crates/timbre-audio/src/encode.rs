//! Mono f32 samples → the bytes of the format a client asked for.

mod flac;
mod mp3;
mod opus;
mod stream;
mod wav;

use std::fmt;
use std::str::FromStr;

pub use stream::{StreamEncoder, stream_encoder};

use crate::decode::MAX_SAMPLE_RATE;
use crate::g711::{f32_to_alaw, f32_to_mulaw};
use crate::pcm::f32_to_pcm16_bytes;
use crate::{AudioError, Result};

/// Output containers/codecs. The names match OpenAI's `response_format` values where those
/// exist (`wav`, `flac`, `mp3`, `opus`, `pcm`), plus G.711 for telephony.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutputFormat {
    /// RIFF WAVE, 16-bit PCM.
    Wav,
    /// FLAC, 16-bit, lossless.
    Flac,
    /// MPEG-1/2 Layer III (LAME), with a LAME tag so decoders can trim it gaplessly.
    Mp3,
    /// Opus in Ogg (RFC 7845), 48 kHz.
    Opus,
    /// Raw signed 16-bit little-endian samples, no header.
    Pcm16,
    /// Raw G.711 μ-law bytes, no header.
    Mulaw,
    /// Raw G.711 A-law bytes, no header.
    Alaw,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 7] =
        [Self::Wav, Self::Flac, Self::Mp3, Self::Opus, Self::Pcm16, Self::Mulaw, Self::Alaw];

    /// The `Content-Type` to send with these bytes.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
            Self::Opus => "audio/ogg",
            Self::Pcm16 => "audio/pcm",
            Self::Mulaw => "audio/basic",
            Self::Alaw => "audio/x-alaw-basic",
        }
    }

    /// File extension (without the dot) for downloads and blob keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Opus => "opus",
            Self::Pcm16 => "pcm",
            Self::Mulaw => "ulaw",
            Self::Alaw => "alaw",
        }
    }

    /// The rate the encoded bytes will play at when the input is at `input_rate`: formats
    /// with a fixed set of rates resample (Opus always to 48 kHz).
    pub fn output_rate(self, input_rate: u32) -> u32 {
        match self {
            Self::Opus => opus::OUTPUT_RATE,
            Self::Mp3 => mp3::encoder_rate(input_rate),
            _ => input_rate,
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pcm16 => "pcm",
            Self::Mulaw => "mulaw",
            Self::Alaw => "alaw",
            other => other.extension(),
        })
    }
}

impl FromStr for OutputFormat {
    type Err = AudioError;

    /// Accepts the OpenAI names and common aliases (`pcm16`, `ulaw`, `g711_ulaw`, `ogg`…).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "wav" | "wave" => Self::Wav,
            "flac" => Self::Flac,
            "mp3" | "mpeg" => Self::Mp3,
            "opus" | "ogg" => Self::Opus,
            "pcm" | "pcm16" | "s16le" => Self::Pcm16,
            "mulaw" | "ulaw" | "mu-law" | "g711_ulaw" | "pcmu" => Self::Mulaw,
            "alaw" | "a-law" | "g711_alaw" | "pcma" => Self::Alaw,
            other => {
                return Err(AudioError::invalid(
                    "format",
                    format!("unknown output format `{other}` (wav, flac, mp3, opus, pcm, mulaw, alaw)"),
                ));
            }
        })
    }
}

/// Encodes mono samples in [-1, 1] (values beyond are clipped) at `sample_rate`.
///
/// Raw formats (`Pcm16`, `Mulaw`, `Alaw`) carry no rate: the caller must resample to whatever
/// the receiver expects (8 kHz for telephony G.711) before calling.
pub fn encode(samples: &[f32], sample_rate: u32, format: OutputFormat) -> Result<Vec<u8>> {
    if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
        return Err(AudioError::invalid("sample_rate", format!("{sample_rate} Hz is outside 1..={MAX_SAMPLE_RATE}")));
    }
    match format {
        OutputFormat::Wav => wav::encode(samples, sample_rate),
        OutputFormat::Flac => flac::encode(samples, sample_rate),
        OutputFormat::Mp3 => mp3::encode(samples, sample_rate),
        OutputFormat::Opus => opus::encode(samples, sample_rate),
        OutputFormat::Pcm16 => Ok(f32_to_pcm16_bytes(samples)),
        OutputFormat::Mulaw => Ok(f32_to_mulaw(samples)),
        OutputFormat::Alaw => Ok(f32_to_alaw(samples)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in OutputFormat::ALL {
            assert_eq!(f.to_string().parse::<OutputFormat>().unwrap(), f);
            assert_eq!(f.extension().parse::<OutputFormat>().unwrap(), f);
            assert!(f.mime_type().starts_with("audio/"));
        }
        assert!(matches!("aiff".parse::<OutputFormat>(), Err(AudioError::InvalidParameter { name: "format", .. })));
    }

    #[test]
    fn empty_input_encodes_to_a_valid_empty_stream() {
        // A TTS request can legitimately produce no audio; that is not an encoder failure.
        for f in OutputFormat::ALL {
            let bytes = encode(&[], 16_000, f).unwrap();
            match f {
                OutputFormat::Pcm16 | OutputFormat::Mulaw | OutputFormat::Alaw => {
                    assert!(bytes.is_empty(), "{f}")
                }
                OutputFormat::Wav => assert_eq!(bytes.len(), 44),
                _ => assert!(!bytes.is_empty(), "{f}: no header"),
            }
        }
    }

    #[test]
    fn rejects_bad_rate() {
        assert!(matches!(
            encode(&[0.0], 0, OutputFormat::Wav),
            Err(AudioError::InvalidParameter { name: "sample_rate", .. })
        ));
    }
}
