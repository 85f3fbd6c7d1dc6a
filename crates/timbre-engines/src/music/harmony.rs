//! Slow spectral features for meter and structure: chroma (which pitch classes sound) and MFCCs
//! (timbre), from one long-window STFT, then averaged between beats or bars.

use super::onset::mel_db;
use super::{Error, SAMPLE_RATE};

/// 186 ms windows: long enough to tell semitones apart above ~100 Hz.
pub const N_FFT: usize = 4096;
pub const HOP: usize = 2048;
const N_MELS: usize = 40;
pub const N_MFCC: usize = 13;
const CHROMA_MIN_HZ: f64 = 65.0;
const CHROMA_MAX_HZ: f64 = 4200.0;
const TOP_DB: f32 = 80.0;

/// Per STFT frame: 12 chroma values (max-normalised) and `N_MFCC` coefficients.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    pub chroma: Vec<[f32; 12]>,
    pub mfcc: Vec<[f32; N_MFCC]>,
}

impl Frames {
    /// Time (s) of frame `i`'s centre.
    pub fn time(i: usize) -> f64 {
        (i * HOP) as f64 / f64::from(SAMPLE_RATE)
    }
}

/// Orthonormal DCT-II of `x`, first `k` coefficients (scipy `dct(type=2, norm="ortho")`).
pub fn dct2_ortho(x: &[f32], k: usize) -> Vec<f32> {
    let n = x.len() as f64;
    (0..k)
        .map(|i| {
            let s: f64 = x
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    f64::from(v) * (std::f64::consts::PI * i as f64 * (2.0 * j as f64 + 1.0) / (2.0 * n)).cos()
                })
                .sum();
            let scale = if i == 0 { (1.0 / n).sqrt() } else { (2.0 / n).sqrt() };
            (s * scale) as f32
        })
        .collect()
}

fn mel_rows() -> Vec<(usize, Vec<f32>)> {
    super::onset::sparse_rows(&timbre_audio::mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS), N_MELS, N_FFT / 2 + 1)
}

/// MFCCs as `librosa.feature.mfcc(y, sr, n_mfcc, n_fft, hop_length, n_mels)`: Slaney mel power,
/// dB with an 80 dB floor under the loudest value, orthonormal DCT-II (as [`dct2_ortho`], from a
/// table).
pub fn mfcc(power: &[f32], frames: usize) -> Vec<[f32; N_MFCC]> {
    let bins = N_FFT / 2 + 1;
    let rows = mel_rows();
    let mut db = Vec::with_capacity(frames * N_MELS);
    for spec in power.chunks_exact(bins).take(frames) {
        mel_db(&rows, spec, &mut db);
    }
    mfcc_from_db(db)
}

/// MFCCs from frame-major mel dB values ([`N_MELS`] per frame).
fn mfcc_from_db(mut db: Vec<f32>) -> Vec<[f32; N_MFCC]> {
    let top = db.iter().copied().fold(f32::MIN, f32::max);
    db.iter_mut().for_each(|v| *v = v.max(top - TOP_DB));
    // DCT rows: column i of the identity through `dct2_ortho` is the i-th basis sample.
    let basis: Vec<Vec<f32>> = (0..N_MELS)
        .map(|j| {
            let mut e = vec![0f32; N_MELS];
            e[j] = 1.0;
            dct2_ortho(&e, N_MFCC)
        })
        .collect();
    db.chunks_exact(N_MELS)
        .map(|frame| {
            let mut out = [0f32; N_MFCC];
            for (v, b) in frame.iter().zip(&basis) {
                for (o, c) in out.iter_mut().zip(b) {
                    *o += v * c;
                }
            }
            out
        })
        .collect()
}

/// Pitch class (0 = C) of each FFT bin inside the chroma range, or `None`.
fn bin_classes() -> Vec<Option<usize>> {
    (0..=N_FFT / 2)
        .map(|b| {
            let f = b as f64 * f64::from(SAMPLE_RATE) / N_FFT as f64;
            (CHROMA_MIN_HZ..=CHROMA_MAX_HZ)
                .contains(&f)
                .then(|| ((12.0 * (f / 440.0).log2() + 69.0).round() as i64).rem_euclid(12) as usize)
        })
        .collect()
}

/// Chroma and MFCCs of every frame, computed as the STFT goes (no spectrogram is kept).
pub fn frames(samples: &[f32]) -> Result<Frames, Error> {
    // The bins inside the chroma range, with their pitch class.
    let classes: Vec<(usize, usize)> =
        bin_classes().into_iter().enumerate().filter_map(|(b, c)| Some((b, c?))).collect();
    let rows = mel_rows();
    let expected = 1 + samples.len() / HOP;
    let (mut chroma, mut db) = (Vec::with_capacity(expected), Vec::with_capacity(expected * N_MELS));
    timbre_audio::for_each_power_frame(samples, N_FFT, HOP, |_, frame| {
        let mut c = [0f32; 12];
        for &(b, k) in &classes {
            // Magnitude, compressed (its square root): loud bass notes should not drown the chord.
            c[k] += frame[b].sqrt().sqrt();
        }
        let max = c.iter().copied().fold(0.0, f32::max);
        if max > 0.0 {
            c.iter_mut().for_each(|v| *v /= max);
        }
        chroma.push(c);
        mel_db(&rows, frame, &mut db);
    })?;
    Ok(Frames { chroma, mfcc: mfcc_from_db(db) })
}

/// Mean of the frames whose centre lies in each `[edges[i], edges[i+1])`; an interval shorter
/// than a frame takes the nearest frame.
pub fn average<const N: usize>(frames: &[[f32; N]], edges: &[f64]) -> Vec<[f32; N]> {
    let hop_s = Frames::time(1);
    edges
        .windows(2)
        .map(|w| {
            let first = ((w[0] / hop_s).ceil().max(0.0) as usize).min(frames.len().saturating_sub(1));
            let last = ((w[1] / hop_s).ceil().max(0.0) as usize).min(frames.len()).max(first + 1);
            let mut out = [0f32; N];
            let span = &frames[first.min(frames.len().saturating_sub(1))..last.min(frames.len())];
            for f in span {
                for (o, v) in out.iter_mut().zip(f) {
                    *o += v;
                }
            }
            out.iter_mut().for_each(|o| *o /= span.len().max(1) as f32);
            out
        })
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_major_triad_lights_its_three_classes() {
        let sr = f64::from(SAMPLE_RATE);
        let x: Vec<f32> = (0..SAMPLE_RATE as usize)
            .map(|i| {
                let t = i as f64 / sr;
                [440.0, 554.37, 659.26].iter().map(|f| (2.0 * std::f64::consts::PI * f * t).sin()).sum::<f64>() as f32
                    * 0.2
            })
            .collect();
        let f = frames(&x).unwrap();
        let c = f.chroma[f.chroma.len() / 2];
        let mut order: Vec<usize> = (0..12).collect();
        order.sort_by(|&a, &b| c[b].total_cmp(&c[a]));
        let mut top: Vec<usize> = order[..3].to_vec();
        top.sort();
        assert_eq!(top, vec![1, 4, 9], "C#, E, A: {c:?}");
    }

    #[test]
    fn averaging_between_edges() {
        let frames = vec![[1.0f32], [3.0], [5.0], [7.0]];
        let hop = Frames::time(1);
        let avg = average(&frames, &[0.0, 2.0 * hop, 4.0 * hop]);
        assert_eq!(avg, vec![[2.0], [6.0]]);
    }
}
