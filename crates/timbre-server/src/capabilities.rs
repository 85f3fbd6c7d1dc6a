//! Finding the engine that serves a capability, and saying precisely why there is none.

use std::sync::Arc;
use std::time::Duration;

use timbre_engines::{ModelState, Registry, Snapshot};

use crate::error::ApiError;
use crate::state::AppState;

/// The engine of the requested model (or the first ready model of `capability`), typed.
/// Unknown model → 404 naming `model`; known but not ready → 503 with its state and reason;
/// none installed → 503 saying which capability is missing.
pub fn engine_for<T: std::any::Any + Send + Sync>(
    state: &AppState,
    capability: &str,
    requested: Option<&str>,
) -> Result<(String, Arc<T>), ApiError> {
    engine_in(&state.registry, &state.snapshot(), capability, requested)
}

/// [`engine_for`] without an `AppState`: what job handlers use in `timbre worker` processes.
pub fn engine_in<T: std::any::Any + Send + Sync>(
    registry: &Registry,
    snapshot: &Snapshot,
    capability: &str,
    requested: Option<&str>,
) -> Result<(String, Arc<T>), ApiError> {
    let candidates: Vec<_> = snapshot.models.values().filter(|m| m.capability == capability).collect();
    let chosen = match requested {
        Some(name) => {
            let m = snapshot.models.get(name).ok_or_else(|| {
                let names: Vec<&str> = candidates.iter().map(|m| m.name.as_str()).collect();
                ApiError::not_found(format!("model `{name}` does not exist; {capability} models: {}", names.join(", ")))
                    .with_param("model")
            })?;
            if m.capability != capability {
                return Err(ApiError::invalid_field(
                    "model",
                    format!("model `{name}` is a {} model, not {capability}", m.capability),
                ));
            }
            m
        }
        None => candidates
            .iter()
            .find(|m| m.state == ModelState::Ready)
            .or_else(|| candidates.first())
            .copied()
            .ok_or_else(|| {
                ApiError::model_unavailable(
                    format!("no {capability} model is installed (run scripts/fetch-models)"),
                    Duration::from_secs(30),
                )
            })?,
    };
    if chosen.state != ModelState::Ready {
        let why = chosen.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let retry = if chosen.state.in_progress() { Duration::from_secs(5) } else { Duration::from_secs(30) };
        return Err(ApiError::model_unavailable(
            format!("model `{}` is {}{why}", chosen.name, chosen.state.as_str()),
            retry,
        ));
    }
    let engine = registry.engine::<T>(&chosen.name).ok_or_else(|| {
        ApiError::internal(format!("model `{}` is ready but has no engine of the expected type", chosen.name))
    })?;
    Ok((chosen.name.clone(), engine))
}
