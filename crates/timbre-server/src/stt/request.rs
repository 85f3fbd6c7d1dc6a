//! `POST /v1/audio/transcriptions` and `/translations` form fields → decoding options, checked
//! without I/O. Field names, defaults and meanings are OpenAI's; `beam_size`, `best_of`,
//! `vad_filter` and `word_timestamps` are timbre's extras (faster-whisper's names).

use timbre_engines::whisper::api::{Task, TranscribeOptions};
use timbre_engines::whisper::format::{self, Granularities, ResponseFormat};

use crate::error::ApiError;
use crate::upload::Form;

/// OpenAI's model id, accepted for the default speech-to-text model.
pub const OPENAI_ALIAS: &str = "whisper-1";

/// Most beams or samples one request may ask for: each costs a decoder pass per token.
pub const MAX_BEAMS: usize = 10;

/// A parsed request: which model, how to decode, how to answer.
#[derive(Clone, Debug, PartialEq)]
pub struct TranscriptionRequest {
    /// `None`: the default model (also what `whisper-1` means).
    pub model: Option<String>,
    pub options: TranscribeOptions,
    pub format: ResponseFormat,
    pub granularities: Granularities,
    /// Answer as server-sent events (`transcript.text.delta` / `.done`).
    pub stream: bool,
}

/// The model a client named, with OpenAI's alias resolved to "the default".
pub fn model_name(requested: Option<&str>) -> Option<&str> {
    requested.filter(|m| *m != OPENAI_ALIAS)
}

/// A boolean form field: `true`/`false` (what OpenAI's clients send), `1`/`0`, `yes`/`no`.
pub fn flag(form: &Form, name: &str) -> Result<Option<bool>, ApiError> {
    form.text(name)
        .map(|raw| match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ApiError::invalid_field(name, format!("`{raw}` is not a boolean (true or false)"))),
        })
        .transpose()
}

/// OpenAI's `temperature`: 0 (the default) decodes at 0 and falls back to higher temperatures on
/// repetition or low confidence, as Whisper does; a value above 0 decodes at that temperature only.
pub fn temperatures(value: Option<f32>) -> Result<Vec<f32>, ApiError> {
    match value {
        Some(t) if !(0.0..=1.0).contains(&t) => Err(ApiError::invalid_field("temperature", "must be between 0 and 1")),
        Some(t) if t > 0.0 => Ok(vec![t]),
        _ => Ok(TranscribeOptions::default().temperatures),
    }
}

/// `timestamp_granularities[]` (repeated, or comma-separated): `segment` and/or `word`.
fn granularities(form: &Form) -> Result<Granularities, ApiError> {
    let values: Vec<&str> = ["timestamp_granularities[]", "timestamp_granularities"]
        .iter()
        .filter_map(|k| form.fields.get(*k))
        .flatten()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Ok(Granularities::default());
    }
    let mut g = Granularities { segment: false, word: false };
    for v in values {
        match v {
            "segment" => g.segment = true,
            "word" => g.word = true,
            other => {
                return Err(ApiError::invalid_field(
                    "timestamp_granularities[]",
                    format!("`{other}` is not a granularity; use `segment` and/or `word`"),
                ));
            }
        }
    }
    Ok(g)
}

fn count(form: &Form, name: &str, default: usize) -> Result<usize, ApiError> {
    let n = form.number::<usize>(name)?.unwrap_or(default);
    if !(1..=MAX_BEAMS).contains(&n) {
        return Err(ApiError::invalid_field(name, format!("must be between 1 and {MAX_BEAMS}")));
    }
    Ok(n)
}

