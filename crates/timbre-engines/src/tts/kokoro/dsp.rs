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

/// Columns of one frame of network output: the five spectral parts side by side.
pub const COLUMNS: usize = 5 * BINS;

/// The network's outputs for one utterance, frame-major: frame `k` is
/// `frames[k·COLUMNS..(k+1)·COLUMNS]`, its `lh, θ, ln, lr, φ` (`BINS` each) one after another
/// (the head's own layout, see [`super::layout`]); `f0[F]`.
pub struct Spectral<'a> {
    pub frames: &'a [f32],
    pub f0: &'a [f32],
}

/// Bin-major planes (`[BINS][F]` each, the original model's outputs) in the frame-major layout
/// of [`Spectral::frames`], for a model the load-time edit left as it was.
pub fn frames_from_planes(planes: [&[f32]; 5], frames: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; COLUMNS * frames];
    for (p, plane) in planes.iter().enumerate() {
        for (b, row) in plane.chunks_exact(frames.max(1)).take(BINS).enumerate() {
            for (k, v) in row.iter().enumerate() {
                out[k * COLUMNS + p * BINS + b] = *v;
            }
        }
    }
    out
}

/// Standard normal numbers for the noise branch, a frame at a time.
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

/// FFT plans, windows and one frame's scratch, built once per worker and reused for every
/// sentence.
pub struct Tail {
    win: Vec<f32>,
    win_src: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    scratch: Scratch,
}

/// One frame at a time: everything below stays in the first-level cache.
struct Scratch {
    /// Windowed samples in, time-domain frame out.
    samples: Vec<f32>,
    spectrum: Vec<Complex32>,
    fft: Vec<Complex32>,
    /// The frame's spectrum, real and imaginary parts apart so the element-wise stages vectorize.
    re: Vec<f32>,
    im: Vec<f32>,
    /// Noise draws (or cos/sin of φ).
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
        let forward = planner.plan_fft_forward(N_FFT);
        let inverse = planner.plan_fft_inverse(N_FFT);
        let fft_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        let scratch = Scratch {
            samples: vec![0.0; N_FFT],
            spectrum: vec![Complex32::new(0.0, 0.0); BINS],
            fft: vec![Complex32::new(0.0, 0.0); fft_len],
            re: vec![0.0; BINS],
            im: vec![0.0; BINS],
            za: vec![0.0; BINS],
            zb: vec![0.0; BINS],
        };
        Self { win, win_src, forward, inverse, scratch }
    }

    /// Waveform for `frames` frames of network output: per frame, the pulse train's STFT
    /// (torch.stft, center=True, reflect padding, Hann/(n_fft/4)), the three branches, and the
    /// inverse (torch.istft, center=True, length = frames·hop: irfft, window, overlap-add,
    /// divided by the summed squared window).
    pub fn synth(&mut self, s: &Spectral<'_>, noise: &mut dyn Noise) -> Vec<f32> {
        let f = s.f0.len();
        if f == 0 || s.frames.len() != COLUMNS * f {
            return Vec::new();
        }
        let padded = reflect_pad(&pulses(s.f0), N_FFT / 2);
        let total = (f + K - 1) * HOP;
        let mut y = vec![0.0f32; total];
        let scale = 1.0 / N_FFT as f32;
        let sc = &mut self.scratch;
        for (k, row) in s.frames.chunks_exact(COLUMNS).enumerate() {
            let start = k * HOP;
            let source = &padded[start..start + N_FFT];
            // Unvoiced stretches of the pulse train are exact zeros (a quarter of the frames of
            // ordinary speech): their spectrum is zero, and so is the harmonic branch.
            let voiced = source.iter().any(|v| *v != 0.0);
            if voiced {
                for ((b, x), w) in sc.samples.iter_mut().zip(source).zip(&self.win_src) {
                    *b = x * w;
                }
                if self.forward.process_with_scratch(&mut sc.samples, &mut sc.spectrum, &mut sc.fft).is_err() {
                    sc.spectrum.fill(Complex32::new(0.0, 0.0));
                }
                for ((c, re), im) in sc.spectrum.iter().zip(sc.re.iter_mut()).zip(sc.im.iter_mut()) {
                    (*re, *im) = (c.re, c.im);
                }
            } else {
                sc.re.fill(0.0);
                sc.im.fill(0.0);
            }
            let (lh, rest) = row.split_at(BINS);
            let (th, rest) = rest.split_at(BINS);
            let (ln, rest) = rest.split_at(BINS);
            let (lr, phi) = rest.split_at(BINS);
            branches(sc, voiced, [lh, th, ln, lr, phi], noise);
            for ((c, re), im) in sc.spectrum.iter_mut().zip(&sc.re).zip(&sc.im) {
                *c = Complex32::new(*re, *im);
            }
            // irfft ignores the imaginary parts of DC and Nyquist; realfft insists they are 0.
            sc.spectrum[0].im = 0.0;
            sc.spectrum[BINS - 1].im = 0.0;
            if self.inverse.process_with_scratch(&mut sc.spectrum, &mut sc.samples, &mut sc.fft).is_err() {
                continue;
            }
            for ((y, x), w) in y[start..start + N_FFT].iter_mut().zip(&sc.samples).zip(&self.win) {
                *y += x * scale * w;
            }
        }
        let mut wsum = vec![0.0f32; total];
        for k in 0..f {
            for (s, w) in wsum[k * HOP..k * HOP + N_FFT].iter_mut().zip(&self.win) {
                *s += w * w;
            }
        }
        let half = N_FFT / 2;
        y[half..half + f * HOP].iter().zip(&wsum[half..]).map(|(y, w)| y * (1.0 / w.max(1e-11))).collect()
    }
}

