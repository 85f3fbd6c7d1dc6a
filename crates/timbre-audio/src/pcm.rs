//! Conversions between raw PCM16 (what streaming clients send and `pcm` responses carry) and the
//! f32 samples in [-1, 1] that every other part of the crate works with.

/// Scale of i16 ↔ f32 conversion. Dividing by 32768 maps i16::MIN exactly to -1.0; the encode
/// side multiplies by the same factor and clamps, so a round trip is lossless for i16 input.
const I16_SCALE: f32 = 32768.0;

pub fn pcm16_to_f32(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|&s| f32::from(s) / I16_SCALE).collect()
}

/// Decodes little-endian s16 bytes; a trailing odd byte (a frame cut mid-sample) is ignored
/// rather than rejected, because network frames are not guaranteed to be sample-aligned.
pub fn pcm16_bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / I16_SCALE).collect()
}

/// Converts with rounding and clamping: model output regularly overshoots ±1.0 slightly, and
/// wrapping around would turn that into loud clicks.
pub fn f32_to_pcm16(samples: &[f32]) -> Vec<i16> {
    samples.iter().map(|&s| sample_to_i16(s)).collect()
}

pub fn f32_to_pcm16_bytes(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &s in samples {
        out.extend_from_slice(&sample_to_i16(s).to_le_bytes());
    }
    out
}

#[inline]
pub(crate) fn sample_to_i16(s: f32) -> i16 {
    // NaN maps to 0 through the `as` cast's saturating semantics after clamping.
    let v = (s * I16_SCALE).round().clamp(-32768.0, 32767.0);
    v as i16
}

/// Averages interleaved channels into one; averaging (not summing) keeps a full-scale stereo
/// signal from clipping.
pub fn downmix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    match channels {
        0 => Vec::new(),
        1 => interleaved.to_vec(),
        n => {
            let scale = 1.0 / n as f32;
            interleaved.chunks_exact(n).map(|frame| frame.iter().sum::<f32>() * scale).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_round_trip_is_lossless() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
        assert_eq!(f32_to_pcm16(&pcm16_to_f32(&all)), all);
        let bytes: Vec<u8> = all.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(f32_to_pcm16_bytes(&pcm16_bytes_to_f32(&bytes)), bytes);
    }

    #[test]
    fn f32_to_pcm16_clamps_and_handles_nan() {
        assert_eq!(f32_to_pcm16(&[2.0, -2.0, f32::NAN, 0.5]), vec![32767, -32768, 0, 16384]);
    }

    #[test]
    fn odd_trailing_byte_is_ignored() {
        assert_eq!(pcm16_bytes_to_f32(&[0x00, 0x40, 0x7f]), vec![0.5]);
    }

    #[test]
    fn downmix_averages_frames() {
        assert_eq!(downmix_to_mono(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2), vec![0.5, 0.5, 0.0]);
        assert_eq!(downmix_to_mono(&[0.25, 0.5], 1), vec![0.25, 0.5]);
    }
}
