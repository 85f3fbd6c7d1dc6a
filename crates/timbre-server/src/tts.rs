//! Text-to-speech serving: which voice a request means, what it may ask for, and how audio
//! leaves (whole file, chunked stream, SSE). Shared by `POST /v1/audio/speech`, the WebSocket
//! text-in protocol and the CLI's checks.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use timbre_audio::OutputFormat;
use timbre_engines::ModelState;
use timbre_engines::manifest;
use timbre_engines::tts::{Speaker, TtsError, VoiceInfo};

use crate::capabilities::engine_for;
use crate::error::ApiError;
use crate::state::AppState;

pub const CAPABILITY: &str = "tts";
/// OpenAI's limit on `input`.
pub const MAX_INPUT_CHARS: usize = 4096;
/// `pcm` is raw 24 kHz s16le mono whatever the voice's rate (what OpenAI clients assume).
pub const PCM_RATE: u32 = 24_000;
/// OpenAI's model ids, aliases of the default TTS model.
pub const MODEL_ALIASES: [&str; 3] = ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// OpenAI's voice names; they map to the default voice (`tts_default_voice`).
pub const OPENAI_VOICES: [&str; 13] =
    ["alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"];

/// A voice as `GET /v1/audio/voices` lists it: the catalogue entry plus its model's state.
#[derive(Clone, Debug, Serialize)]
pub struct ListedVoice {
    #[serde(flatten)]
    pub info: VoiceInfo,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub default: bool,
}

/// How long a read of the models dir's voices is reused: requests should not re-read and
/// re-parse voice configs each time, and a model dropped in while serving still shows up soon.
const CATALOG_TTL: Duration = Duration::from_secs(10);

type CatalogCache = std::sync::Mutex<Vec<(std::path::PathBuf, std::time::Instant, Arc<Vec<VoiceInfo>>)>>;

/// The voices of every TTS model in `dir` (from the files: no model is loaded).
fn voices_in(dir: &std::path::Path) -> Arc<Vec<VoiceInfo>> {
    static CACHE: std::sync::OnceLock<CatalogCache> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(c) = cache.lock()
        && let Some((_, _, v)) = c.iter().find(|(d, at, _)| d == dir && at.elapsed() < CATALOG_TTL)
    {
        return Arc::clone(v);
    }
    let mut voices = Vec::new();
    for (_, m) in manifest::discover(dir).unwrap_or_default() {
        let Ok(m) = m else { continue };
        if m.capability != CAPABILITY {
            continue;
        }
        match timbre_engines::tts::catalog::voices_of(&m) {
            Ok(v) => voices.extend(v),
            Err(e) => tracing::warn!(model = %m.name, error = %e, "cannot list the voices of a TTS model"),
        }
    }
    let voices = Arc::new(voices);
    if let Ok(mut c) = cache.lock() {
        c.retain(|(d, _, _)| d != dir);
        c.push((dir.to_path_buf(), std::time::Instant::now(), Arc::clone(&voices)));
    }
    voices
}

/// Every voice of every installed TTS model, with its model's state (a model that failed to
/// load still lists its voices, which then answer 503).
pub fn catalog(state: &AppState) -> Vec<ListedVoice> {
    let snapshot = state.snapshot();
    let mut out: Vec<ListedVoice> = voices_in(&state.config.models_dir)
        .iter()
        .map(|info| {
            let (st, reason) = match snapshot.models.get(&info.model) {
                Some(s) => (s.state.as_str().to_string(), s.reason.clone()),
                None => ("absent".to_string(), None),
            };
            ListedVoice { info: info.clone(), state: st, reason, default: false }
        })
        .collect();
    let default = default_voice_name(state, &out);
    for v in &mut out {
        v.default = Some(&v.info.name) == default.as_ref();
    }
    out
}

