//! Stream classifiers (family `stream-classifier`): hand keypoints in, one label per frame or
//! window out — Signify's sign-letter LSTM, or any ONNX sequence model with a manifest.
//!
//! The engine is shared: worker threads own ONNX sessions behind a bounded queue
//! ([`crate::actor`]). Everything per-connection — window buffer, recurrent state, smoothing
//! history — is a [`StreamSession`] that lives with the connection and travels with each
//! request, so one engine serves any number of streams.
//!
//! A model as small as Signify's answers in microseconds, less than the hop to a worker thread
//! and back (two context switches per frame, the largest cost in the keypoint-stream profile).
//! Such a model also gets sessions that run on the caller's thread ([`StreamClassifier::infer`]);
//! the actor stays for slower models and for when every inline session is busy.

mod logic;
mod spec;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ort::value::{DynValue, Tensor};

pub use logic::{ModelInput, Prediction, Smoother, SmoothingConfig, StreamSession, normalize_hand, softmax, top};
pub use spec::{
    COORDS, HAND, KEYPOINTS, Layout, Method, Normalize, Scores, Smoothing, StateSpec, StreamSpec, resolve_shape,
};

use crate::actor::{Actor, EngineError, Timed, Worker};
use crate::manifest::Manifest;
use crate::onnx::OnnxSession;
use crate::state::ModelState;

/// Requests that may wait for a worker; beyond it a frame is answered `overloaded` at once.
const QUEUE: usize = 1024;
/// Worker threads (one single-threaded ONNX session each): frames are tiny, so parallelism
/// comes from serving many streams at once, not from splitting one inference.
const MAX_WORKERS: usize = 8;
/// A model whose slowest warm inference stays under this runs on the caller's (async) thread:
/// well inside the time a task may hold a runtime thread without stalling its neighbours.
const INLINE_BELOW: Duration = Duration::from_micros(500);
/// Warm inferences timed to decide whether the model runs inline.
const PROBES: usize = 16;

/// The model's answer: scores (one per label, as the graph emits them) and new state.
#[derive(Clone, Debug)]
pub struct ModelOutput {
    pub scores: Vec<f32>,
    pub state: Vec<Vec<f32>>,
}

/// Names and concrete shapes, resolved once from the manifest and the graph.
#[derive(Clone, Debug)]
struct Plan {
    input: String,
    input_shape: Vec<usize>,
    output: String,
    /// (input name, output name, shape) per state tensor.
    states: Vec<(String, String, Vec<usize>)>,
}

impl Plan {
    fn resolve(spec: &StreamSpec, onnx: &OnnxSession, path: &Path) -> Result<Self, String> {
        let inputs = onnx.inputs();
        let declared = |name: &str| {
            inputs.iter().find(|i| i.name == name).map(|i| i.shape.clone()).ok_or_else(|| {
                let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                format!("{} has no input `{name}` (inputs: {names:?})", path.display())
            })
        };
        let input_shape = match &spec.input_shape {
            Some(shape) => resolve_shape(shape, spec.input_len(), "stream.input_shape")?,
            None => resolve_shape(&declared(&spec.input)?, spec.input_len(), &format!("input `{}`", spec.input))?,
        };
        if input_shape.iter().product::<usize>() != spec.input_len() {
            return Err(format!("input shape {input_shape:?} does not hold {} keypoint values", spec.input_len()));
        }
        let outputs: Vec<String> = onnx.session.outputs().iter().map(|o| o.name().to_string()).collect();
        let output = match &spec.output {
            Some(name) if outputs.contains(name) => name.clone(),
            Some(name) => return Err(format!("{} has no output `{name}` (outputs: {outputs:?})", path.display())),
            None => outputs.first().cloned().ok_or("the model has no outputs")?,
        };
        let mut states = Vec::new();
        for s in &spec.state {
            if !outputs.contains(&s.output) {
                return Err(format!("{} has no state output `{}` (outputs: {outputs:?})", path.display(), s.output));
            }
            // A dynamic axis of a state tensor is the batch: 1.
            let shape: Vec<usize> = match &s.shape {
                Some(shape) => shape.iter().map(|&d| usize::try_from(d).unwrap_or(1).max(1)).collect(),
                None => declared(&s.input)?.iter().map(|&d| usize::try_from(d).unwrap_or(1).max(1)).collect(),
            };
            states.push((s.input.clone(), s.output.clone(), shape));
        }
        if inputs.len() != 1 + states.len() {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "the model takes inputs {names:?}; the manifest feeds `{}` and {} state(s)",
                spec.input,
                states.len()
            ));
        }
        Ok(Self { input: spec.input.clone(), input_shape, output, states })
    }

    fn zero_state(&self) -> Vec<Vec<f32>> {
        self.states.iter().map(|(_, _, shape)| vec![0.0; shape.iter().product()]).collect()
    }
}

struct StreamWorker {
    onnx: OnnxSession,
    plan: Arc<Plan>,
}

fn f32_tensor(shape: &[usize], values: Vec<f32>) -> Result<DynValue, String> {
    Tensor::from_array((shape.to_vec(), values)).map(|t| t.into_dyn()).map_err(|e| e.to_string())
}

impl Worker for StreamWorker {
    type Request = ModelInput;
    type Response = ModelOutput;