/// One frame's spectrum (the pulse train's, in `sc.re`/`sc.im`) through the three branches:
/// `S·exp(lh)·e^{iπ·tanh(θ)} + exp(ln)·Z + exp(lr)·e^{iφ}`.
/// `voiced` false: the pulse train's spectrum is zero, and the harmonic product is skipped.
fn branches(sc: &mut Scratch, voiced: bool, parts: [&[f32]; 5], noise: &mut dyn Noise) {
    let (re, im) = (&mut sc.re[..BINS], &mut sc.im[..BINS]);
    let [lh, th, ln, lr, phi] = parts.map(|p| &p[..BINS]);
    if voiced {
        fastmath::simd(
            #[inline(always)]
            || {
                for i in 0..BINS {
                    let c = fastmath::tanh(th[i]) * PI;
                    let (sin, cos) = fastmath::sincos(c);
                    let mag = ex(lh[i]);
                    let (rr, ri) = (cos * mag, sin * mag);
                    let (a, b) = (re[i], im[i]);
                    re[i] = a * rr - b * ri;
                    im[i] = a * ri + b * rr;
                }
            },
        );
    }
    let (za, zb) = (&mut sc.za[..BINS], &mut sc.zb[..BINS]);
    if noise.fill(za, zb) {
        fastmath::simd(
            #[inline(always)]
            || {
                for i in 0..BINS {
                    let g = ex(ln[i]);
                    re[i] += za[i] * g;
                    im[i] += zb[i] * g;
                }
            },
        );
    }
    fastmath::sincos_slice(phi, zb, za);
    fastmath::simd(
        #[inline(always)]
        || {
            for i in 0..BINS {
                let g = ex(lr[i]);
                re[i] += za[i] * g;
                im[i] += zb[i] * g;
            }
        },
    );
}

