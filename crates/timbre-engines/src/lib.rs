//! Model registry, load states and inference engines.

pub mod actor;
pub mod ced;
pub mod hub;
pub mod loaders;
pub mod manifest;
pub mod music;
pub mod onnx;
pub mod registry;
pub mod state;
pub mod stream;
pub mod tagging;
pub mod tts;
pub mod vad;
pub mod whisper;

pub use hub::{HubClient, HubError, HubSettings, ModelEntry, ModelSource, RepoRef};
pub use manifest::Manifest;
pub use registry::{Engine, Loader, Registry};
pub use state::{ModelState, ModelStatus, ServiceStatus, Snapshot};
