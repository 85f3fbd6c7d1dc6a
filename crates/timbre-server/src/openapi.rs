//! The OpenAPI document served at `/openapi.json` (and rendered by Swagger UI at `/docs`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "timbre", description = "Audio AI server: speech-to-text, text-to-speech, tagging, music analysis, streams."),
    paths(
        routes::health::root,
        routes::health::health,
        routes::health::healthz,
        routes::health::readyz,
        routes::health::ping,
        crate::metrics::render,
        routes::models::list,
        routes::models::get,
        routes::ws::ping,
        routes::tags::classify,
        routes::tag_stream::tag_stream,
        crate::imports::create,
        crate::imports::get,
        routes::streams::stream,
        routes::jobs::list,
        routes::jobs::get,
        routes::jobs::cancel,
        routes::jobs::events,
        routes::jobs::noop,
        routes::speech::speech,
        routes::speech::voices,
        routes::tts_stream::tts_stream,
        routes::transcriptions::transcriptions,
        routes::transcriptions::translations,
        routes::stt_stream::stt_stream,
        routes::stt_stream::realtime,
        routes::songs::upload,
        routes::songs::list,
        routes::songs::get,
        routes::songs::analysis,
        routes::songs::waveform,
        routes::songs::clip_plan,
        routes::songs::delete,
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::error::ErrorBody, routes::speech::SpeechRequest)),
    modifiers(&Security),
    tags(
        (name = "health", description = "Liveness, readiness, service info and metrics (public)"),
        (name = "models", description = "Installed models and their load state"),
        (name = "streams", description = "WebSocket sessions"),
        (name = "imports", description = "Media imported by URL (SSRF-checked)"),
        (name = "tagging", description = "Sound tagging: tags, timelines, events, prompt heatmaps"),
        (name = "jobs", description = "Durable jobs: status, progress events (SSE), cancellation"),
        (name = "speech", description = "Text-to-speech: OpenAI's speech API, voices, text-in WebSocket streaming"),
        (name = "speech-to-text", description = "Transcription and translation (OpenAI-compatible), live over WebSocket"),
        (name = "songs", description = "Song upload and music analysis: tempo, beats, sections, waveform, clip plans"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components
            .add_security_scheme("x_api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}
