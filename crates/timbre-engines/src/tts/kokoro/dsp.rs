//! hibari's signal tail (the package's `dsp.py`, ported): the network predicts five spectral
//! parts per 12.5 ms frame plus an F0 curve; a band-limited pulse train from F0 is filtered by the
//! harmonic branch, shaped noise and a free-phase branch are added, and one inverse STFT
//! (n_fft 1200, hop 300, periodic Hann, 24 kHz) gives the waveform:
//!
//! `S = exp(lh)·e^{iπ·tanh(θ)}·STFT(pulses(f0)) + exp(ln)·Z + exp(lr)·e^{iφ}`
//!
//! Arithmetic follows the reference's float32/float64 choices step by step so the output matches
//! it to float rounding.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

pub const N_FFT: usize = 1200;
pub const HOP: usize = 300;
pub const SR: u32 = 24_000;
pub const BINS: usize = N_FFT / 2 + 1;
const K: usize = N_FFT / HOP;

/// The network's outputs for one utterance: five `[BINS, F]` row-major planes and `f0[F]`.
pub struct Spectral<'a> {
    pub lh: &'a [f32],
    pub th: &'a [f32],
    pub ln: &'a [f32],
    pub lr: &'a [f32],
    pub phi: &'a [f32],
    pub f0: &'a [f32],
}

/// Standard normal numbers for the noise branch.
pub trait Noise {
    fn normal(&mut self) -> f32;
}

/// No noise: the deterministic part of the signal (what fidelity tests compare).
pub struct Silent;

impl Noise for Silent {
    fn normal(&mut self) -> f32 {
        0.0
    }
}

/// xorshift64* + Box–Muller: cheap, good enough for shaped noise, no dependency.
pub struct Gaussian {
    state: u64,
    spare: Option<f32>,
}

impl Gaussian {
    pub fn new(seed: u64) -> Self {
        Self { state: seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, spare: None }
    }

    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

impl Noise for Gaussian {
    fn normal(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        self.spare = Some((r * a.sin()) as f32);
        (r * a.cos()) as f32
    }
}

/// FFT plans and windows, built once per worker.
pub struct Tail {
    win: Vec<f32>,
    win_src: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

impl Default for Tail {
    fn default() -> Self {
        Self::new()
    }
}

fn ex(x: f32) -> f32 {
    x.min(7.0).exp()
}

impl Tail {
    pub fn new() -> Self {
        let win: Vec<f32> = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        let win_src = win.iter().map(|w| w / (N_FFT as f32 / 4.0)).collect();
        let mut planner = RealFftPlanner::<f32>::new();
        Self { win, win_src, forward: planner.plan_fft_forward(N_FFT), inverse: planner.plan_fft_inverse(N_FFT) }
    }

    /// Waveform for `frames` frames of network output.
    pub fn synth(&self, s: &Spectral<'_>, noise: &mut dyn Noise) -> Vec<f32> {
        let f = s.f0.len();
        if f == 0 {
            return Vec::new();
        }
        let mut spec = self.stft(&pulses(s.f0), f); // [BINS][F]
        for b in 0..BINS {
            for k in 0..f {
                let i = b * f + k;
                let c = s.th[i].tanh() * std::f32::consts::PI;
                let mag = ex(s.lh[i]);
                let rot = Complex32::new(c.cos() * mag, c.sin() * mag);
                spec[i] *= rot;
            }
        }
        // The noise is drawn row by row, real then imaginary, as the reference's complex view.
        for b in 0..BINS {
            for k in 0..f {
                let i = b * f + k;
                let z = Complex32::new(noise.normal(), noise.normal());
                let g = ex(s.ln[i]);
                spec[i] += Complex32::new(z.re * g, z.im * g);
            }
        }
        for (i, v) in spec.iter_mut().enumerate() {
            let g = ex(s.lr[i]);
            *v += Complex32::new(s.phi[i].cos() * g, s.phi[i].sin() * g);
        }
        self.ola(&spec, f)
    }

    /// torch.stft(center=True, reflect padding, Hann/(n_fft/4)) of `x`, the first `frames`
    /// frames, as `[BINS][frames]`.
    fn stft(&self, x: &[f32], frames: usize) -> Vec<Complex32> {
        let half = N_FFT / 2;
        let n = x.len();
        let padded: Vec<f32> = (0..n + 2 * half)
            .map(|i| {
                let j = i as isize - half as isize;
                let j = if j < 0 {
                    -j
                } else if j >= n as isize {
                    2 * (n as isize - 1) - j
                } else {
                    j
                };
                x.get(j.clamp(0, n as isize - 1) as usize).copied().unwrap_or(0.0)
            })
            .collect();
        let mut out = vec![Complex32::new(0.0, 0.0); BINS * frames];
        let mut buf = vec![0.0f32; N_FFT];
        let mut spectrum = self.forward.make_output_vec();
        for k in 0..frames {
            let start = k * HOP;
            for (j, b) in buf.iter_mut().enumerate() {
                *b = padded.get(start + j).copied().unwrap_or(0.0) * self.win_src[j];
            }
            if self.forward.process(&mut buf, &mut spectrum).is_ok() {
                for (b, v) in spectrum.iter().enumerate() {
                    out[b * frames + k] = *v;
                }
            }
        }
        out
    }

