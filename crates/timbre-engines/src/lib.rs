//! Model registry, load states and inference engines.

pub mod loaders;
pub mod manifest;
pub mod registry;
pub mod state;

pub use manifest::Manifest;
pub use registry::{Engine, Loader, Registry};
pub use state::{ModelState, ModelStatus, ServiceStatus, Snapshot};
