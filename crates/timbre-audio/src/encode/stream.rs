//! Incremental encoders for streamed responses: TTS audio sent while it is synthesised,
//! telephony frames. Each `push` returns the bytes that are ready to send; `finish` returns
//! the rest. Concatenating everything gives a playable file.

use super::opus::OggOpusStream;
use super::{OutputFormat, mp3};
use crate::decode::MAX_SAMPLE_RATE;
use crate::g711::{f32_to_alaw, f32_to_mulaw};
use crate::pcm::{f32_to_pcm16_bytes, sample_to_i16};
use crate::{AudioError, Result};

/// An encoder that takes mono f32 samples a piece at a time.
pub trait StreamEncoder: Send {
    fn format(&self) -> OutputFormat;
    /// Encodes `samples`; returns whatever output is complete (possibly nothing yet).
    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>>;
    /// Ends the stream and returns the remaining bytes. Pushing afterwards is an error.
    fn finish(&mut self) -> Result<Vec<u8>>;
}

/// A streaming encoder for `format` at `sample_rate`.
///
/// Differences from [`crate::encode`], all forced by not knowing the end in advance:
/// WAV carries "unknown length" sizes (0xFFFFFFFF, which players read to end of stream); MP3
/// has no LAME tag, so decoders keep LAME's ~1100 samples of delay and padding; Opus needs a
/// rate libopus takes (8, 12, 16, 24, 48 kHz); FLAC is not available (use `encode`).
pub fn stream_encoder(format: OutputFormat, sample_rate: u32) -> Result<Box<dyn StreamEncoder>> {
    if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
        return Err(AudioError::invalid("sample_rate", format!("{sample_rate} Hz is outside 1..={MAX_SAMPLE_RATE}")));
    }
    Ok(match format {
        OutputFormat::Wav => Box::new(Raw { format, sample_rate, header_sent: false }),
        OutputFormat::Pcm16 | OutputFormat::Mulaw | OutputFormat::Alaw => {
            Box::new(Raw { format, sample_rate, header_sent: true })
        }
        OutputFormat::Mp3 => Box::new(Mp3 { encoder: mp3::lame_encoder(sample_rate, false)?, finished: false }),
        OutputFormat::Opus => Box::new(Opus(OggOpusStream::new(sample_rate, sample_rate)?)),
        OutputFormat::Flac => {
            return Err(AudioError::invalid("format", "FLAC cannot be streamed; use encode"));
        }
    })
}

/// Header-less formats, and WAV after its header.
struct Raw {
    format: OutputFormat,
    sample_rate: u32,
    header_sent: bool,
}

impl StreamEncoder for Raw {
    fn format(&self) -> OutputFormat {
        self.format
    }

    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>> {
        Ok(match self.format {
            OutputFormat::Mulaw => f32_to_mulaw(samples),
            OutputFormat::Alaw => f32_to_alaw(samples),
            OutputFormat::Wav if !self.header_sent => {
                self.header_sent = true;
                let mut out = streaming_wav_header(self.sample_rate);
                out.extend(samples.iter().flat_map(|&s| sample_to_i16(s).to_le_bytes()));
                out
            }
            _ => f32_to_pcm16_bytes(samples),
        })
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        // A WAV stream with no samples still needs its header to be a WAV file.
        self.push(&[])
    }
}

/// 16-bit mono WAV header whose sizes say "unknown" (0xFFFFFFFF), as streaming servers send.
fn streaming_wav_header(sample_rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
}

struct Mp3 {
    encoder: mp3lame_encoder::Encoder,
    finished: bool,
}

impl StreamEncoder for Mp3 {
    fn format(&self) -> OutputFormat {
        OutputFormat::Mp3
    }

    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>> {
        if self.finished {
            return Err(AudioError::invalid("samples", "the stream is already finished"));
        }
        let mut out = Vec::new();
        mp3::encode_into(&mut self.encoder, samples, &mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let mut out = Vec::new();
        mp3::flush_into(&mut self.encoder, &mut out)?;
        Ok(out)
    }
}

struct Opus(OggOpusStream);

impl StreamEncoder for Opus {
    fn format(&self) -> OutputFormat {
        OutputFormat::Opus
    }

    fn push(&mut self, samples: &[f32]) -> Result<Vec<u8>> {
        self.0.push(samples)?;
        Ok(self.0.take_bytes())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        self.0.finish()
    }
}
