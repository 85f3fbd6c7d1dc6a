//! Logging setup: JSON lines (default) or pretty, filtered by `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{Config, LogFormat};

/// Install the global subscriber. Logs go to stdout (where container platforms collect them).
pub fn init(config: &Config) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(&config.log_level).map_err(|e| format!("invalid LOG_LEVEL `{}`: {e}", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_span_events(FmtSpan::NONE).with_target(true);
    let result = match config.log_format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    result.map_err(|e| format!("logging already initialised: {e}"))
}
