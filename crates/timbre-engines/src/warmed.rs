//! ONNX models whose capability has no dedicated engine yet (Piper and Kokoro voices):
//! the sessions are built and proven with one real inference on family-shaped dummy input, so
//! `ready` means the model file loads and runs in this runtime.

use std::sync::Mutex;

use ort::value::{DynValue, Tensor};

use crate::manifest::Manifest;
use crate::onnx::{InputSpec, OnnxSession};
use crate::state::ModelState;

pub struct WarmedOnnx {
    pub sessions: Vec<Mutex<OnnxSession>>,
}

fn f32_tensor(shape: Vec<usize>, values: Vec<f32>) -> Result<DynValue, String> {
    Tensor::from_array((shape, values)).map(|t| t.into_dyn()).map_err(|e| e.to_string())
}

fn i64_tensor(shape: Vec<usize>, values: Vec<i64>) -> Result<DynValue, String> {
    Tensor::from_array((shape, values)).map(|t| t.into_dyn()).map_err(|e| e.to_string())
}

/// Inputs for one warm-up run, by family and declared input names.
fn warmup_inputs(family: &str, specs: &[InputSpec]) -> Result<Vec<(String, DynValue)>, String> {
    let mut out = Vec::new();
    for spec in specs {
        let value = match (family, spec.name.as_str()) {
            // Piper: BOS, pad, a phoneme, pad, EOS.
            ("piper", "input") => i64_tensor(vec![1, 5], vec![1, 0, 20, 0, 2])?,
            ("piper", "input_lengths") => i64_tensor(vec![1], vec![5])?,
            ("piper", "scales") => f32_tensor(vec![3], vec![0.667, 1.0, 0.8])?,
            ("piper", "sid") => i64_tensor(vec![1], vec![0])?,
            ("kokoro", "ids") => i64_tensor(vec![1, 5], vec![0, 50, 83, 54, 0])?,
            ("kokoro", "speed") => f32_tensor(vec![1], vec![1.0])?,
            ("beatnet", "features") => f32_tensor(vec![1, 1, 272], vec![0.0; 272])?,
            ("beatnet", "hidden" | "cell") => f32_tensor(vec![2, 1, 150], vec![0.0; 300])?,
            (f, name) => {
                return Err(format!("no warm-up input for `{name}` of a `{f}` model (inputs: {specs:?})"));
            }
        };
        out.push((spec.name.clone(), value));
    }
    Ok(out)
}

impl WarmedOnnx {
    pub fn load(manifest: &Manifest, threads: usize, progress: &dyn Fn(ModelState)) -> Result<Self, String> {
        let files: Vec<_> = manifest.files.iter().filter(|f| f.role.as_deref() == Some("onnx")).collect();
        if files.is_empty() {
            return Err("manifest lists no `onnx` file".into());
        }
        let mut sessions = Vec::new();
        for file in files {
            let path = manifest.path_of(file);
            let mut onnx = OnnxSession::open(&path, threads)?;
            progress(ModelState::Warming);
            let inputs = warmup_inputs(&manifest.family, &onnx.inputs())?;
            let outputs = onnx.session.run(inputs).map_err(|e| format!("warm-up of {} failed: {e}", path.display()))?;
            for (name, value) in outputs.iter() {
                if let Ok((_, data)) = value.try_extract_tensor::<f32>()
                    && data.iter().any(|v| !v.is_finite())
                {
                    return Err(format!("warm-up of {} produced non-finite values in `{name}`", path.display()));
                }
            }
            drop(outputs);
            sessions.push(Mutex::new(onnx));
        }
        Ok(Self { sessions })
    }
}
