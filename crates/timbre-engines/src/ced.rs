//! CED-tiny AudioSet tagger: 16 kHz waveform windows in, 527 label probabilities out.
//!
//! The graph ends in a Sigmoid, so `logits` are already probabilities; applying a second sigmoid
//! (as the `soundevents` crate does) squeezes every score into 0.5–0.73.

use std::sync::Arc;

use ort::value::Tensor;

use crate::actor::{Actor, EngineError, Timed, Worker};
use crate::manifest::Manifest;
use crate::onnx::OnnxSession;
use crate::state::ModelState;

pub const SAMPLE_RATE: u32 = 16_000;
const INPUT: &str = "waveform";
const OUTPUT: &str = "logits";

/// A batch of equal-length windows, row-major `[batch, len]`.
pub struct Windows {
    pub samples: Vec<f32>,
    pub batch: usize,
}

struct CedWorker {
    onnx: OnnxSession,
}

impl Worker for CedWorker {
    type Request = Windows;
    type Response = Vec<f32>;

    fn handle(&mut self, w: Windows) -> Result<Vec<f32>, String> {
        if w.batch == 0 || w.samples.is_empty() || !w.samples.len().is_multiple_of(w.batch) {
            return Err(format!("{} samples do not split into {} windows", w.samples.len(), w.batch));
        }
        let len = w.samples.len() / w.batch;
        let input = Tensor::from_array(([w.batch, len], w.samples)).map_err(|e| e.to_string())?;
        let outputs = self.onnx.session.run(ort::inputs![INPUT => input]).map_err(|e| e.to_string())?;
        let (_, scores) = outputs[OUTPUT].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        Ok(scores.to_vec())
    }
}

/// Worker sessions and intra-op threads per session, `(workers, threads)`, for a `threads`
/// setting (0 = the default) on `cores` cores. An explicit thread count is one session with that
/// many threads. By default one single-threaded session per core (at most 8): a timeline's
/// windows are independent, and scoring them side by side beats splitting each window's
/// operators across the cores (docs/benchmarks.md, sound tagging: the 10 s blocks gain 1.4× from
/// a second intra-op thread, and on a loaded machine spinning intra-op threads lose more).
pub fn pool_shape(threads: usize, cores: usize) -> (usize, usize) {
    if threads > 0 { (1, threads) } else { (cores.clamp(1, 8), 1) }
}

pub struct CedTagger {
    actor: Actor<Windows, Vec<f32>>,
    pub labels: Arc<Vec<String>>,
}

impl CedTagger {
    pub fn load(
        manifest: &Manifest,
        threads: usize,
        workers: usize,
        progress: &dyn Fn(ModelState),
    ) -> Result<Self, String> {
        let path = manifest.file_with_role("onnx").ok_or("manifest lists no `onnx` file")?;
        let labels = manifest.read_labels()?;
        let mut pool = Vec::new();
        for _ in 0..workers.max(1) {
            // Basic rewrites: the int8 weights' `DequantizeLinear` nodes run as the graph writes
            // them, feeding f32 products; the higher levels' fusions left the windows no faster
            // while doubling the session's creation (docs/benchmarks.md, sound tagging,
            // 2026-12-08).
            let onnx = OnnxSession::open_basic(&path, threads)?;
            if !onnx.has_output(OUTPUT) {
                return Err(format!("{} has no `{OUTPUT}` output", path.display()));
            }
            pool.push(CedWorker { onnx });
        }
        let actor = Actor::spawn(&manifest.name, pool, 64)?;
        let tagger = Self { actor, labels: Arc::new(labels) };
        progress(ModelState::Warming);
        // Warm-up: one real inference, and the label count must match the model's output.
        let warm = tagger
            .actor
            .call_blocking(Windows { samples: vec![0.0; SAMPLE_RATE as usize], batch: 1 })
            .map_err(|e| e.to_string())?;
        if warm.value.len() != tagger.labels.len() {
            return Err(format!(
                "model gives {} scores but the labels file has {} labels",
                warm.value.len(),
                tagger.labels.len()
            ));
        }
        Ok(tagger)
    }

    /// Worker sessions: how many batches can run at once.
    pub fn workers(&self) -> usize {
        self.actor.workers()
    }

    /// Scores for each window: `batch × labels` probabilities.
    pub async fn score(&self, windows: Windows) -> Result<Timed<Vec<f32>>, EngineError> {
        self.actor.call(windows).await
    }

    pub fn score_blocking(&self, windows: Windows) -> Result<Timed<Vec<f32>>, EngineError> {
        self.actor.call_blocking(windows)
    }
}

#[cfg(test)]
mod tests {
    use super::pool_shape;

    #[test]
    fn one_single_threaded_session_per_core_unless_threads_are_set() {
        assert_eq!(pool_shape(0, 2), (2, 1));
        assert_eq!(pool_shape(0, 1), (1, 1));
        assert_eq!(pool_shape(0, 64), (8, 1));
        assert_eq!(pool_shape(3, 2), (1, 3));
    }
}
