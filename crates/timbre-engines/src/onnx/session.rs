//! A thin wrapper over `ort::Session` that knows its input layout and reports errors as text
//! the registry can show.

use std::path::Path;

use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{TensorElementType, ValueType};

use super::runtime::environment;

/// One graph input as the model declares it (`-1` for a dynamic dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

pub struct OnnxSession {
    pub session: Session,
}

impl OnnxSession {
    /// Build a session from a model file. `threads` = intra-op threads (0 = ONNX Runtime's
    /// default, one per core).
    pub fn open(path: &Path, threads: usize) -> Result<Self, String> {
        Self::open_with(path, threads, true)
    }

    /// Like [`OnnxSession::open`]; `spin = false` makes idle intra-op threads sleep instead of
    /// spinning, for engines that run several sessions side by side on the same cores (spinning
    /// threads of one session would steal the cores the others compute on).
    pub fn open_with(path: &Path, threads: usize, spin: bool) -> Result<Self, String> {
        Self::from_file(path, threads, spin, FULL)
    }

    /// Like [`OnnxSession::open`] with only the basic graph rewrites (constant folding, redundant
    /// node removal), for models the higher levels do not speed up: their fusion passes cost
    /// session-creation time the model never wins back.
    pub fn open_basic(path: &Path, threads: usize) -> Result<Self, String> {
        Self::from_file(path, threads, true, GraphOptimizationLevel::Level1)
    }

    fn from_file(path: &Path, threads: usize, spin: bool, level: GraphOptimizationLevel) -> Result<Self, String> {
        let ctx = |e: &dyn std::fmt::Display| format!("cannot load {}: {e}", path.display());
        let session = builder(path, threads, spin, level)?.commit_from_file(path).map_err(|e| ctx(&e))?;
        Ok(Self { session })
    }

    /// Like [`OnnxSession::open_with`], for a model already in memory (an edited copy of the file
    /// at `path`, which names it in errors).
    pub fn open_bytes(model: &[u8], path: &Path, threads: usize, spin: bool) -> Result<Self, String> {
        let ctx = |e: &dyn std::fmt::Display| format!("cannot load {}: {e}", path.display());
        let session = builder(path, threads, spin, FULL)?.commit_from_memory(model).map_err(|e| ctx(&e))?;
        Ok(Self { session })
    }

    pub fn inputs(&self) -> Vec<InputSpec> {
        describe_inputs(&self.session)
    }

    pub fn has_output(&self, name: &str) -> bool {
        self.session.outputs().iter().any(|o| o.name() == name)
    }
}

/// ONNX Runtime's session option for the compute type of the `MatMulNBits` kernels it fuses
/// from `DequantizeLinear → MatMul` (weight-only quantized models such as CED-tiny).
const MATMUL_NBITS_ACCURACY: &str = "session.qdq_matmulnbits_accuracy_level";

/// Graph optimization for every session but [`OnnxSession::open_basic`]'s: all levels, layout
/// included (Piper's convolutions rely on it, `onnx::conv2d`).
const FULL: GraphOptimizationLevel = GraphOptimizationLevel::Level3;

/// A session builder with timbre's options: graph optimization `level`, `threads` intra-op
/// threads (0 = ONNX Runtime's default), spinning off unless `spin`, and weight-only quantized
/// matrix products computed in f32.
///
/// Why f32: a `DequantizeLinear → MatMul` graph means f32 products of the dequantized weights,
/// but the runtime's default fuses it into `MatMulNBits` with int8 *activations* (accuracy level
/// 4). On CED-tiny that moved scores by up to 2.1e-3 from the graph's own semantics (the `onnx`
/// package's reference evaluator), twenty times the tagger's 1e-4 fidelity bound; level 1 (f32)
/// is within 1e-6, and on the AVX2 CPU measured it was also faster (docs/benchmarks.md, sound
/// tagging, 2026-12-08).
/// Only graphs with such a pattern are affected; explicitly quantized ones (`MatMulInteger`)
/// keep the arithmetic they define.
fn builder(path: &Path, threads: usize, spin: bool, level: GraphOptimizationLevel) -> Result<SessionBuilder, String> {
    let (env, _) = environment()?;
    let ctx = |e: &dyn std::fmt::Display| format!("cannot load {}: {e}", path.display());
    let mut builder = Session::builder(env).map_err(|e| ctx(&e))?;
    builder = builder.with_optimization_level(level).map_err(|e| ctx(&e))?;
    builder = builder.with_config_entry(MATMUL_NBITS_ACCURACY, "1").map_err(|e| ctx(&e))?;
    if threads > 0 {
        builder = builder.with_intra_threads(threads).map_err(|e| ctx(&e))?;
    }
    if !spin {
        builder = builder.with_intra_op_spinning(false).map_err(|e| ctx(&e))?;
    }
    #[cfg(feature = "gpu")]
    gpu::register(&mut builder, path);
    Ok(builder)
}

