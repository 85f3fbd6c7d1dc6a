//! BeatNet (Heydari et al. 2021, CC-BY-4.0): a small CRNN that turns a log-filtered spectrogram
//! into per-frame beat and downbeat probabilities. Its activations carry what spectral flux
//! cannot: which metrical level listeners tap (a ballad's quarter notes, not its hi-hat eighths;
//! a two-beat's quarter notes, not its half notes).
//!
//! Front end (madmom's, as the model was trained): 22.05 kHz, 1411-sample frames every 441
//! samples (50 fps) centred on the hop, the model's window, |FFT| of the first 705 bins, the
//! model's 136-band logarithmic filterbank, log10(1 + x), and the positive first difference:
//! 272 features. The ONNX graph takes one frame and the LSTM state and returns
//! (beat, downbeat, none) probabilities and the next state.

use std::sync::{Mutex, PoisonError};

use ort::value::Tensor;
use realfft::RealFftPlanner;

use super::Error;
use crate::manifest::Manifest;
use crate::onnx::OnnxSession;
use crate::state::ModelState;

pub const HOP: usize = 441;
pub const WINDOW: usize = 1411;
const BINS: usize = WINDOW / 2;
const BANDS: usize = 136;
const FEATURES: usize = 2 * BANDS;
const STATE: usize = 2 * 150;

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
    sessions: Vec<Mutex<OnnxSession>>,
    window: Vec<f64>,
    /// Filterbank as (first bin, weights) per band: each band covers a few contiguous bins.
    bands: Vec<(usize, Vec<f32>)>,
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
        let window = read_le::<8, f64>(&asset("window.f64")?, f64::from_le_bytes);
        let dense = read_le::<4, f32>(&asset("filterbank.f32")?, f32::from_le_bytes);
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
        // One intra-op thread: the graph is tiny and runs once per frame; a pool only adds latency.
        let sessions = onnx.iter().map(|p| OnnxSession::open(p, 1).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        let net = Self { sessions, window, bands };
        progress(ModelState::Warming);
        let warm = net.activations(&vec![0.0; WINDOW * 4]).map_err(|e| format!("warm-up failed: {e}"))?;
        if warm.beat.iter().any(|v| !v.is_finite()) {
            return Err("warm-up produced non-finite activations".into());
        }
        Ok(net)
    }

    /// The 272 features of every frame of a mono signal at 22.05 kHz, frame-major.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let n = 1 + samples.len() / HOP;
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(WINDOW);
        let (mut input, mut spectrum, mut scratch) =
            (fft.make_input_vec(), fft.make_output_vec(), fft.make_scratch_vec());
        let mut out = vec![0f32; n * FEATURES];
        let mut mags = vec![0f32; BINS];
        let mut prev = vec![0f32; BANDS];
        for t in 0..n {
            let start = (t * HOP) as isize - (WINDOW / 2) as isize;
            for (k, slot) in input.iter_mut().enumerate() {
                let i = start + k as isize;
                let s = if i >= 0 && (i as usize) < samples.len() { f64::from(samples[i as usize]) } else { 0.0 };
                *slot = s * self.window[k];
            }
            if fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).is_err() {
                continue;
            }
            for (m, c) in mags.iter_mut().zip(&spectrum[..BINS]) {
                *m = (c.re * c.re + c.im * c.im).sqrt() as f32;
            }
            let row = &mut out[t * FEATURES..(t + 1) * FEATURES];
            for (b, (first, w)) in self.bands.iter().enumerate() {
                let e: f32 = w.iter().zip(&mags[*first..]).map(|(a, m)| a * m).sum();
                let v = (1.0 + e).log10();
                row[b] = v;
                row[BANDS + b] = if t == 0 { 0.0 } else { (v - prev[b]).max(0.0) };
                prev[b] = v;
            }
        }
        out
    }

    /// Ensemble activations of a mono signal at 22.05 kHz, frame by frame with the LSTM state.
    pub fn activations(&self, samples: &[f32]) -> Result<Activations, Error> {
        let feats = self.features(samples);
        let n = feats.len() / FEATURES;
        let mut acts = Activations { beat: vec![0.0; n], downbeat: vec![0.0; n] };
        let share = 1.0 / self.sessions.len().max(1) as f32;
        for session in &self.sessions {
            let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
            let (mut hidden, mut cell) = (vec![0f32; STATE], vec![0f32; STATE]);
            let fail = |e: ort::Error| Error::Internal(format!("BeatNet inference: {e}"));
            for t in 0..n {
                let f = Tensor::from_array(([1usize, 1, FEATURES], feats[t * FEATURES..(t + 1) * FEATURES].to_vec()))
                    .map_err(fail)?;
                let h = Tensor::from_array(([2usize, 1, 150], std::mem::take(&mut hidden))).map_err(fail)?;
                let c = Tensor::from_array(([2usize, 1, 150], std::mem::take(&mut cell))).map_err(fail)?;
                let outputs =
                    session.session.run(ort::inputs!["features" => f, "hidden" => h, "cell" => c]).map_err(fail)?;
                let (_, p) = outputs["probabilities"].try_extract_tensor::<f32>().map_err(fail)?;
                acts.beat[t] += share * (p[0] + p[1]);
                acts.downbeat[t] += share * p[1];
                hidden = outputs["hidden_out"].try_extract_tensor::<f32>().map_err(fail)?.1.to_vec();
                cell = outputs["cell_out"].try_extract_tensor::<f32>().map_err(fail)?.1.to_vec();
            }
        }
        Ok(acts)
    }
}
