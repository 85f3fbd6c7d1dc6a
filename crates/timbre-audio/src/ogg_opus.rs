//! Ogg Opus (RFC 7845) decoding through libopus: symphonia 0.6 has no Opus decoder, and Opus is
//! what browsers record (`MediaRecorder`) and what our own `opus` output produces, so it must
//! not depend on ffmpeg being installed.

use std::io::Cursor;

use ogg::PacketReader;
use opus::{Channels, Decoder};

use crate::decode::{DecodeLimits, Decoded};
use crate::{AudioError, Result};

/// libopus always decodes at 48 kHz here: it is Opus's internal rate, and the rate granule
/// positions and pre-skip are counted in.
pub(crate) const OPUS_RATE: u32 = 48_000;

/// Largest Opus packet duration: 120 ms at 48 kHz.
const MAX_PACKET_FRAMES: usize = 5760;

/// Undecodable packets in a row after which the stream is declared corrupt.
const MAX_CONSECUTIVE_ERRORS: usize = 64;

/// Cheap sniff: an Ogg page whose first packet is an `OpusHead`.
pub(crate) fn looks_like_ogg_opus(bytes: &[u8]) -> bool {
    bytes.starts_with(b"OggS") && bytes[..bytes.len().min(128)].windows(8).any(|w| w == b"OpusHead")
}

struct OpusHead {
    channels: usize,
    pre_skip: u64,
    gain_db: f32,
}

fn parse_head(data: &[u8]) -> Result<OpusHead> {
    if data.len() < 19 || !data.starts_with(b"OpusHead") {
        return Err(AudioError::corrupt("Ogg Opus: malformed OpusHead"));
    }
    // Major version must be 0; minor versions are backwards compatible.
    if data[8] >> 4 != 0 {
        return Err(AudioError::unsupported(format!("Ogg Opus version {}", data[8])));
    }
    let channels = usize::from(data[9]);
    let pre_skip = u64::from(u16::from_le_bytes([data[10], data[11]]));
    let gain_q8 = i16::from_le_bytes([data[16], data[17]]);
    let mapping_family = data[18];
    if channels == 0 {
        return Err(AudioError::corrupt("Ogg Opus: zero channels"));
    }
    // Family 0 is mono/stereo in one stream; surround layouts need the multistream decoder.
    if mapping_family != 0 || channels > 2 {
        return Err(AudioError::unsupported(format!(
            "Ogg Opus with {channels} channels (mapping family {mapping_family})"
        )));
    }
    Ok(OpusHead { channels, pre_skip, gain_db: f32::from(gain_q8) / 256.0 })
}

pub(crate) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded> {
    let mut reader = PacketReader::new(Cursor::new(bytes));
    let first = reader.read_packet().map_err(|e| AudioError::corrupt(format!("Ogg: {e}")))?.ok_or(AudioError::Empty)?;
    let head = parse_head(&first.data)?;
    let serial = first.stream_serial();
    let channels = head.channels;
    let mut decoder = Decoder::new(OPUS_RATE, if channels == 1 { Channels::Mono } else { Channels::Stereo })
        .map_err(|e| AudioError::internal(format!("libopus decoder: {e}")))?;

    let mut samples: Vec<f32> = Vec::new();
    let mut buf = vec![0f32; MAX_PACKET_FRAMES * channels];
    let mut last_granule: Option<u64> = None;
    let mut consecutive_errors = 0usize;
    let mut error: Option<String> = None;
    loop {
        let packet = match reader.read_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // Truncated or damaged page: keep what decoded before it.
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        if packet.stream_serial() != serial || packet.data.starts_with(b"OpusTags") {
            continue;
        }
        match decoder.decode_float(&packet.data, &mut buf, false) {
            Ok(frames) => {
                consecutive_errors = 0;
                let total = samples.len() / channels + frames;
                if limit_exceeded(limits, total, channels) {
                    return Err(limits.exceeded());
                }
                samples.extend_from_slice(&buf[..frames * channels]);
            }
            Err(e) => {
                consecutive_errors += 1;
                error = Some(e.to_string());
                if consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                    break;
                }
            }
        }
        if packet.last_in_page() {
            last_granule = Some(packet.absgp_page());
        }
    }
    if samples.is_empty() {
        return Err(match error {
            Some(e) => AudioError::corrupt(format!("Ogg Opus: no decodable audio: {e}")),
            None => AudioError::Empty,
        });
    }

    // The end granule counts pre-skip plus playable frames; the encoder's final-frame padding
    // lies beyond it. Trust it only when it is consistent with what was decoded.
    let frames = (samples.len() / channels) as u64;
    let skip = head.pre_skip.min(frames);
    let keep = last_granule
        .and_then(|g| g.checked_sub(head.pre_skip))
        .filter(|&k| k <= frames - skip)
        .unwrap_or(frames - skip);
    samples.truncate(((skip + keep) as usize) * channels);
    samples.drain(..(skip as usize) * channels);

    if head.gain_db != 0.0 {
        let gain = 10f32.powf(head.gain_db / 20.0);
        samples.iter_mut().for_each(|s| *s *= gain);
    }
    Decoded::new(OPUS_RATE, channels, samples, "opus".to_string())
}

fn limit_exceeded(limits: &DecodeLimits, frames: usize, channels: usize) -> bool {
    frames.saturating_mul(channels) > limits.max_samples || frames as f64 / f64::from(OPUS_RATE) > limits.max_seconds
}