/// `tts_default_voice`, else the first voice of the required (then the first ready, then any)
/// TTS model.
fn default_voice_name(state: &AppState, voices: &[ListedVoice]) -> Option<String> {
    let wanted = state.config.tts_default_voice.trim();
    if !wanted.is_empty() {
        return Some(wanted.to_string());
    }
    let snapshot = state.snapshot();
    let required = |v: &&ListedVoice| snapshot.models.get(&v.info.model).is_some_and(|m| m.required);
    let ready = |v: &&ListedVoice| snapshot.models.get(&v.info.model).is_some_and(|m| m.state == ModelState::Ready);
    voices
        .iter()
        .find(required)
        .or_else(|| voices.iter().find(ready))
        .or_else(|| voices.first())
        .map(|v| v.info.name.clone())
}

fn names(voices: &[ListedVoice]) -> String {
    voices.iter().map(|v| v.info.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The engine and voice name a request means. `model` may be an OpenAI alias or a model name;
/// `voice` a voice name, an OpenAI voice name (→ the default voice) or empty (→ the default).
/// Unknown voice → 404 listing the voices; its model not ready → 503 (registry state).
pub fn resolve(state: &AppState, model: Option<&str>, voice: Option<&str>) -> Result<(Arc<Speaker>, String), ApiError> {
    let voices = catalog(state);
    let model = model.map(str::trim).filter(|m| !m.is_empty() && !MODEL_ALIASES.contains(m));
    let voice = voice.map(str::trim).filter(|v| !v.is_empty());
    let pick = |name: &str| voices.iter().find(|v| v.info.name == name || v.info.name.eq_ignore_ascii_case(name));
    let chosen = match voice {
        Some(v) if pick(v).is_some() => pick(v),
        Some(v) if !OPENAI_VOICES.contains(&v.to_ascii_lowercase().as_str()) => {
            return Err(ApiError::not_found(format!(
                "voice `{v}` does not exist; available voices: {} (OpenAI voice names such as alloy map to the default voice)",
                names(&voices)
            ))
            .with_param("voice"));
        }
        _ => match model {
            Some(m) => voices.iter().find(|x| x.info.model == m),
            None => default_voice_name(state, &voices).and_then(|d| pick(&d)),
        },
    };
    let Some(chosen) = chosen else {
        if let Some(m) = model {
            // Let the registry say whether the model is unknown (404) or not a TTS model (422).
            engine_for::<Speaker>(state, CAPABILITY, Some(m))?;
        }
        return Err(ApiError::model_unavailable(
            "no text-to-speech voice is installed (run scripts/fetch-models)",
            Duration::from_secs(30),
        ));
    };
    if let Some(m) = model
        && chosen.info.model != m
    {
        return Err(ApiError::invalid_field(
            "voice",
            format!("voice `{}` belongs to model `{}`, not `{m}`", chosen.info.name, chosen.info.model),
        ));
    }
    let (_, speaker) = engine_for::<Speaker>(state, CAPABILITY, Some(&chosen.info.model))?;
    Ok((speaker, chosen.info.name.clone()))
}

/// Characters timbre speaks or reads as pauses; everything else (emoji, pictographs, control
/// and private-use characters) is dropped before synthesis.
fn speakable(c: char) -> bool {
    c.is_alphanumeric()
        || c.is_whitespace()
        || matches!(
            c,
            '.' | ','
                | ';'
                | ':'
                | '!'
                | '?'
                | '\''
                | '"'
                | '('
                | ')'
                | '['
                | ']'
                | '-'
                | '–'
                | '—'
                | '…'
                | '’'
                | '‘'
                | '“'
                | '”'
                | '$'
                | '£'
                | '€'
                | '¥'
                | '%'
                | '&'
                | '@'
                | '+'
                | '='
                | '/'
                | '#'
                | '*'
                | '°'
                | '¢'
        )
}

/// Check and clean `input`: empty → 422, over 4096 characters → 422, unsupported characters
/// skipped, nothing speakable left → 422.
pub fn clean_input(input: &str) -> Result<String, ApiError> {
    if input.trim().is_empty() {
        return Err(ApiError::invalid_field("input", "input is empty"));
    }
    let n = input.chars().count();
    if n > MAX_INPUT_CHARS {
        return Err(ApiError::invalid_field(
            "input",
            format!("input has {n} characters; the limit is {MAX_INPUT_CHARS}"),
        ));
    }
    let cleaned: String =
        input.chars().map(|c| if c.is_control() { ' ' } else { c }).filter(|c| speakable(*c)).collect();
    if !cleaned.chars().any(char::is_alphanumeric) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "unspeakable_input",
            "input has no letters or digits to speak (emoji, symbols and control characters are skipped)",
        )
        .with_param("input"));
    }
    Ok(cleaned)
}

