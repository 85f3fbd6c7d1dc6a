//! Audio arriving over a WebSocket as binary frames: the encoding and rate the client declared
//! in its config message, converted to 16 kHz mono f32 in blocks. Shared by every streaming
//! protocol (live tagging now; speech-to-text later).

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Pcm16,
    F32,
    Mulaw,
    /// G.711 A-law (8-bit), what European telephony and OpenAI's `g711_alaw` send.
    Alaw,
}

impl Encoding {
    fn bytes_per_sample(self) -> usize {
        match self {
            Encoding::Pcm16 => 2,
            Encoding::F32 => 4,
            Encoding::Mulaw | Encoding::Alaw => 1,
        }
    }
}

/// Rates a client may declare; anything else is refused up front with the list.
pub const ACCEPTED_RATES: &[u32] = &[8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("sample_rate {0} is not supported; use one of 8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000")]
    Rate(u32),
    #[error("a {encoding:?} frame must be a multiple of {size} bytes; got {len}")]
    Length { encoding: Encoding, size: usize, len: usize },
    #[error("frame contains NaN or infinite samples")]
    NotFinite,
    #[error("resampling failed: {0}")]
    Resample(String),
}

/// Converts frames to 16 kHz. Resampling happens in blocks of at least `block` input samples:
/// a sinc resampler on tiny frames would smear every frame edge.
pub struct AudioInput {
    rate: u32,
    encoding: Encoding,
    pending: Vec<f32>,
    block: usize,
}

pub const TARGET_RATE: u32 = 16_000;

impl AudioInput {
    pub fn new(rate: u32, encoding: Encoding, block_seconds: f32) -> Result<Self, InputError> {
        if !ACCEPTED_RATES.contains(&rate) {
            return Err(InputError::Rate(rate));
        }
        let block = ((rate as f32 * block_seconds) as usize).max(1);
        Ok(Self { rate, encoding, pending: Vec::new(), block })
    }

    /// Samples of one frame at the client's rate.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<f32>, InputError> {
        let size = self.encoding.bytes_per_sample();
        if !bytes.len().is_multiple_of(size) {
            return Err(InputError::Length { encoding: self.encoding, size, len: bytes.len() });
        }
        let samples = match self.encoding {
            Encoding::Pcm16 => timbre_audio::pcm16_bytes_to_f32(bytes),
            Encoding::Mulaw => timbre_audio::mulaw_to_f32(bytes),
            Encoding::Alaw => timbre_audio::alaw_to_f32(bytes),
            Encoding::F32 => {
                let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(InputError::NotFinite);
                }
                v
            }
        };
        Ok(samples)
    }

    /// Take a frame; returns the 16 kHz samples that are ready (possibly none yet).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<f32>, InputError> {
        let samples = self.decode(bytes)?;
        if self.rate == TARGET_RATE {
            return Ok(samples);
        }
        self.pending.extend(samples);
        if self.pending.len() < self.block {
            return Ok(Vec::new());
        }
        self.flush()
    }

    /// Whatever is pending, resampled (at end of stream).
    pub fn flush(&mut self) -> Result<Vec<f32>, InputError> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let block = std::mem::take(&mut self.pending);
        timbre_audio::resample(&block, self.rate, TARGET_RATE).map_err(|e| InputError::Resample(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_encoding_and_rejects_bad_frames() {
        let input = AudioInput::new(16_000, Encoding::Pcm16, 0.1).unwrap();
        let pcm: Vec<u8> = [16384i16, -16384].iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(input.decode(&pcm).unwrap(), vec![0.5, -0.5]);
        assert!(matches!(input.decode(&pcm[..3]), Err(InputError::Length { size: 2, len: 3, .. })));
        let f = AudioInput::new(16_000, Encoding::F32, 0.1).unwrap();
        let nan: Vec<u8> = f32::NAN.to_le_bytes().to_vec();
        assert_eq!(f.decode(&nan), Err(InputError::NotFinite));
        assert!(matches!(AudioInput::new(12_345, Encoding::Pcm16, 0.1), Err(InputError::Rate(12_345))));
    }

    #[test]
    fn resamples_in_blocks_to_16k() {
        let mut input = AudioInput::new(8_000, Encoding::Pcm16, 0.5).unwrap();
        let second: Vec<u8> =
            (0..8_000).flat_map(|i| (((i as f32 * 0.05).sin() * 8000.0) as i16).to_le_bytes()).collect();
        let first = input.push(&second[..4_000]).unwrap(); // 0.25 s: below the block
        assert!(first.is_empty());
        let out = input.push(&second[4_000..]).unwrap();
        assert!((out.len() as i64 - 16_000).abs() <= 2, "{}", out.len());
    }
}
