//! Waveform overview data (min/max per pixel) in the JSON shape of BBC audiowaveform, so
//! front ends built for it (peaks.js, wavesurfer's precomputed peaks) render ours unchanged.

use std::fmt::Write as _;

use crate::pcm::sample_to_i16;
use crate::{AudioError, Result};

/// Resolution of the stored values: 8 bits keeps the JSON small, 16 is exact for zooming in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeakBits {
    Eight,
    Sixteen,
}

/// audiowaveform's version-2 data file: `data` holds `length` (min, max) pairs, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peaks {
    pub version: u32,
    pub channels: u16,
    pub sample_rate: u32,
    pub samples_per_pixel: u32,
    pub bits: u8,
    pub length: usize,
    pub data: Vec<i16>,
}

/// Min/max of each run of `samples_per_pixel` samples (the last run may be shorter), scaled
/// to `bits` like audiowaveform (16-bit value, arithmetic shift right by 8 for 8-bit).
pub fn waveform_peaks(samples: &[f32], sample_rate: u32, samples_per_pixel: u32, bits: PeakBits) -> Result<Peaks> {
    if samples_per_pixel == 0 {
        return Err(AudioError::invalid("samples_per_pixel", "must be at least 1"));
    }
    if sample_rate == 0 {
        return Err(AudioError::invalid("sample_rate", "must be at least 1"));
    }
    let shift = match bits {
        PeakBits::Eight => 8,
        PeakBits::Sixteen => 0,
    };
    let mut data = Vec::with_capacity(2 * samples.len().div_ceil(samples_per_pixel as usize));
    for chunk in samples.chunks(samples_per_pixel as usize) {
        // The conversion to 16 bits is monotonic, so the extremes are converted, not every
        // sample (a tenth of the time: the float folds vectorise, the rounding does not). NaN
        // counts as 0, as `sample_to_i16` maps it.
        let (lo, hi) = chunk.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
            let s = if s.is_nan() { 0.0 } else { s };
            (lo.min(s), hi.max(s))
        });
        data.push(sample_to_i16(lo) >> shift);
        data.push(sample_to_i16(hi) >> shift);
    }
    Ok(Peaks {
        version: 2,
        channels: 1,
        sample_rate,
        samples_per_pixel,
        bits: if shift == 8 { 8 } else { 16 },
        length: data.len() / 2,
        data,
    })
}

impl Peaks {
    /// The audiowaveform JSON document (written by hand: this crate has no serde dependency).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + self.data.len() * 5);
        let _ = write!(
            out,
            "{{\"version\":{},\"channels\":{},\"sample_rate\":{},\"samples_per_pixel\":{},\
             \"bits\":{},\"length\":{},\"data\":[",
            self.version, self.channels, self.sample_rate, self.samples_per_pixel, self.bits, self.length
        );
        for (i, v) in self.data.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{v}");
        }
        out.push_str("]}");
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn extremes_equal_every_sample_converted() {
        let mut seed = 1u32;
        let mut samples: Vec<f32> = (0..10_000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.05
            })
            .collect();
        samples[17] = f32::NAN;
        samples[300..310].fill(f32::NAN);
        for spp in [1, 7, 256] {
            let p = waveform_peaks(&samples, 44_100, spp, PeakBits::Sixteen).unwrap();
            let want: Vec<i16> = samples
                .chunks(spp as usize)
                .flat_map(|c| {
                    let v: Vec<i16> = c.iter().map(|s| sample_to_i16(*s)).collect();
                    [*v.iter().min().unwrap(), *v.iter().max().unwrap()]
                })
                .collect();
            assert_eq!(p.data, want, "{spp} samples per pixel");
        }
    }

    #[test]
    fn min_max_per_pixel_in_audiowaveform_shape() {
        let samples = [0.0, 0.5, -0.5, 1.0, -1.0];
        let p = waveform_peaks(&samples, 8000, 2, PeakBits::Sixteen).unwrap();
        assert_eq!(p.length, 3);
        assert_eq!(p.data, vec![0, 16384, -16384, 32767, -32768, -32768]);
        let p8 = waveform_peaks(&samples, 8000, 2, PeakBits::Eight).unwrap();
        assert_eq!(p8.data, vec![0, 64, -64, 127, -128, -128]);
        assert_eq!(
            p8.to_json(),
            "{\"version\":2,\"channels\":1,\"sample_rate\":8000,\"samples_per_pixel\":2,\
             \"bits\":8,\"length\":3,\"data\":[0,64,-64,127,-128,-128]}"
        );
        assert!(waveform_peaks(&samples, 8000, 0, PeakBits::Eight).is_err());
    }
}
