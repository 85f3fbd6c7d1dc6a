//! G.711 μ-law and A-law companding (ITU-T G.711), as telephony WebSockets send and expect them.
//! Implemented here because it is a few lines and any crate for it would cost more build time.
//! The caller resamples to 8 kHz; these functions only map sample values.

use crate::pcm::sample_to_i16;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample to μ-law (the byte as transmitted, bits inverted).
pub fn linear_to_mulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 { 0x80 } else { 0 };
    if pcm < 0 {
        pcm = -pcm;
    }
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment is the position of the highest set bit among bits 7..=14.
    let exponent = (31 - (pcm >> 7).leading_zeros() as i32).clamp(0, 7);
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

pub fn mulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    let value = if u & 0x80 != 0 { -magnitude } else { magnitude };
    value as i16
}

/// Encodes one 16-bit linear sample to A-law (even bits inverted, as transmitted).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment end points of the 13-bit magnitude.
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let Some(seg) = SEG_END.iter().position(|&end| pcm <= end) else {
        return (0x7F ^ mask) as u8;
    };
    let seg = seg as i32;
    let mantissa = if seg < 2 { (pcm >> 1) & 0x0F } else { (pcm >> seg) & 0x0F };
    (((seg << 4) | mantissa) ^ mask) as u8
}

pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = i32::from(byte ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    let value = if a & 0x80 != 0 { t } else { -t };
    value as i16
}

pub fn mulaw_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(mulaw_to_linear(b)) / 32768.0).collect()
}

pub fn f32_to_mulaw(samples: &[f32]) -> Vec<u8> {
    samples.iter().map(|&s| linear_to_mulaw(sample_to_i16(s))).collect()
}

pub fn alaw_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.iter().map(|&b| f32::from(alaw_to_linear(b)) / 32768.0).collect()
}

pub fn f32_to_alaw(samples: &[f32]) -> Vec<u8> {
    samples.iter().map(|&s| linear_to_alaw(sample_to_i16(s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        // Silence and full scale, from the G.711 tables.
        assert_eq!(linear_to_mulaw(0), 0xFF);
        assert_eq!(linear_to_mulaw(-1), 0x7F);
        assert_eq!(linear_to_mulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_mulaw(i16::MIN), 0x00);
        assert_eq!(mulaw_to_linear(0x80), 32124);
        assert_eq!(mulaw_to_linear(0x00), -32124);
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn every_code_decodes_and_re_encodes_to_itself() {
        for b in 0..=255u8 {
            // μ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes as 0xFF.
            let expect = if b == 0x7F { 0xFF } else { b };
            assert_eq!(linear_to_mulaw(mulaw_to_linear(b)), expect, "mu-law {b:#x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "a-law {b:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_the_segment_step() {
        for s in (i16::MIN..=i16::MAX).step_by(13) {
            let v = i32::from(s);
            let mu = i32::from(mulaw_to_linear(linear_to_mulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            if v.abs() > 1024 {
                // Logarithmic segments: the error is a small fraction of the value.
                assert!(f64::from((mu - v).abs()) / f64::from(v.abs()) < 0.035, "mu {s} -> {mu}");
                assert!(f64::from((a - v).abs()) / f64::from(v.abs()) < 0.035, "a {s} -> {a}");
            } else {
                // Linear segments near zero: a few LSBs.
                assert!((mu - v).abs() <= 32, "mu {s} -> {mu}");
                assert!((a - v).abs() <= 32, "a {s} -> {a}");
            }
        }
    }
}
