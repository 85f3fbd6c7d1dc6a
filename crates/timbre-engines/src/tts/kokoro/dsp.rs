//! hibari's signal tail (the package's `dsp.py`, ported): the network predicts five spectral
//! parts per 12.5 ms frame plus an F0 curve; a band-limited pulse train from F0 is filtered by the
//! harmonic branch, shaped noise and a free-phase branch are added, and one inverse STFT
//! (n_fft 1200, hop 300, periodic Hann, 24 kHz) gives the waveform:
//!
//! `S = exp(lh)·e^{iπ·tanh(θ)}·STFT(pulses(f0)) + exp(ln)·Z + exp(lr)·e^{iφ}`
//!
//! Arithmetic follows the reference's float32/float64 choices step by step so the output matches
//! it to float rounding.

use std::f32::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::fastmath;

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

/// Standard normal numbers for the noise branch, a whole plane at a time.
pub trait Noise {
    /// Fill `re` and `im` (same length) with independent standard normals. `false`: this source
    /// adds nothing, and the noise branch is skipped.
    fn fill(&mut self, re: &mut [f32], im: &mut [f32]) -> bool;
}

/// No noise: the deterministic part of the signal (what fidelity tests compare).
pub struct Silent;

impl Noise for Silent {
    fn fill(&mut self, _re: &mut [f32], _im: &mut [f32]) -> bool {
        false
    }
}

/// xorshift64* uniforms + a vectorized Box–Muller: cheap, good enough for shaped noise, no
/// dependency. (The reference draws from numpy's generator, which cannot be replayed anyway.)
pub struct Gaussian {
    state: u64,
}

