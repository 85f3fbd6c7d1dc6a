//! BeatNet (Heydari et al. 2021, CC-BY-4.0): a small CRNN that turns a log-filtered spectrogram
//! into per-frame beat and downbeat probabilities. Its activations carry what spectral flux
//! cannot: which metrical level listeners tap (a ballad's quarter notes, not its hi-hat eighths;
//! a two-beat's quarter notes, not its half notes).
//!
//! Front end (madmom's, as the model was trained): 22.05 kHz, 1411-sample frames every 441
//! samples (50 fps) centred on the hop, the model's window, |FFT| of the first 705 bins, the
//! model's 136-band logarithmic filterbank, log10(1 + x), and the positive first difference:
//! 272 features. The network itself ([`Crnn`]) runs in Rust on the weights of the ONNX files.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

use super::Error;
use super::crnn::{Crnn, FEATURES};
use crate::manifest::Manifest;
use crate::state::ModelState;

pub const HOP: usize = 441;
pub const WINDOW: usize = 1411;
const BINS: usize = WINDOW / 2;
const BANDS: usize = 136;

pub fn fps() -> f64 {
    f64::from(super::SAMPLE_RATE) / HOP as f64
}

/// Per-frame activations at [`fps`]: `beat` includes downbeats (madmom's convention).
#[derive(Debug, Clone, Default)]
pub struct Activations {
    pub beat: Vec<f32>,
    pub downbeat: Vec<f32>,
}

pub struct BeatNet {
    /// The three published models (each trained with a different data set held out); their
    /// activations are averaged, as madmom averages its ensembles, because single models
    /// disagree on ambiguous grooves (one tracks a two-beat's quarter notes, another its halves).
    nets: Vec<Crnn>,
    front: FrontEnd,
}

/// The model's spectral front end (see the module docs).
struct FrontEnd {
    /// The model's analysis window, as f32 (the features are computed in single precision).
    window: Vec<f32>,
    /// Filterbank as (first bin, weights) per band: each band covers a few contiguous bins.
    bands: Vec<(usize, Vec<f32>)>,
}

impl FrontEnd {
    /// From the model's window (`WINDOW` samples) and dense filterbank (`BINS × BANDS`, bin-major).
    fn new(window: &[f64], dense: &[f32]) -> Result<Self, String> {
        if window.len() != WINDOW || dense.len() != BINS * BANDS {
            return Err(format!(
                "BeatNet assets have {} window samples and {} filterbank weights; expected {WINDOW} and {}",
                window.len(),
                dense.len(),
                BINS * BANDS
            ));
        }
        let bands = (0..BANDS)
            .map(|b| {
                let first = (0..BINS).find(|&k| dense[k * BANDS + b] != 0.0).unwrap_or(0);
                let last = (0..BINS).rfind(|&k| dense[k * BANDS + b] != 0.0).map_or(first, |k| k + 1);
                (first, (first..last).map(|k| dense[k * BANDS + b]).collect())
            })
            .collect();
        Ok(Self { window: window.iter().map(|&w| w as f32).collect(), bands })
    }

    /// The 272 features of every frame, frame-major.
    ///
    /// The 1411-point transform has no fast real-input form (odd length), so two consecutive
    /// frames go through one complex FFT — one as the real part, one as the imaginary — and are
    /// separated by conjugate symmetry: half the transforms of one per frame.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let n = 1 + samples.len() / HOP;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let mut buf = vec![Complex32::default(); WINDOW];
        let mut scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        let frame = |t: usize, k: usize| -> f32 {
            let i = (t * HOP + k) as isize - (WINDOW / 2) as isize;
            let s = if i >= 0 && (i as usize) < samples.len() { samples[i as usize] } else { 0.0 };
            s * self.window[k]
        };
        let mut mags = vec![[0f32; BINS]; 2];
        let mut out = vec![0f32; n * FEATURES];
        let mut prev = vec![0f32; BANDS];
        for t0 in (0..n).step_by(2) {
            let pair = (n - t0).min(2);
            for (k, z) in buf.iter_mut().enumerate() {
                *z = Complex32::new(frame(t0, k), if pair == 2 { frame(t0 + 1, k) } else { 0.0 });
            }
            fft.process_with_scratch(&mut buf, &mut scratch);
            for k in 0..BINS {
                let (z, zc) = (buf[k], buf[(WINDOW - k) % WINDOW].conj());
                // X₀ = (Z[k] + conj Z[N−k]) / 2, X₁ = (Z[k] − conj Z[N−k]) / 2i.
                mags[0][k] = 0.5 * (z + zc).norm();
                mags[1][k] = 0.5 * (z - zc).norm();
            }
            for (j, m) in mags.iter().enumerate().take(pair) {
                let t = t0 + j;
                let row = &mut out[t * FEATURES..(t + 1) * FEATURES];
                for (b, (first, w)) in self.bands.iter().enumerate() {
                    let e: f32 = w.iter().zip(&m[*first..]).map(|(a, m)| a * m).sum();
                    let v = (1.0 + e).log10();
                    row[b] = v;
                    row[BANDS + b] = if t == 0 { 0.0 } else { (v - prev[b]).max(0.0) };
                    prev[b] = v;
                }
            }
        }
        out
    }
}

fn read_le<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
}

