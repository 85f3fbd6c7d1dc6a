//! `GET /v1/models` in OpenAI's list shape, extended with each model's load state.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use timbre_engines::ModelStatus;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    #[schema(example = "model")]
    pub object: &'static str,
    /// Unix seconds; timbre reports when this process started.
    pub created: u64,
    #[schema(example = "timbre")]
    pub owned_by: &'static str,
    pub family: String,
    pub capability: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u64>,
}

fn object(m: &ModelStatus, created: u64) -> ModelObject {
    ModelObject {
        id: m.name.clone(),
        object: "model",
        created,
        owned_by: "timbre",
        family: m.family.clone(),
        capability: m.capability.clone(),
        state: m.state.as_str().to_string(),
        reason: m.reason.clone(),
        required: m.required,
        load_ms: m.load_ms,
    }
}

fn created(state: &AppState) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    now.saturating_sub(state.started.elapsed().as_secs())
}

/// Every model the registry knows, with its state.
#[utoipa::path(get, path = "/v1/models", tag = "models", security(("api_key" = [])),
    responses((status = 200, body = ModelList), (status = 401, body = crate::error::ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let snapshot = state.snapshot();
    let created = created(&state);
    Json(ModelList { object: "list", data: snapshot.models.values().map(|m| object(m, created)).collect() })
}

/// One model by id.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models", security(("api_key" = [])),
    params(("id" = String, Path, description = "model id, e.g. `ced-tiny`")),
    responses((status = 200, body = ModelObject), (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ModelObject>, ApiError> {
    let snapshot = state.snapshot();
    let created = created(&state);
    snapshot.models.get(&id).map(|m| Json(object(m, created))).ok_or_else(|| {
        ApiError::not_found(format!("model `{id}` does not exist; GET /v1/models lists them")).with_param("id")
    })
}