impl Gaussian {
    pub fn new(seed: u64) -> Self {
        Self { state: seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Noise for Gaussian {
    fn fill(&mut self, re: &mut [f32], im: &mut [f32]) -> bool {
        const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
        for (a, b) in re.iter_mut().zip(im.iter_mut()) {
            let x = self.next();
            // Two 24-bit uniforms per draw: u1 in (0, 1) (its log must be finite), u2 in [0, 1).
            *a = ((x >> 40) as f32 + 0.5) * SCALE;
            *b = ((x >> 16) & 0x00ff_ffff) as f32 * SCALE;
        }
        fastmath::box_muller(re, im);
        true
    }
}

/// Frames transformed together before their bins are scattered into the bin-major planes (and
/// gathered back for the inverse): the planes are `[BINS][frames]`, so a frame at a time would
/// touch a new cache line for every bin.
const BLOCK: usize = 16;

/// FFT plans, windows and scratch planes, built once per worker and reused for every sentence.
pub struct Tail {
    win: Vec<f32>,
    win_src: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// The spectrum being built, `[BINS][frames]`, real and imaginary parts apart so the
    /// element-wise stages vectorize.
    re: Vec<f32>,
    im: Vec<f32>,
    /// Noise draws (or sin/cos of φ), same shape.
    za: Vec<f32>,
    zb: Vec<f32>,
}

impl Default for Tail {
    fn default() -> Self {
        Self::new()
    }
}

/// The reference's `ex`: `exp(min(x, 7))`.
#[inline(always)]
fn ex(x: f32) -> f32 {
    fastmath::exp(x.min(7.0))
}

impl Tail {
    pub fn new() -> Self {
        let win: Vec<f32> = (0..N_FFT)
            .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32)
            .collect();
        let win_src = win.iter().map(|w| w / (N_FFT as f32 / 4.0)).collect();
        let mut planner = RealFftPlanner::<f32>::new();
        Self {
            win,
            win_src,
            forward: planner.plan_fft_forward(N_FFT),
            inverse: planner.plan_fft_inverse(N_FFT),
            re: Vec::new(),
            im: Vec::new(),
            za: Vec::new(),
            zb: Vec::new(),
        }
    }

    /// Waveform for `frames` frames of network output.
    pub fn synth(&mut self, s: &Spectral<'_>, noise: &mut dyn Noise) -> Vec<f32> {
        let f = s.f0.len();
        let n = BINS * f;
        if f == 0 || [s.lh, s.th, s.ln, s.lr, s.phi].iter().any(|p| p.len() != n) {
            return Vec::new();
        }
        self.stft(&pulses(s.f0), f); // self.re/im = [BINS][F]
        for buf in [&mut self.za, &mut self.zb] {
            buf.clear();
            buf.resize(n, 0.0);
        }
        let (re, im) = (&mut self.re[..n], &mut self.im[..n]);
        let (lh, th, ln, lr, phi) = (&s.lh[..n], &s.th[..n], &s.ln[..n], &s.lr[..n], &s.phi[..n]);
        // Harmonic branch: spec ·= exp(lh)·e^{iπ·tanh(θ)}.
        fastmath::simd(|| {
            for i in 0..n {
                let c = fastmath::tanh(th[i]) * PI;
                let (sin, cos) = fastmath::sincos(c);
                let mag = ex(lh[i]);
                let (rr, ri) = (cos * mag, sin * mag);
                let (a, b) = (re[i], im[i]);
                re[i] = a * rr - b * ri;
                im[i] = a * ri + b * rr;
            }
        });
        // Shaped noise: spec += exp(ln)·Z.
        let (za, zb) = (&mut self.za[..n], &mut self.zb[..n]);
        if noise.fill(za, zb) {
            fastmath::simd(|| {
                for i in 0..n {
                    let g = ex(ln[i]);
                    re[i] += za[i] * g;
                    im[i] += zb[i] * g;
                }
            });
        }
        // Free-phase branch: spec += exp(lr)·e^{iφ}.
        fastmath::sincos_slice(phi, zb, za);
        fastmath::simd(|| {
            for i in 0..n {
                let g = ex(lr[i]);
                re[i] += za[i] * g;
                im[i] += zb[i] * g;
            }
        });
        self.ola(f)
    }

    /// torch.stft(center=True, reflect padding, Hann/(n_fft/4)) of `x`, the first `frames`
    /// frames, into `self.re`/`self.im` as `[BINS][frames]`.
    fn stft(&mut self, x: &[f32], frames: usize) {
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
        for buf in [&mut self.re, &mut self.im] {
            buf.clear();
            buf.resize(BINS * frames, 0.0);
        }
        let mut buf = vec![0.0f32; N_FFT];
        let mut block = vec![Complex32::new(0.0, 0.0); BLOCK * BINS];
        let mut scratch = self.forward.make_scratch_vec();
        for k0 in (0..frames).step_by(BLOCK) {
            let count = BLOCK.min(frames - k0);
            for (kk, spectrum) in block.chunks_exact_mut(BINS).take(count).enumerate() {
                let start = (k0 + kk) * HOP;
                for (j, b) in buf.iter_mut().enumerate() {
                    *b = padded.get(start + j).copied().unwrap_or(0.0) * self.win_src[j];
                }
                if self.forward.process_with_scratch(&mut buf, spectrum, &mut scratch).is_err() {
                    spectrum.fill(Complex32::new(0.0, 0.0));
                }
            }
            for b in 0..BINS {
                let row = b * frames + k0;
                for kk in 0..count {
                    let v = block[kk * BINS + b];
                    self.re[row + kk] = v.re;
                    self.im[row + kk] = v.im;
                }
            }
        }
    }

    /// Inverse STFT of `self.re`/`self.im` (torch.istft center=True, length = frames·hop):
    /// irfft per frame, window, overlap-add, divide by the summed squared window.
    fn ola(&self, frames: usize) -> Vec<f32> {
        let total = (frames + K - 1) * HOP;
        let mut y = vec![0.0f32; total];
        let mut wsum = vec![0.0f32; total];
        let mut block = vec![Complex32::new(0.0, 0.0); BLOCK * BINS];
        let mut frame = vec![0.0f32; N_FFT];
        let mut scratch = self.inverse.make_scratch_vec();
        let scale = 1.0 / N_FFT as f32;
        for k0 in (0..frames).step_by(BLOCK) {
            let count = BLOCK.min(frames - k0);
            for b in 0..BINS {
                let row = b * frames + k0;
                for kk in 0..count {
                    block[kk * BINS + b] = Complex32::new(self.re[row + kk], self.im[row + kk]);
                }
            }
            for (kk, bins) in block.chunks_exact_mut(BINS).take(count).enumerate() {
                // irfft ignores the imaginary parts of DC and Nyquist; realfft insists they are 0.
                bins[0].im = 0.0;
                bins[BINS - 1].im = 0.0;
                if self.inverse.process_with_scratch(bins, &mut frame, &mut scratch).is_err() {
                    continue;
                }
                let base = (k0 + kk) * HOP;
                for ((y, f), w) in y[base..base + N_FFT].iter_mut().zip(&frame).zip(&self.win) {
                    *y += f * scale * w;
                }
            }
        }
        let w2: Vec<f32> = self.win.iter().map(|w| w * w).collect();
        for k in 0..frames {
            let base = k * HOP;
            for (s, w) in wsum[base..base + N_FFT].iter_mut().zip(&w2) {
                *s += w;
            }
        }
        let half = N_FFT / 2;
        y[half..half + frames * HOP].iter().zip(&wsum[half..]).map(|(y, w)| y * (1.0 / w.max(1e-11))).collect()
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
    // The phase is a running sum (sequential, in f64 like the reference); the rest vectorizes.
    let mut t = vec![0.0f32; f.len()];
    fastmath::simd(|| {
        let mut acc = 0.0f64;
        for (t, fi) in t.iter_mut().zip(&f) {
            acc += fi.max(VTHRESH) as f64;
            let phase = (acc * (1.0 / SR as f64)).fract();
            *t = (phase * (2.0 * std::f64::consts::PI)) as f32;
        }
    });
    let mut out = vec![0.0f32; f.len()];
    // t < 2π and H ≤ 11000/40 + ½, so every sine argument is inside fastmath's exact range.
    fastmath::simd(|| {
        for ((o, fi), t) in out.iter_mut().zip(&f).zip(&t) {
            let voiced = *fi > VTHRESH;
            let fv = fi.max(VTHRESH);
            let h = (FMAX / fv).floor() + 0.5;
            let s = fastmath::sincos(t * 0.5).0 * 2.0;
            let e = if s.abs() <= 2e-3 { h } else { fastmath::sincos(h * t).0 / s };
            *o = if voiced { e - 0.5 } else { 0.0 };
        }
    });
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
        // 37 frames: more than two scatter/gather blocks, the last one partial.
        let mut tail = Tail::new();
        let frames = 37;
        let x: Vec<f32> = (0..frames * HOP).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        tail.stft(&x, frames);
        // Undo the source window's 1/(n_fft/4) scaling: ola expects a Hann-analysed spectrum.
        for v in tail.re.iter_mut().chain(tail.im.iter_mut()) {
            *v *= N_FFT as f32 / 4.0;
        }
        let y = tail.ola(frames);
        assert_eq!(y.len(), x.len());
        let err =
            x[HOP..x.len() - HOP].iter().zip(&y[HOP..y.len() - HOP]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-4, "max error {err}");
    }

    #[test]
    fn gaussian_noise_is_standard() {
        let mut g = Gaussian::new(7);
        let (mut a, mut b) = (vec![0.0f32; 20_000], vec![0.0f32; 20_000]);
        assert!(g.fill(&mut a, &mut b));
        for xs in [&a, &b] {
            let mean = xs.iter().sum::<f32>() / xs.len() as f32;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / xs.len() as f32;
            let kurtosis = xs.iter().map(|x| (x - mean).powi(4)).sum::<f32>() / xs.len() as f32 / (var * var);
            assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
            assert!((kurtosis - 3.0).abs() < 0.2, "kurtosis {kurtosis}");
        }
        // The two halves of a pair are uncorrelated.
        let r = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>() / a.len() as f32;
        assert!(r.abs() < 0.03, "correlation {r}");
    }
}
