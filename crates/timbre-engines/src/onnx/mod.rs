//! ONNX Runtime: finding the shared library, one process-wide environment, and sessions.

pub mod conv2d;
pub mod graph;
pub(crate) mod proto;
mod runtime;
mod session;
pub mod split;

pub use runtime::{RuntimeInfo, environment, library_candidates};
pub use session::{InputSpec, OnnxSession, describe_inputs};
