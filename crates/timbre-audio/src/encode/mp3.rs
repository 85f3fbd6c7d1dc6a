//! MP3 through LAME (`mp3lame-encoder` builds LAME's bundled C source; no system library).
//!
//! A LAME/Xing tag is written in the first frame so that decoders (symphonia, ffmpeg,
//! browsers) can remove the encoder delay and padding: the decoded length equals the input's.

use std::num::NonZeroU32;

use mp3lame_encoder::{Bitrate, Builder, Encoder, FlushGap, MonoPcm, Quality};

use crate::resample::resample;
use crate::{AudioError, Result};

/// Rates MPEG-1/2/2.5 Layer III can carry.
const MP3_RATES: [u32; 9] = [8000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000];

/// The rate the MP3 will be written at: the input's when MP3 supports it, otherwise the next
/// higher supported rate (so no bandwidth is lost), capped at 48 kHz.
pub(super) fn encoder_rate(rate: u32) -> u32 {
    MP3_RATES.iter().copied().find(|&r| r >= rate).unwrap_or(48_000)
}

fn lame_error(what: &str) -> impl Fn(mp3lame_encoder::BuildError) -> AudioError + '_ {
    move |e| AudioError::internal(format!("LAME {what}: {e:?}"))
}

/// A mono LAME encoder for input at `input_rate`, writing at [`encoder_rate`] (LAME resamples
/// internally when they differ, which only the streaming path relies on). The LAME tag needs
/// the whole file, so only one-shot encoding asks for it.
pub(super) fn lame_encoder(input_rate: u32, write_tag: bool) -> Result<Encoder> {
    let rate = encoder_rate(input_rate);
    // Mono: 128 kbit/s is transparent for music at MPEG-1 rates, 64 for the speech-band rates.
    let bitrate = match rate {
        32_000.. => Bitrate::Kbps128,
        16_000.. => Bitrate::Kbps64,
        _ => Bitrate::Kbps32,
    };
    let mut builder = Builder::new().ok_or_else(|| AudioError::internal("LAME: out of memory"))?;
    builder.set_num_channels(1).map_err(lame_error("channels"))?;
    builder.set_sample_rate(input_rate).map_err(lame_error("sample rate"))?;
    if rate != input_rate {
        builder.set_output_sample_rate(NonZeroU32::new(rate)).map_err(lame_error("output rate"))?;
    }
    builder.set_brate(bitrate).map_err(lame_error("bitrate"))?;
    builder.set_quality(Quality::Good).map_err(lame_error("quality"))?;
    builder.set_to_write_vbr_tag(write_tag).map_err(lame_error("tag"))?;
    builder.build().map_err(lame_error("init"))
}

/// Encodes `samples` (any length) into `out`, clipping to [-1, 1] first.
pub(super) fn encode_into(encoder: &mut Encoder, samples: &[f32], out: &mut Vec<u8>) -> Result<()> {
    for chunk in samples.chunks(1 << 16) {
        let clipped: Vec<f32> = chunk.iter().map(|s| s.clamp(-1.0, 1.0)).collect();
        out.reserve(mp3lame_encoder::max_required_buffer_size(clipped.len()));
        encoder
            .encode_to_vec(MonoPcm(clipped.as_slice()), out)
            .map_err(|e| AudioError::internal(format!("LAME encode: {e:?}")))?;
    }
    Ok(())
}

/// Flushes LAME's buffered frames (padding the last one) into `out`.
pub(super) fn flush_into(encoder: &mut Encoder, out: &mut Vec<u8>) -> Result<()> {
    // LAME's documented upper bound for a flush.
    out.reserve(7200);
    encoder.flush_to_vec::<FlushGap>(out).map_err(|e| AudioError::internal(format!("LAME flush: {e:?}")))?;
    Ok(())
}

pub(super) fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let rate = encoder_rate(sample_rate);
    let resampled;
    let input = if rate == sample_rate {
        samples
    } else {
        // Our sinc resampler rather than LAME's: better quality, and the length stays exact
        // for the gapless tag.
        resampled = resample(samples, sample_rate, rate)?;
        &resampled
    };
    let mut encoder = lame_encoder(rate, true)?;
    let mut out = Vec::new();
    encode_into(&mut encoder, input, &mut out)?;
    flush_into(&mut encoder, &mut out)?;

    // LAME emitted a placeholder first frame of the tag's size; overwrite it with the real tag
    // now that the delay, padding and frame count are known.
    let mut tag = Vec::with_capacity(encoder.lame_tag_size());
    if encoder.lame_tag_size() > 0 && encoder.lame_tag_encode_to_vec(&mut tag).is_some() {
        let start = encoder.id3v2_tag_size();
        if let Some(slot) = out.get_mut(start..start + tag.len()) {
            slot.copy_from_slice(&tag);
        }
    }
    Ok(out)
}