    /// Inverse STFT (torch.istft center=True, length = frames·hop): irfft per frame, window,
    /// overlap-add, divide by the summed squared window.
    fn ola(&self, spec: &[Complex32], frames: usize) -> Vec<f32> {
        let total = (frames + K - 1) * HOP;
        let mut y = vec![0.0f32; total];
        let mut wsum = vec![0.0f32; total];
        let mut bins = self.inverse.make_input_vec();
        let mut frame = vec![0.0f32; N_FFT];
        let scale = 1.0 / N_FFT as f32;
        for k in 0..frames {
            for (b, v) in bins.iter_mut().enumerate() {
                *v = spec[b * frames + k];
            }
            // irfft ignores the imaginary parts of DC and Nyquist; realfft insists they are 0.
            bins[0].im = 0.0;
            bins[BINS - 1].im = 0.0;
            if self.inverse.process(&mut bins, &mut frame).is_err() {
                continue;
            }
            let base = k * HOP;
            for j in 0..N_FFT {
                y[base + j] += frame[j] * scale * self.win[j];
            }
        }
        let w2: Vec<f32> = self.win.iter().map(|w| w * w).collect();
        for k in 0..frames {
            let base = k * HOP;
            for j in 0..N_FFT {
                wsum[base + j] += w2[j];
            }
        }
        let half = N_FFT / 2;
        (half..half + frames * HOP).map(|i| y[i] * (1.0 / wsum[i].max(1e-11))).collect()
    }
}

/// Linear interpolation weights of the per-sample F0 between frame centres (align_corners=False).
fn interp_weights() -> (Vec<f32>, Vec<f32>) {
    let u: Vec<f32> = (0..HOP)
        .map(|j| {
            let x = ((j as f64 + 0.5) / HOP as f64 - 0.5).rem_euclid(1.0);
            x as f32
        })
        .collect();
    let v = u.iter().map(|u| 1.0 - u).collect();
    (u, v)
}

/// Band-limited pulse train from the frame-rate F0 curve: every harmonic below 11 kHz at unit
/// amplitude, `sin((H+½)t) / (2 sin(t/2)) − ½`; unvoiced samples (F0 < 40 Hz) are 0.
pub fn pulses(f0: &[f32]) -> Vec<f32> {
    const VTHRESH: f32 = 40.0;
    const FMAX: f32 = 11_000.0;
    let frames = f0.len();
    let h2 = HOP / 2;
    let (u, v) = interp_weights();
    let fp = |i: isize| f0[i.clamp(0, frames as isize - 1) as usize];
    let mut f = vec![0.0f32; frames * HOP];
    for k in 0..frames {
        let (a, b, c) = (fp(k as isize - 1), fp(k as isize), fp(k as isize + 1));
        for j in 0..HOP {
            f[k * HOP + j] = if j < h2 { a * v[j] + b * u[j] } else { b * v[j] + c * u[j] };
        }
    }
    let mut out = vec![0.0f32; f.len()];
    let mut acc = 0.0f64;
    for (i, fi) in f.iter().enumerate() {
        let voiced = *fi > VTHRESH;
        let fv = fi.max(VTHRESH);
        acc += fv as f64;
        let mut t = acc * (1.0 / SR as f64);
        t = t.fract();
        let t = (t * (2.0 * std::f64::consts::PI)) as f32;
        let h = (FMAX / fv).floor() + 0.5;
        let s = (t * 0.5).sin() * 2.0;
        let e = if s.abs() <= 2e-3 { h } else { (h * t).sin() / s };
        out[i] = if voiced { e - 0.5 } else { 0.0 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulse_train_has_the_f0_period_and_silence_when_unvoiced() {
        let p = pulses(&[200.0; 8]);
        // 200 Hz at 24 kHz: peaks every 120 samples.
        let peaks: Vec<usize> =
            (1..p.len() - 1).filter(|&i| p[i] > p[i - 1] && p[i] >= p[i + 1] && p[i] > 10.0).collect();
        assert!(peaks.len() >= 15, "{peaks:?}");
        assert!(peaks.windows(2).all(|w| (w[1] - w[0]).abs_diff(120) <= 1), "{peaks:?}");
        assert!(pulses(&[0.0; 4]).iter().all(|v| *v == 0.0));
    }

    #[test]
    fn stft_then_ola_reconstructs_inside() {
        // With only the free-phase branch carrying a known STFT, ola inverts stft.
        let tail = Tail::new();
        let frames = 20;
        let x: Vec<f32> = (0..frames * HOP).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let spec = tail.stft(&x, frames);
        // Undo the source window's 1/(n_fft/4) scaling: ola expects a Hann-analysed spectrum.
        let spec: Vec<Complex32> = spec.iter().map(|c| c * (N_FFT as f32 / 4.0)).collect();
        let y = tail.ola(&spec, frames);
        assert_eq!(y.len(), x.len());
        let err =
            x[HOP..x.len() - HOP].iter().zip(&y[HOP..y.len() - HOP]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-4, "max error {err}");
    }

    #[test]
    fn gaussian_noise_is_standard() {
        let mut g = Gaussian::new(7);
        let xs: Vec<f32> = (0..20_000).map(|_| g.normal()).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / xs.len() as f32;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }
}
