//! MP3 through LAME (`mp3lame-encoder` builds LAME's bundled C source; no system library).
//!
//! A LAME/Xing tag is written in the first frame so that decoders (symphonia, ffmpeg,
//! browsers) can remove the encoder delay and padding: the decoded length equals the input's.

use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};

use crate::resample::resample;
use crate::{AudioError, Result};

/// Rates MPEG-1/2/2.5 Layer III can carry.
const MP3_RATES: [u32; 9] = [
    8000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// The rate the MP3 will be written at: the input's when MP3 supports it, otherwise the next
/// higher supported rate (so no bandwidth is lost), capped at 48 kHz.
pub(super) fn encoder_rate(rate: u32) -> u32 {
    MP3_RATES
        .iter()
        .copied()
        .find(|&r| r >= rate)
        .unwrap_or(48_000)
}

fn lame_error(what: &str) -> impl Fn(mp3lame_encoder::BuildError) -> AudioError + '_ {
    move |e| AudioError::internal(format!("LAME {what}: {e:?}"))
}

pub(super) fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let rate = encoder_rate(sample_rate);
    let resampled;
    let input = if rate == sample_rate {
        samples
    } else {
        resampled = resample(samples, sample_rate, rate)?;
        &resampled
    };
    // Mono: 128 kbit/s is transparent for music at MPEG-1 rates, 64 for the speech-band rates.
    let bitrate = match rate {
        32_000.. => Bitrate::Kbps128,
        16_000.. => Bitrate::Kbps64,
        _ => Bitrate::Kbps32,
    };
    let mut builder = Builder::new().ok_or_else(|| AudioError::internal("LAME: out of memory"))?;
    builder
        .set_num_channels(1)
        .map_err(lame_error("channels"))?;
    builder
        .set_sample_rate(rate)
        .map_err(lame_error("sample rate"))?;
    builder.set_brate(bitrate).map_err(lame_error("bitrate"))?;
    builder
        .set_quality(Quality::Good)
        .map_err(lame_error("quality"))?;
    builder
        .set_to_write_vbr_tag(true)
        .map_err(lame_error("tag"))?;
    let mut encoder = builder.build().map_err(lame_error("init"))?;

    let clipped: Vec<f32> = input.iter().map(|s| s.clamp(-1.0, 1.0)).collect();
    let mut out = Vec::new();
    for chunk in clipped.chunks(1 << 16) {
        out.reserve(mp3lame_encoder::max_required_buffer_size(chunk.len()));
        encoder
            .encode_to_vec(MonoPcm(chunk), &mut out)
            .map_err(|e| AudioError::internal(format!("LAME encode: {e:?}")))?;
    }
    out.reserve(7200);
    encoder
        .flush_to_vec::<FlushGap>(&mut out)
        .map_err(|e| AudioError::internal(format!("LAME flush: {e:?}")))?;

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