/// `x` with `half` samples of reflection (numpy's `reflect`, no edge repeat) on each side.
fn reflect_pad(x: &[f32], half: usize) -> Vec<f32> {
    if x.is_empty() {
        return vec![0.0; 2 * half];
    }
    let n = x.len() as isize;
    (0..x.len() + 2 * half)
        .map(|i| {
            let j = i as isize - half as isize;
            let j = if j < 0 {
                -j
            } else if j >= n {
                2 * (n - 1) - j
            } else {
                j
            };
            x.get(j.clamp(0, n - 1) as usize).copied().unwrap_or(0.0)
        })
        .collect()
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
    fastmath::simd(
        #[inline(always)]
        || {
            let mut acc = 0.0f64;
            for (t, fi) in t.iter_mut().zip(&f) {
                acc += fi.max(VTHRESH) as f64;
                let phase = (acc * (1.0 / SR as f64)).fract();
                *t = (phase * (2.0 * std::f64::consts::PI)) as f32;
            }
        },
    );
    let mut out = vec![0.0f32; f.len()];
    // t < 2π and H ≤ 11000/40 + ½, so every sine argument is inside fastmath's exact range.
    fastmath::simd(
        #[inline(always)]
        || {
            for ((o, fi), t) in out.iter_mut().zip(&f).zip(&t) {
                let voiced = *fi > VTHRESH;
                let fv = fi.max(VTHRESH);
                let h = (FMAX / fv).floor() + 0.5;
                let s = fastmath::sincos(t * 0.5).0 * 2.0;
                let e = if s.abs() <= 2e-3 { h } else { fastmath::sincos(h * t).0 / s };
                *o = if voiced { e - 0.5 } else { 0.0 };
            }
        },
    );
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

    /// Frame-major network output with every frame alike.
    fn constant_frames(frames: usize, lh: f32, th: f32, ln: f32, lr: f32, phi: f32) -> Vec<f32> {
        let mut row = Vec::with_capacity(COLUMNS);
        for v in [lh, th, ln, lr, phi] {
            row.extend(std::iter::repeat_n(v, BINS));
        }
        row.repeat(frames)
    }

    #[test]
    fn unit_harmonic_gain_gives_back_the_pulse_train() {
        // exp(lh) = n_fft/4 undoes the source window's scaling, tanh(0) = 0 leaves the phase, the
        // free-phase branch is exp(-87) ≈ 0 and the noise is off: the inverse STFT of the pulse
        // train's STFT is the pulse train (inside, away from the reflected edges).
        // 37 frames of a gliding F0 with an unvoiced stretch.
        let frames = 37;
        let f0: Vec<f32> =
            (0..frames).map(|k| if (20..24).contains(&k) { 0.0 } else { 110.0 + 5.0 * k as f32 }).collect();
        let spec = constant_frames(frames, (N_FFT as f32 / 4.0).ln(), 0.0, 0.0, -87.0, 0.0);
        let y = Tail::new().synth(&Spectral { frames: &spec, f0: &f0 }, &mut Silent);
        let x = pulses(&f0);
        assert_eq!(y.len(), x.len());
        let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err =
            x[HOP..x.len() - HOP].iter().zip(&y[HOP..y.len() - HOP]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 1e-4 * peak, "max error {err} (peak {peak})");
    }

    #[test]
    fn the_free_phase_branch_alone_is_a_cosine() {
        // Only bin b at exp(lr) = 1 and φ = 0, nothing else: every frame's irfft is
        // (2/n_fft)·cos(2π·b·n/n_fft). With b a multiple of 4 (n_fft = 4 hops) the frames overlap
        // in phase; the overlap-add sums the Hann window (2 at every sample, hop n_fft/4) and
        // divides by its summed square (1.5): inside, a cosine of amplitude (2/n_fft)·(4/3).
        let (frames, b) = (12, 48);
        let mut spec = constant_frames(frames, -87.0, 0.0, 0.0, -87.0, 0.0);
        for k in 0..frames {
            spec[k * COLUMNS + 3 * BINS + b] = 0.0;
        }
        let y = Tail::new().synth(&Spectral { frames: &spec, f0: &[0.0; 12] }, &mut Silent);
        assert_eq!(y.len(), frames * HOP);
        let amp = 2.0 / N_FFT as f64 * 4.0 / 3.0;
        // Every output sample with all four overlapping frames present.
        for (n, v) in y.iter().enumerate().take(frames * HOP - N_FFT / 2).skip(HOP) {
            let want = amp * (2.0 * std::f64::consts::PI * (b * n) as f64 / N_FFT as f64).cos();
            assert!((f64::from(*v) - want).abs() < 1e-6 * amp * 1e3, "sample {n}: {v} vs {want}");
        }
    }

    #[test]
    fn planes_become_frames() {
        // Plane p, bin b, frame k holds 1000·p + 10·b + k.
        let frames = 3;
        let planes: Vec<Vec<f32>> = (0..5)
            .map(|p| (0..BINS * frames).map(|i| (1000 * p + 10 * (i / frames) + i % frames) as f32).collect())
            .collect();
        let f = frames_from_planes([&planes[0], &planes[1], &planes[2], &planes[3], &planes[4]], frames);
        assert_eq!(f.len(), COLUMNS * frames);
        for k in 0..frames {
            for p in 0..5 {
                for b in [0, 1, 300, BINS - 1] {
                    assert_eq!(f[k * COLUMNS + p * BINS + b], (1000 * p + 10 * b + k) as f32);
                }
            }
        }
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