pub fn check_speed(speed: f32) -> Result<f32, ApiError> {
    if !(0.25..=4.0).contains(&speed) || !speed.is_finite() {
        return Err(ApiError::invalid_field("speed", format!("speed {speed} is outside 0.25–4.0")));
    }
    Ok(speed)
}

/// OpenAI's `response_format`. `aac` has no encoder in this build: a clear 422.
pub fn response_format(name: Option<&str>) -> Result<OutputFormat, ApiError> {
    let name = name.unwrap_or("mp3").trim().to_ascii_lowercase();
    match name.as_str() {
        "mp3" => Ok(OutputFormat::Mp3),
        "opus" => Ok(OutputFormat::Opus),
        "flac" => Ok(OutputFormat::Flac),
        "wav" => Ok(OutputFormat::Wav),
        "pcm" => Ok(OutputFormat::Pcm16),
        "aac" => Err(ApiError::invalid_field(
            "response_format",
            "aac is not available: this build has no AAC encoder; use mp3, opus, flac, wav or pcm",
        )),
        other => Err(ApiError::invalid_field(
            "response_format",
            format!("unknown response_format `{other}` (mp3, opus, aac, flac, wav, pcm)"),
        )),
    }
}

/// The rate to produce for `format` from a voice at `native` Hz: `pcm` is always 24 kHz; Opus
/// takes only 8/12/16/24/48 kHz, so other rates go to 24 kHz.
pub fn target_rate(format: OutputFormat, native: u32) -> u32 {
    match format {
        OutputFormat::Pcm16 => PCM_RATE,
        OutputFormat::Opus if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&native) => 24_000,
        _ => native,
    }
}

/// Resample when the target differs (rubato; off the async runtime by the callers).
pub fn to_rate(samples: Vec<f32>, from: u32, to: u32) -> Result<Vec<f32>, ApiError> {
    if from == to || samples.is_empty() {
        return Ok(samples);
    }
    timbre_audio::resample(&samples, from, to).map_err(|e| ApiError::internal(format!("resampling failed: {e}")))
}

pub fn tts_error(e: TtsError) -> ApiError {
    match e {
        TtsError::UnknownVoice { .. } => ApiError::not_found(e.to_string()).with_param("voice"),
        TtsError::InvalidOption(m) => ApiError::invalid_field("speaker", m),
        TtsError::Engine(e) => crate::error::engine_error(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn input_rules() {
        assert_eq!(clean_input("").unwrap_err().param.as_deref(), Some("input"));
        assert_eq!(clean_input(&"a".repeat(4097)).unwrap_err().status.as_u16(), 422);
        assert!(clean_input(&"a".repeat(4096)).is_ok());
        assert_eq!(clean_input("Hi 👋 there\u{7}!").unwrap(), "Hi  there !");
        assert_eq!(clean_input("👋🎉").unwrap_err().code, "unspeakable_input");
    }

    #[test]
    fn formats_and_rates() {
        assert_eq!(response_format(None).unwrap(), OutputFormat::Mp3);
        assert_eq!(response_format(Some("aac")).unwrap_err().param.as_deref(), Some("response_format"));
        assert!(response_format(Some("ogg")).is_err());
        assert_eq!(target_rate(OutputFormat::Pcm16, 22_050), 24_000);
        assert_eq!(target_rate(OutputFormat::Opus, 22_050), 24_000);
        assert_eq!(target_rate(OutputFormat::Wav, 22_050), 22_050);
        assert!(check_speed(0.2).is_err() && check_speed(4.5).is_err() && check_speed(4.0).is_ok());
    }
}