    fn handle(&mut self, req: ModelInput) -> Result<ModelOutput, String> {
        let plan = &self.plan;
        if req.keypoints.len() != plan.input_shape.iter().product::<usize>() || req.state.len() != plan.states.len() {
            return Err(format!(
                "{} keypoint values and {} states do not fit the model",
                req.keypoints.len(),
                req.state.len()
            ));
        }
        let mut inputs: Vec<(String, DynValue)> = Vec::with_capacity(1 + plan.states.len());
        inputs.push((plan.input.clone(), f32_tensor(&plan.input_shape, req.keypoints)?));
        for ((name, _, shape), values) in plan.states.iter().zip(req.state) {
            inputs.push((name.clone(), f32_tensor(shape, values)?));
        }
        let out = self.onnx.session.run(inputs).map_err(|e| e.to_string())?;
        let (_, scores) = out[plan.output.as_str()].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        let scores = scores.to_vec();
        let mut state = Vec::with_capacity(plan.states.len());
        for (_, output, shape) in &plan.states {
            let (_, s) = out[output.as_str()].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
            if s.len() != shape.iter().product::<usize>() {
                return Err(format!("state `{output}` has {} values, expected shape {shape:?}", s.len()));
            }
            state.push(s.to_vec());
        }
        Ok(ModelOutput { scores, state })
    }
}

pub struct StreamClassifier {
    actor: Actor<ModelInput, ModelOutput>,
    /// Sessions for the caller's thread; empty when the model is too slow for that.
    inline: Vec<Mutex<StreamWorker>>,
    inference_seconds: metrics::Histogram,
    plan: Arc<Plan>,
    pub spec: Arc<StreamSpec>,
    pub labels: Arc<Vec<String>>,
}

impl StreamClassifier {
    /// Build `workers` sessions (0 = one per core, at most 8), then prove the model with one
    /// inference on zeros: the score count must match the labels and every value be finite.
    pub fn load(manifest: &Manifest, workers: usize, progress: &dyn Fn(ModelState)) -> Result<Self, String> {
        let spec = Arc::new(StreamSpec::from_manifest(manifest)?);
        let path = manifest.file_with_role("onnx").ok_or("manifest lists no `onnx` file")?;
        let labels = manifest.read_labels()?;
        let workers = match workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS),
            n => n,
        };
        let mut pool = Vec::new();
        let mut plan = None;
        for _ in 0..workers {
            let onnx = OnnxSession::open(&path, 1)?;
            let p = match &plan {
                Some(p) => Arc::clone(p),
                None => Arc::clone(plan.insert(Arc::new(Plan::resolve(&spec, &onnx, &path)?))),
            };
            pool.push(StreamWorker { onnx, plan: p });
        }
        let plan = plan.ok_or("no worker")?;
        let mut engine = Self {
            actor: Actor::spawn(&manifest.name, pool, QUEUE)?,
            inline: Vec::new(),
            inference_seconds: metrics::histogram!("timbre_engine_inference_seconds", "engine" => manifest.name.clone()),
            plan,
            spec,
            labels: Arc::new(labels),
        };
        progress(ModelState::Warming);
        let zeros = || ModelInput { keypoints: vec![0.0; engine.spec.input_len()], state: engine.plan.zero_state() };
        let warm = engine.actor.call_blocking(zeros()).map_err(|e| format!("warm-up failed: {e}"))?.value;
        if warm.scores.len() != engine.labels.len() {
            return Err(format!(
                "the model gives {} scores but the labels file has {} labels",
                warm.scores.len(),
                engine.labels.len()
            ));
        }
        if warm.scores.iter().chain(warm.state.iter().flatten()).any(|v| !v.is_finite()) {
            return Err("warm-up produced non-finite values".into());
        }
        // A slow model is known at its first slow probe: no need to time the rest.
        let mut slowest = Duration::ZERO;
        for _ in 0..PROBES {
            let probe = engine.actor.call_blocking(zeros()).map_err(|e| format!("warm-up failed: {e}"))?;
            slowest = slowest.max(probe.inference);
            if slowest >= INLINE_BELOW {
                break;
            }
        }
        if slowest < INLINE_BELOW {
            for _ in 0..workers {
                let onnx = OnnxSession::open(&path, 1)?;
                engine.inline.push(Mutex::new(StreamWorker { onnx, plan: Arc::clone(&engine.plan) }));
            }
        }
        tracing::debug!(model = %manifest.name, slowest_us = slowest.as_micros() as u64, inline = !engine.inline.is_empty(), "stream model warm");
        Ok(engine)
    }

    /// A fresh per-connection state for this model.
    pub fn session(&self) -> StreamSession {
        StreamSession::new(Arc::clone(&self.spec), self.plan.zero_state())
    }

    /// On a free inline session when the model is fast enough, else through the actor's queue.
    pub async fn infer(&self, input: ModelInput) -> Result<Timed<ModelOutput>, EngineError> {
        // The guard must be gone before any await: it is not `Send`.
        let input = match self.inline.iter().find_map(|slot| slot.try_lock().ok()) {
            Some(mut worker) => return self.run_inline(&mut worker, input),
            None => input,
        };
        self.actor.call(input).await
    }

    fn run_inline(&self, worker: &mut StreamWorker, input: ModelInput) -> Result<Timed<ModelOutput>, EngineError> {
        // Caught inside the lock, so the mutex is not poisoned by a panicking call.
        let (result, inference) = crate::actor::handle_guarded(worker, input);
        self.inference_seconds.record(inference.as_secs_f64());
        match result {
            Ok(value) => Ok(Timed { value, queued: Duration::ZERO, inference }),
            Err(message) => Err(EngineError::Inference { engine: self.actor.name().to_string(), message }),
        }
    }

    /// Whether frames run on the caller's thread (the model was fast enough at warm-up).
    pub fn runs_inline(&self) -> bool {
        !self.inline.is_empty()
    }

    pub fn infer_blocking(&self, input: ModelInput) -> Result<Timed<ModelOutput>, EngineError> {
        self.actor.call_blocking(input)
    }

    pub fn queue_depth(&self) -> usize {
        self.actor.queue_depth()
    }
}
