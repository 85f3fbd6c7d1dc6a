//! Silero VAD: speech probability per 512-sample chunk at 16 kHz, with recurrent state.
//!
//! Each call carries its own [`VadState`], so one engine serves any number of streams: a
//! stream keeps its state between calls and the model weights are shared.

use ort::value::Tensor;

use crate::actor::{Actor, EngineError, Timed, Worker};
use crate::manifest::Manifest;
use crate::onnx::OnnxSession;
use crate::state::ModelState;

pub const SAMPLE_RATE: u32 = 16_000;
pub const CHUNK: usize = 512;
/// The model sees the last 64 samples of the previous chunk before the new 512.
pub const CONTEXT: usize = 64;
const STATE_LEN: usize = 2 * 128;

#[derive(Clone, Debug, PartialEq)]
pub struct VadState {
    pub state: Vec<f32>,
    pub context: Vec<f32>,
}

impl Default for VadState {
    fn default() -> Self {
        Self { state: vec![0.0; STATE_LEN], context: vec![0.0; CONTEXT] }
    }
}

pub struct VadRequest {
    /// A whole number of 512-sample chunks.
    pub samples: Vec<f32>,
    pub state: VadState,
}

#[derive(Debug)]
pub struct VadResponse {
    pub probabilities: Vec<f32>,
    pub state: VadState,
}

struct VadWorker {
    onnx: OnnxSession,
}

impl Worker for VadWorker {
    type Request = VadRequest;
    type Response = VadResponse;

    fn handle(&mut self, req: VadRequest) -> Result<VadResponse, String> {
        if !req.samples.len().is_multiple_of(CHUNK) {
            return Err(format!("{} samples is not a multiple of {CHUNK}", req.samples.len()));
        }
        let VadState { mut state, mut context } = req.state;
        let mut probabilities = Vec::with_capacity(req.samples.len() / CHUNK);
        let mut frame = Vec::with_capacity(CONTEXT + CHUNK);
        for chunk in req.samples.chunks(CHUNK) {
            frame.clear();
            frame.extend_from_slice(&context);
            frame.extend_from_slice(chunk);
            let input = Tensor::from_array(([1usize, CONTEXT + CHUNK], frame.clone())).map_err(|e| e.to_string())?;
            let st = Tensor::from_array(([2usize, 1, 128], state.clone())).map_err(|e| e.to_string())?;
            let sr =
                Tensor::from_array((Vec::<usize>::new(), vec![i64::from(SAMPLE_RATE)])).map_err(|e| e.to_string())?;
            let out = self
                .onnx
                .session
                .run(ort::inputs!["input" => input, "state" => st, "sr" => sr])
                .map_err(|e| e.to_string())?;
            let (_, p) = out["output"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
            probabilities.push(*p.first().ok_or("empty VAD output")?);
            let (_, s) = out["stateN"].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
            state = s.to_vec();
            context = frame[frame.len() - CONTEXT..].to_vec();
        }
        Ok(VadResponse { probabilities, state: VadState { state, context } })
    }
}

pub struct SileroVad {
    actor: Actor<VadRequest, VadResponse>,
}

impl SileroVad {
    pub fn load(manifest: &Manifest, workers: usize, progress: &dyn Fn(ModelState)) -> Result<Self, String> {
        let path = manifest.file_with_role("onnx").ok_or("manifest lists no `onnx` file")?;
        let mut pool = Vec::new();
        for _ in 0..workers.max(1) {
            // One intra-op thread: the graph is tiny and called per 32 ms chunk; more threads
            // only add synchronisation cost.
            pool.push(VadWorker { onnx: OnnxSession::open(&path, 1)? });
        }
        let vad = Self { actor: Actor::spawn(&manifest.name, pool, 256)? };
        progress(ModelState::Warming);
        let warm = vad
            .actor
            .call_blocking(VadRequest { samples: vec![0.0; CHUNK], state: VadState::default() })
            .map_err(|e| e.to_string())?;
        let p = warm.value.probabilities.first().copied().unwrap_or(f32::NAN);
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("warm-up gave an invalid probability {p}"));
        }
        Ok(vad)
    }

    pub async fn probabilities(&self, samples: Vec<f32>, state: VadState) -> Result<Timed<VadResponse>, EngineError> {
        self.actor.call(VadRequest { samples, state }).await
    }

    pub fn probabilities_blocking(
        &self,
        samples: Vec<f32>,
        state: VadState,
    ) -> Result<Timed<VadResponse>, EngineError> {
        self.actor.call_blocking(VadRequest { samples, state })
    }
}