impl BeatNet {
    /// The first ONNX file of the manifest and the `filterbank.f32` / `window.f64` assets.
    pub fn load(manifest: &Manifest, progress: &dyn Fn(ModelState)) -> Result<Self, String> {
        let onnx: Vec<_> =
            manifest.files.iter().filter(|f| f.role.as_deref() == Some("onnx")).map(|f| manifest.path_of(f)).collect();
        if onnx.is_empty() {
            return Err("manifest lists no `onnx` file".into());
        }
        let asset = |name: &str| -> Result<Vec<u8>, String> {
            let path = manifest.dir.join(name);
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let front = FrontEnd::new(
            &read_le::<8, f64>(&asset("window.f64")?, f64::from_le_bytes),
            &read_le::<4, f32>(&asset("filterbank.f32")?, f32::from_le_bytes),
        )?;
        let nets = onnx
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Crnn::from_onnx(&bytes).map_err(|e| format!("{}: {e}", p.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let net = Self { nets, front };
        progress(ModelState::Warming);
        let warm = net.activations(&vec![0.0; WINDOW * 4]).map_err(|e| format!("warm-up failed: {e}"))?;
        if warm.beat.iter().any(|v| !v.is_finite()) {
            return Err("warm-up produced non-finite activations".into());
        }
        Ok(net)
    }

    /// The 272 features of every frame of a mono signal at 22.05 kHz, frame-major.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        self.front.features(samples)
    }

    /// Ensemble activations of a mono signal at 22.05 kHz, from a zero LSTM state; the models
    /// run side by side, one thread each.
    pub fn activations(&self, samples: &[f32]) -> Result<Activations, Error> {
        let feats = self.features(samples);
        let n = feats.len() / FEATURES;
        let probabilities = std::thread::scope(|scope| {
            let running: Vec<_> = self.nets.iter().map(|net| scope.spawn(|| net.probabilities(&feats))).collect();
            running
                .into_iter()
                .map(|h| h.join().map_err(|_| Error::Internal("BeatNet worker panicked".into())))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut acts = Activations { beat: vec![0.0; n], downbeat: vec![0.0; n] };
        let share = 1.0 / self.nets.len().max(1) as f32;
        for p in &probabilities {
            for (t, p) in p.iter().enumerate() {
                acts.beat[t] += share * (p[0] + p[1]);
                acts.downbeat[t] += share * p[1];
            }
        }
        Ok(acts)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The features by their definition: a direct DFT in f64 of each windowed frame.
    fn direct(samples: &[f32], window: &[f64], dense: &[f32], frames: usize) -> Vec<f32> {
        let mut out = vec![0f32; frames * FEATURES];
        let mut prev = vec![0f64; BANDS];
        for t in 0..frames {
            let x: Vec<f64> = (0..WINDOW)
                .map(|k| {
                    let i = (t * HOP + k) as isize - (WINDOW / 2) as isize;
                    let s = if i >= 0 && (i as usize) < samples.len() { f64::from(samples[i as usize]) } else { 0.0 };
                    s * window[k]
                })
                .collect();
            let mags: Vec<f64> = (0..BINS)
                .map(|b| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (k, v) in x.iter().enumerate() {
                        let a = -std::f64::consts::TAU * (b * k % WINDOW) as f64 / WINDOW as f64;
                        re += v * a.cos();
                        im += v * a.sin();
                    }
                    (re * re + im * im).sqrt()
                })
                .collect();
            for band in 0..BANDS {
                let e: f64 = (0..BINS).map(|k| f64::from(dense[k * BANDS + band]) * mags[k]).sum();
                let v = (1.0 + e).log10();
                out[t * FEATURES + band] = v as f32;
                out[t * FEATURES + BANDS + band] = if t == 0 { 0.0 } else { (v - prev[band]).max(0.0) as f32 };
                prev[band] = v;
            }
        }
        out
    }

    #[test]
    fn paired_transforms_give_each_frames_own_spectrum() {
        // A Hann window and triangular bands stand in for the model's assets.
        let window: Vec<f64> =
            (0..WINDOW).map(|k| 0.5 - 0.5 * (std::f64::consts::TAU * k as f64 / WINDOW as f64).cos()).collect();
        let mut dense = vec![0f32; BINS * BANDS];
        for band in 0..BANDS {
            for (j, k) in (band * 5..band * 5 + 7).enumerate() {
                if k < BINS {
                    dense[k * BANDS + band] = 1.0 - (j as f32 - 3.0).abs() / 4.0;
                }
            }
        }
        let front = FrontEnd::new(&window, &dense).unwrap();
        // A chirp with clicks: every frame differs from its neighbour. 7 frames: an odd count,
        // so the last one is transformed alone.
        let samples: Vec<f32> = (0..HOP * 6)
            .map(|i| {
                let t = i as f32 / 22_050.0;
                (std::f32::consts::TAU * (200.0 + 3000.0 * t) * t).sin() * 0.3 + if i % 700 == 0 { 0.9 } else { 0.0 }
            })
            .collect();
        let got = front.features(&samples);
        assert_eq!(got.len(), 7 * FEATURES);
        let want = direct(&samples, &window, &dense, 7);
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "max abs diff {worst}");
        assert!(want.iter().any(|v| *v > 0.5), "the signal has energy in the bands");
    }
}
