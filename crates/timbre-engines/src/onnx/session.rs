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
        let ctx = |e: &dyn std::fmt::Display| format!("cannot load {}: {e}", path.display());
        let session = builder(path, threads, spin)?.commit_from_file(path).map_err(|e| ctx(&e))?;
        Ok(Self { session })
    }

    /// Like [`OnnxSession::open_with`], for a model already in memory (an edited copy of the file
    /// at `path`, which names it in errors).
    pub fn open_bytes(model: &[u8], path: &Path, threads: usize, spin: bool) -> Result<Self, String> {
        let ctx = |e: &dyn std::fmt::Display| format!("cannot load {}: {e}", path.display());
        let session = builder(path, threads, spin)?.commit_from_memory(model).map_err(|e| ctx(&e))?;
        Ok(Self { session })
    }

    pub fn inputs(&self) -> Vec<InputSpec> {
        describe_inputs(&self.session)
    }

    pub fn has_output(&self, name: &str) -> bool {
        self.session.outputs().iter().any(|o| o.name() == name)
    }
}

/// A session builder with timbre's options: full graph optimization (layout included), `threads`
/// intra-op threads (0 = ONNX Runtime's default), spinning off unless `spin`.
fn builder(path: &Path, threads: usize, spin: bool) -> Result<SessionBuilder, String> {
    let (env, _) = environment()?;
    let ctx = |e: &dyn std::fmt::Display| format!("cannot load {}: {e}", path.display());
    let mut builder = Session::builder(env).map_err(|e| ctx(&e))?;
    builder = builder.with_optimization_level(GraphOptimizationLevel::Level3).map_err(|e| ctx(&e))?;
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