pub fn describe_inputs(session: &Session) -> Vec<InputSpec> {
    session
        .inputs()
        .iter()
        .map(|i| match i.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                InputSpec { name: i.name().to_string(), dtype: dtype_name(*ty), shape: shape.iter().copied().collect() }
            }
            other => InputSpec { name: i.name().to_string(), dtype: format!("{other:?}"), shape: Vec::new() },
        })
        .collect()
}

fn dtype_name(t: TensorElementType) -> String {
    format!("{t:?}").to_lowercase()
}

#[cfg(feature = "gpu")]
mod gpu {
    use std::path::Path;

    use ort::ep::ExecutionProvider;
    use ort::session::builder::SessionBuilder;

    /// Try CUDA; any failure leaves the session on CPU and says so once per model.
    pub fn register(builder: &mut SessionBuilder, path: &Path) {
        match ort::ep::CUDA::default().register(builder) {
            Ok(()) => tracing::info!(model = %path.display(), "CUDA execution provider registered"),
            Err(e) => {
                tracing::warn!(model = %path.display(), error = %e, "CUDA unavailable; running on CPU")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ort::value::Tensor;

    use super::*;
    use crate::onnx::proto::{
        DIM_VALUE, ELEM_FLOAT, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NODE, GRAPH_OUTPUT, MODEL_GRAPH,
        MODEL_OPSET_IMPORT, OPSET_DOMAIN, OPSET_VERSION, SHAPE_DIM, float_value_info, node, put_bytes, put_int,
        raw_tensor,
    };

    /// `TensorProto.DataType` INT8.
    const INT8: u64 = 3;

    fn shape(dims: &[u64]) -> Vec<u8> {
        let mut s = Vec::new();
        for d in dims {
            let mut dim = Vec::new();
            put_int(&mut dim, DIM_VALUE, *d);
            put_bytes(&mut s, SHAPE_DIM, &dim);
        }
        s
    }

    /// `y = x · DequantizeLinear(w)`: int8 weights with one scale, as weight-only quantized
    /// models (CED-tiny) are exported.
    fn dequantize_matmul(m: u64, k: u64, n: u64, w: &[i8], scale: f32) -> Vec<u8> {
        let mut g = Vec::new();
        put_bytes(&mut g, GRAPH_NODE, &node("DequantizeLinear", "dq", &["w_q", "w_s", "w_z"], &["w"], &[]));
        put_bytes(&mut g, GRAPH_NODE, &node("MatMul", "mm", &["x", "w"], &["y"], &[]));
        let w_bytes: Vec<u8> = w.iter().map(|v| *v as u8).collect();
        put_bytes(&mut g, GRAPH_INITIALIZER, &raw_tensor("w_q", &[k as i64, n as i64], INT8, &w_bytes));
        put_bytes(&mut g, GRAPH_INITIALIZER, &raw_tensor("w_s", &[], ELEM_FLOAT, &scale.to_le_bytes()));
        put_bytes(&mut g, GRAPH_INITIALIZER, &raw_tensor("w_z", &[], INT8, &[0]));
        put_bytes(&mut g, GRAPH_INPUT, &float_value_info("x", Some(&shape(&[m, k]))));
        put_bytes(&mut g, GRAPH_OUTPUT, &float_value_info("y", Some(&shape(&[m, n]))));
        let mut opset = Vec::new();
        put_bytes(&mut opset, OPSET_DOMAIN, b"");
        put_int(&mut opset, OPSET_VERSION, 19);
        let mut model = Vec::new();
        put_int(&mut model, 1, 9); // ir_version
        put_bytes(&mut model, MODEL_OPSET_IMPORT, &opset);
        put_bytes(&mut model, MODEL_GRAPH, &g);
        model
    }

    /// The runtime's default would fuse this graph into `MatMulNBits` and quantize `x` to int8
    /// (errors of ~1e-2 here); timbre's sessions must compute what the graph says.
    #[test]
    fn weight_only_quantized_products_are_computed_in_f32() {
        let (m, k, n) = (8usize, 256usize, 64usize);
        let mut seed = 12345u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        let w: Vec<i8> = (0..k * n).map(|_| (next() * 127.0).round() as i8).collect();
        // Activations of uneven size, as a transformer's are: a per-tensor int8 grid is coarse.
        let x: Vec<f32> = (0..m * k).map(|i| next() * if i % 17 == 0 { 4.0 } else { 0.7 }).collect();
        let scale = 0.01f32;
        let model = dequantize_matmul(m as u64, k as u64, n as u64, &w, scale);
        let mut onnx = OnnxSession::open_bytes(&model, Path::new("dq-matmul.onnx"), 1, false).unwrap();
        let input = Tensor::from_array(([m, k], x.clone())).unwrap();
        let out = onnx.session.run(ort::inputs!["x" => input]).unwrap();
        let (_, y) = out["y"].try_extract_tensor::<f32>().unwrap();
        let mut worst = 0f64;
        for r in 0..m {
            for c in 0..n {
                let want: f64 =
                    (0..k).map(|j| f64::from(x[r * k + j]) * f64::from(w[j * n + c]) * f64::from(scale)).sum();
                worst = worst.max((f64::from(y[r * n + c]) - want).abs());
            }
        }
        assert!(worst < 1e-4, "max abs error {worst}");
    }
}
