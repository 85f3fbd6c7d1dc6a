//! Model registry, load states and inference engines.

pub mod actor;
pub mod ced;
pub mod loaders;
pub mod manifest;
pub mod onnx;
pub mod registry;
pub mod state;
pub mod vad;
pub mod warmed;
pub mod whisper;

pub use manifest::Manifest;
pub use registry::{Engine, Loader, Registry};
pub use state::{ModelState, ModelStatus, ServiceStatus, Snapshot};