/// Parse every option field; 422 names the first bad one.
pub fn parse(form: &Form, task: Task) -> Result<TranscriptionRequest, ApiError> {
    let defaults = TranscribeOptions::default();
    let format = match form.text("response_format") {
        None => ResponseFormat::Json,
        Some(raw) => ResponseFormat::parse(raw).ok_or_else(|| {
            ApiError::invalid_field(
                "response_format",
                format!("`{raw}` is not a response format; use one of {}", ResponseFormat::NAMES),
            )
        })?,
    };
    let language = form
        .text("language")
        .map(|raw| {
            format::language_code(raw).map(str::to_string).ok_or_else(|| {
                ApiError::invalid_field(
                    "language",
                    format!("`{raw}` is not a language Whisper knows (ISO 639-1, e.g. `en`)"),
                )
            })
        })
        .transpose()?;
    let granularities = granularities(form)?;
    let word_timestamps = flag(form, "word_timestamps")?.unwrap_or(false) || granularities.word;
    let options = TranscribeOptions {
        language,
        task,
        prompt: form.text("prompt").map(str::to_string),
        temperatures: temperatures(form.number::<f32>("temperature")?)?,
        beam_size: count(form, "beam_size", defaults.beam_size)?,
        best_of: count(form, "best_of", defaults.best_of)?,
        word_timestamps,
        vad_filter: flag(form, "vad_filter")?.unwrap_or(defaults.vad_filter),
        ..defaults
    };
    Ok(TranscriptionRequest {
        model: model_name(form.text("model")).map(str::to_string),
        options,
        format,
        granularities,
        stream: flag(form, "stream")?.unwrap_or(false),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in fields {
            map.entry((*k).to_string()).or_default().push((*v).to_string());
        }
        Form { file: None, fields: map }
    }

    fn param_of(e: ApiError) -> String {
        assert_eq!(e.status, 422, "{e:?}");
        e.param.unwrap()
    }

    #[test]
    fn defaults_are_openai_and_faster_whisper() {
        let r = parse(&form(&[("model", "whisper-1")]), Task::Transcribe).unwrap();
        assert_eq!(r.model, None, "whisper-1 means the default model");
        assert_eq!(r.format, ResponseFormat::Json);
        assert_eq!(r.granularities, Granularities { segment: true, word: false });
        assert!(!r.stream);
        assert_eq!(r.options, TranscribeOptions::default());
        assert_eq!(r.options.temperatures, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "fallback schedule from 0");
        assert!(r.options.vad_filter);
    }

    #[test]
    fn every_field_is_read() {
        let r = parse(
            &form(&[
                ("model", "whisper-tiny.en"),
                ("language", "English"),
                ("prompt", "Timbre, Hana"),
                ("temperature", "0.4"),
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "word"),
                ("timestamp_granularities[]", "segment"),
                ("beam_size", "1"),
                ("best_of", "2"),
                ("vad_filter", "false"),
                ("stream", "true"),
            ]),
            Task::Translate,
        )
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("whisper-tiny.en"));
        let o = &r.options;
        assert_eq!(o.language.as_deref(), Some("en"));
        assert_eq!(o.prompt.as_deref(), Some("Timbre, Hana"));
        assert_eq!(o.temperatures, vec![0.4], "an explicit temperature is used alone");
        assert_eq!((o.beam_size, o.best_of), (1, 2));
        assert!(!o.vad_filter && o.word_timestamps, "word granularity turns word timestamps on");
        assert_eq!(o.task, Task::Translate);
        assert_eq!(r.format, ResponseFormat::VerboseJson);
        assert_eq!(r.granularities, Granularities { segment: true, word: true });
        assert!(r.stream);

        let words = parse(&form(&[("timestamp_granularities", "word")]), Task::Transcribe).unwrap();
        assert_eq!(words.granularities, Granularities { segment: false, word: true });
        let extra = parse(&form(&[("word_timestamps", "1"), ("temperature", "0")]), Task::Transcribe).unwrap();
        assert!(extra.options.word_timestamps);
        assert_eq!(extra.options.temperatures.len(), 6);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (field, value) in [
            ("response_format", "xml"),
            ("language", "klingon"),
            ("temperature", "1.5"),
            ("temperature", "warm"),
            ("timestamp_granularities[]", "sentence"),
            ("beam_size", "0"),
            ("beam_size", "11"),
            ("best_of", "-1"),
            ("vad_filter", "maybe"),
            ("stream", "2"),
            ("word_timestamps", "sure"),
        ] {
            let e = parse(&form(&[(field, value)]), Task::Transcribe).unwrap_err();
            assert_eq!(param_of(e), field, "{field}={value}");
        }
    }
}
