//! Spectral features for the speech models: a Hann-windowed STFT and Whisper's log-mel
//! spectrogram, bit-for-bit in structure with `whisper.audio.log_mel_spectrogram` (validated
//! against a Python reference in `tests/mel_reference.rs`).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::{AudioError, Result};

pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
pub const WHISPER_N_FFT: usize = 400;
pub const WHISPER_HOP_LENGTH: usize = 160;

/// Periodic Hann window (`torch.hann_window(n)`, `scipy.signal.get_window("hann", n)`): the
/// variant that tiles exactly at 50 % overlap, which is what STFTs use.
pub fn hann_window(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            (0.5 - 0.5 * x.cos()) as f32
        })
        .collect()
}

/// Index into `len` samples extended by mirror reflection without repeating the edge sample
/// (numpy/torch `reflect`); repeats the reflection for inputs shorter than the padding.
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    (if m < len as isize { m } else { period - m }) as usize
}

/// Power spectrogram |STFT|² of `samples`, centred like `torch.stft(center=True,
/// pad_mode="reflect")`: frame *t* is centred on sample *t·hop*. Returns frame-major data
/// (`n_fft/2 + 1` bins per frame) and the frame count, `1 + len / hop`.
pub fn power_spectrogram(samples: &[f32], n_fft: usize, hop: usize) -> Result<(Vec<f32>, usize)> {
    let mut out = Vec::with_capacity((1 + samples.len() / hop.max(1)) * (n_fft / 2 + 1));
    let n_frames = for_each_power_frame(samples, n_fft, hop, |_, power| out.extend_from_slice(power))?;
    Ok((out, n_frames))
}

/// The frames of [`power_spectrogram`], handed to `f` one at a time (`f(t, power)`) instead of
/// collected: a whole song's spectrogram is tens of megabytes that a reader reducing each frame
/// to a few numbers never needs, and allocating it costs more than the transforms. Returns the
/// frame count.
pub fn for_each_power_frame(
    samples: &[f32],
    n_fft: usize,
    hop: usize,
    mut f: impl FnMut(usize, &[f32]),
) -> Result<usize> {
    if n_fft < 2 || hop == 0 {
        return Err(AudioError::invalid("n_fft", "n_fft must be ≥ 2 and hop ≥ 1"));
    }
    if samples.is_empty() {
        return Ok(0);
    }
    let window = hann_window(n_fft);
    let n_frames = 1 + samples.len() / hop;
    let pad = (n_fft / 2) as isize;
    let fft: Arc<dyn RealToComplex<f32>> = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
    let mut frame = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0f32; n_fft / 2 + 1];
    for t in 0..n_frames {
        let start = (t * hop) as isize - pad;
        for (k, slot) in frame.iter_mut().enumerate() {
            let idx = start + k as isize;
            let sample = if idx >= 0 && (idx as usize) < samples.len() {
                samples[idx as usize]
            } else {
                samples[reflect_index(idx, samples.len())]
            };
            *slot = sample * window[k];
        }
        fft.process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
            .map_err(|e| AudioError::internal(format!("FFT: {e}")))?;
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.re * c.re + c.im * c.im;
        }
        f(t, &power);
    }
    Ok(n_frames)
}

/// Slaney-style mel scale (librosa's default, `htk=False`): linear below 1 kHz, logarithmic
/// above.
fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep } else { hz / F_SP }
}

fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= MIN_LOG_MEL { MIN_LOG_HZ * (logstep * (mel - MIN_LOG_MEL)).exp() } else { F_SP * mel }
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney")`:
/// `n_mels` rows of `n_fft/2 + 1` weights, computed in f64 like librosa and stored as f32.
pub fn mel_filterbank(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let sr = f64::from(sample_rate);
    let fft_freqs: Vec<f64> = (0..n_bins).map(|i| i as f64 * (sr / 2.0) / (n_bins - 1).max(1) as f64).collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut weights = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, centre, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (b, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - lo) / (centre - lo);
            let upper = (hi - f) / (hi - centre);
            weights[m * n_bins + b] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    weights
}

/// Whisper's log-mel spectrogram of 16 kHz mono audio: n_fft 400, hop 160, Slaney mel
/// filterbank, `log10(max(power, 1e-10))`, floor at (max − 8), then `(x + 4) / 4`. The last
/// STFT frame is dropped as Whisper does (`stft[..., :-1]`), so 1 s gives 100 frames.
///
/// Returns mel-major data (`data[m * n_frames + t]`, the `[n_mels, n_frames]` layout the
/// encoder takes) and `n_frames`. Padding or trimming to 30 s is the caller's business.
pub fn log_mel_spectrogram(samples_16k: &[f32], n_mels: usize) -> Result<(Vec<f32>, usize)> {
    if n_mels != 80 && n_mels != 128 {
        return Err(AudioError::invalid("n_mels", format!("{n_mels} (Whisper uses 80 or 128)")));
    }
    let (power, frames) = power_spectrogram(samples_16k, WHISPER_N_FFT, WHISPER_HOP_LENGTH)?;
    let n_frames = frames.saturating_sub(1);
    if n_frames == 0 {
        return Ok((Vec::new(), 0));
    }
    let n_bins = WHISPER_N_FFT / 2 + 1;
    let filters = mel_filterbank(WHISPER_SAMPLE_RATE, WHISPER_N_FFT, n_mels);
    // Each triangle covers a few bins; skipping the zeros makes this ~10x cheaper.
    let spans: Vec<(usize, usize)> = filters
        .chunks_exact(n_bins)
        .map(|row| {
            let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w != 0.0).map_or(0, |i| i + 1);
            (first, last.max(first))
        })
        .collect();
    let mut mel = vec![0f32; n_mels * n_frames];
    for t in 0..n_frames {
        let spectrum = &power[t * n_bins..(t + 1) * n_bins];
        for (m, &(first, last)) in spans.iter().enumerate() {
            let row = &filters[m * n_bins..(m + 1) * n_bins];
            let energy: f32 = row[first..last].iter().zip(&spectrum[first..last]).map(|(w, p)| w * p).sum();
            mel[m * n_frames + t] = energy.max(1e-10).log10();
        }
    }
    let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in &mut mel {
        *v = (v.max(max - 8.0) + 4.0) / 4.0;
    }
    Ok((mel, n_frames))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad([0,1,2,3], 3, mode="reflect") == [3,2,1,0,1,2,3,2,1,0]
        let got: Vec<usize> = (-3..7).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn hann_is_periodic() {
        let w = hann_window(4);
        assert_eq!(w, vec![0.0, 0.5, 1.0, 0.5]);
    }

    #[test]
    fn tone_energy_lands_in_its_bin() {
        let sr = 16_000.0;
        let x: Vec<f32> = (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / sr).sin()).collect();
        let (power, frames) = power_spectrogram(&x, 400, 160).unwrap();
        assert_eq!(frames, 101);
        let mid = &power[50 * 201..51 * 201];
        let peak = mid.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(peak, 25); // 1000 Hz / (16000 / 400)
    }

    #[test]
    fn log_mel_shape_and_range() {
        let x = vec![0.0f32; 16_000];
        let (mel, frames) = log_mel_spectrogram(&x, 80).unwrap();
        assert_eq!(frames, 100);
        assert_eq!(mel.len(), 80 * 100);
        // Silence: every value is log10(1e-10) = -10 → (−10 + 4) / 4.
        assert!(mel.iter().all(|&v| (v - (-1.5)).abs() < 1e-6));
        assert!(matches!(log_mel_spectrogram(&x, 40), Err(AudioError::InvalidParameter { name: "n_mels", .. })));
    }
}
