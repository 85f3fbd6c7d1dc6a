//! timbre's HTTP/WebSocket server: routes, auth, limits, errors, metrics and OpenAPI.

pub mod app;
pub mod auth;
pub mod capabilities;
pub mod config;
pub mod error;
pub mod imports;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod storage;
pub mod stream_input;
pub mod stream_protocol;
pub mod stt;
pub mod telemetry;
pub mod tts;
pub mod tts_protocol;
pub mod upload;

pub use app::{app, serve};
pub use config::Config;
pub use error::ApiError;
pub use state::AppState;

/// Default TCP port (the seeds' `PORT` default).
pub const DEFAULT_PORT: u16 = 8080;
/// Detailed health: always 200, state in the body (what Railway's health check polls).
pub const HEALTH_PATH: &str = "/health";
/// Liveness: 200 while the process serves HTTP at all.
pub const LIVENESS_PATH: &str = "/healthz";
/// Readiness: 200 only when every required model is ready, else 503.
pub const READINESS_PATH: &str = "/readyz";
