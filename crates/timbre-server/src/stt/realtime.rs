//! OpenAI's Realtime transcription protocol (`WS /v1/realtime?intent=transcription`), as a pure
//! state machine: client events in, server events and work for [`super::driver::run`] out.
//!
//! Client events: `transcription_session.update` (or `session.update`), with the beta session
//! shape (`input_audio_format`, `input_audio_transcription`, `turn_detection`) or the GA one
//! (`audio.input.{format, transcription, turn_detection}`); `input_audio_buffer.append`
//! (base64 audio), `.commit`, `.clear`. Server events: `transcription_session.created|updated`,
//! `input_audio_buffer.speech_started|speech_stopped|committed|cleared`,
//! `conversation.item.created`, `conversation.item.input_audio_transcription.delta|completed|
//! failed`, and `error` in OpenAI's shape. Deltas are append-only: they concatenate to the
//! completed transcript.

use base64::Engine as _;
use serde_json::{Value, json};
use timbre_engines::whisper::api::Transcript;

use super::dictation::{Dictation, DictationConfig, Event, JobError, MIN_COMMIT_SAMPLES};
use super::driver::{Action, Protocol};
use super::live::{final_options, partial_options};
use super::turns::{Chunker, TurnConfig};
use crate::stream_input::{ACCEPTED_RATES, AudioInput, Encoding};

/// Model names a session may ask for besides the served model's own: OpenAI's transcription
/// models, all answered by the served Whisper model.
pub const ALIASES: &[&str] = &["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];

const RESAMPLE_BLOCK_S: f32 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Format {
    encoding: Encoding,
    rate: u32,
}

impl Format {
    const PCM16: Format = Format { encoding: Encoding::Pcm16, rate: 24_000 };

    fn beta_name(self) -> &'static str {
        match self.encoding {
            Encoding::Mulaw => "g711_ulaw",
            Encoding::Alaw => "g711_alaw",
            _ => "pcm16",
        }
    }
}

/// What a rejected client event was about: OpenAI's `error.code` and `error.param`.
struct Refusal {
    code: &'static str,
    param: Option<String>,
    message: String,
}

fn refuse(code: &'static str, param: &str, message: impl Into<String>) -> Refusal {
    Refusal { code, param: Some(param.into()), message: message.into() }
}

/// A setting as a client wrote it: `0.6`, not f32 noise (`0.6000000238418579`).
pub fn tidy(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}

fn server_vad_json(t: &TurnConfig) -> Value {
    json!({"type": "server_vad", "threshold": tidy(t.threshold), "prefix_padding_ms": t.prefix_padding_ms,
           "silence_duration_ms": t.silence_duration_ms})
}

pub struct RealtimeSession {
    id: String,
    served_model: String,
    languages: Vec<String>,
    model: String,
    language: Option<String>,
    prompt: Option<String>,
    format: Format,
    turns: Option<TurnConfig>,
    input: AudioInput,
    chunker: Chunker,
    dictation: Dictation,
    next_event: u64,
    last_item: Option<String>,
    /// The client event of a commit waiting for the VAD to see the buffered tail.
    commit_event: Option<String>,
}

fn beta_format(name: &str) -> Option<Format> {
    match name {
        "pcm16" => Some(Format::PCM16),
        "g711_ulaw" => Some(Format { encoding: Encoding::Mulaw, rate: 8000 }),
        "g711_alaw" => Some(Format { encoding: Encoding::Alaw, rate: 8000 }),
        _ => None,
    }
}

/// GA format objects: `{"type": "audio/pcm", "rate": 24000}`, `{"type": "audio/pcmu"}`, `{"type": "audio/pcma"}`.
fn ga_format(v: &Value) -> Result<Format, Refusal> {
    let param = "session.audio.input.format";
    match v.get("type").and_then(Value::as_str) {
        Some("audio/pcm") => {
            let rate = v.get("rate").and_then(Value::as_u64).unwrap_or(24_000);
            let rate = u32::try_from(rate).ok().filter(|r| ACCEPTED_RATES.contains(r)).ok_or_else(|| {
                refuse("invalid_value", param, format!("rate {rate} is not supported; use one of {ACCEPTED_RATES:?}"))
            })?;
            Ok(Format { encoding: Encoding::Pcm16, rate })
        }
        Some("audio/pcmu") => Ok(Format { encoding: Encoding::Mulaw, rate: 8000 }),
        Some("audio/pcma") => Ok(Format { encoding: Encoding::Alaw, rate: 8000 }),
        _ => Err(refuse("invalid_value", param, "format type must be audio/pcm, audio/pcmu or audio/pcma")),
    }
}

impl RealtimeSession {
    pub fn new(id: &str, served_model: &str, languages: Vec<String>) -> Result<Self, crate::stream_input::InputError> {
        let turns = Some(TurnConfig::default());
        let mut s = Self {
            id: id.into(),
            served_model: served_model.into(),
            languages,
            model: ALIASES[0].into(),
            language: None,
            prompt: None,
            format: Format::PCM16,
            turns,
            input: AudioInput::new(Format::PCM16.rate, Format::PCM16.encoding, RESAMPLE_BLOCK_S)?,
            chunker: Chunker::default(),
            dictation: Dictation::new(Self::dictation_config(turns, None, None)),
            next_event: 0,
            last_item: None,
            commit_event: None,
        };
        s.dictation = Dictation::new(s.config());
        Ok(s)
    }

    fn dictation_config(
        turns: Option<TurnConfig>,
        language: Option<String>,
        prompt: Option<String>,
    ) -> DictationConfig {
        // Realtime clients get append-only deltas of the final, never revisable partials.
        let mut final_opts = final_options(language.clone(), 1, false, false);
        final_opts.prompt = prompt;
        DictationConfig {
            turns,
            partial_every_ms: None,
            partial_options: partial_options(language),
            final_options: final_opts,
        }
    }

    fn config(&self) -> DictationConfig {
        Self::dictation_config(self.turns, self.language.clone(), self.prompt.clone())
    }

    fn event(&mut self, kind: &str, mut body: Value) -> Action {
        self.next_event += 1;
        if let Some(o) = body.as_object_mut() {
            o.insert("type".into(), json!(kind));
            o.insert("event_id".into(), json!(format!("event_{:06}", self.next_event)));
        }
        Action::Send(body)
    }

    fn error(&mut self, r: Refusal, client_event: Option<&str>) -> Action {
        self.event(
            "error",
            json!({"error": {"type": "invalid_request_error", "code": r.code, "message": r.message,
                              "param": r.param, "event_id": client_event}}),
        )
    }

    fn session_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "realtime.transcription_session",
            "input_audio_format": self.format.beta_name(),
            "input_audio_sample_rate": self.format.rate,
            "input_audio_transcription": {"model": self.model, "language": self.language, "prompt": self.prompt.clone().unwrap_or_default()},
            "turn_detection": self.turns.as_ref().map(server_vad_json),
            "input_audio_noise_reduction": null,
            "include": null,
        })
    }

    fn item_id(utterance: u64) -> String {
        format!("item_{utterance:06}")
    }

    /// Apply a session update; nothing changes unless all of it is valid.
    fn update(&mut self, session: &Value) -> Result<(), Refusal> {
        let ga_input = session.get("audio").and_then(|a| a.get("input"));
        let (format_v, transcription, turn_v, tparam) = match ga_input {
            Some(input) => {
                if let Some(t) = session.get("type").and_then(Value::as_str).filter(|t| *t != "transcription") {
                    return Err(refuse(
                        "invalid_value",
                        "session.type",
                        format!("this endpoint serves transcription sessions, not `{t}`"),
                    ));
                }
                (
                    input.get("format"),
                    input.get("transcription"),
                    input.get("turn_detection"),
                    "session.audio.input.transcription",
                )
            }
            None => (
                session.get("input_audio_format"),
                session.get("input_audio_transcription"),
                session.get("turn_detection"),
                "session.input_audio_transcription",
            ),
        };
        let format = match format_v {
            None | Some(Value::Null) => self.format,
            Some(Value::String(name)) => beta_format(name).ok_or_else(|| {
                refuse(
                    "invalid_value",
                    "session.input_audio_format",
                    format!("`{name}` is not supported; use pcm16, g711_ulaw or g711_alaw"),
                )
            })?,
            Some(v) => ga_format(v)?,
        };
        let (mut model, mut language, mut prompt) = (self.model.clone(), self.language.clone(), self.prompt.clone());
        if let Some(t) = transcription.filter(|t| t.is_object()) {
            if let Some(m) = t.get("model").and_then(Value::as_str) {
                if m != self.served_model && !ALIASES.contains(&m) {
                    return Err(refuse(
                        "invalid_value",
                        &format!("{tparam}.model"),
                        format!(
                            "this session transcribes with `{}` (also accepted: {}); connect with ?model=NAME for another model",
                            self.served_model,
                            ALIASES.join(", ")
                        ),
                    ));
                }
                model = m.to_string();
            }
            match t.get("language") {
                Some(Value::String(raw)) if !raw.is_empty() => {
                    let code = timbre_engines::whisper::format::language_code(raw)
                        .filter(|c| self.languages.is_empty() || self.languages.iter().any(|l| l == c))
                        .ok_or_else(|| {
                            refuse(
                                "invalid_value",
                                &format!("{tparam}.language"),
                                format!("model `{}` does not know language `{raw}`", self.served_model),
                            )
                        })?;
                    language = Some(code.to_string());
                }
                Some(Value::Null) | Some(Value::String(_)) => language = None,
                _ => {}
            }
            match t.get("prompt") {
                Some(Value::String(p)) => prompt = Some(p.clone()).filter(|p| !p.is_empty()),
                Some(Value::Null) => prompt = None,
                _ => {}
            }
        }
        let turns = match turn_v {
            None => self.turns,
            Some(Value::Null) => None,
            Some(v) => {
                let param = "session.turn_detection";
                match v.get("type").and_then(Value::as_str).unwrap_or("server_vad") {
                    "server_vad" => {}
                    other => {
                        return Err(refuse(
                            "invalid_value",
                            param,
                            format!("turn_detection type `{other}` is not supported; use server_vad or null"),
                        ));
                    }
                }
                let d = self.turns.unwrap_or_default();
                let num = |k: &str| v.get(k).and_then(Value::as_f64);
                let t = TurnConfig {
                    threshold: num("threshold").map_or(d.threshold, |x| x as f32),
                    prefix_padding_ms: num("prefix_padding_ms").map_or(d.prefix_padding_ms, |x| x.max(0.0) as u32),
                    silence_duration_ms: num("silence_duration_ms")
                        .map_or(d.silence_duration_ms, |x| x.max(0.0) as u32),
                    ..d
                };
                t.validate().map_err(|(field, message)| {
                    refuse("invalid_value", &format!("{param}.{field}"), format!("{field} {message}"))
                })?;
                Some(t)
            }
        };
        if format != self.format {
            self.input = AudioInput::new(format.rate, format.encoding, RESAMPLE_BLOCK_S)
                .map_err(|e| refuse("invalid_value", "session.input_audio_format", e.to_string()))?;
            self.format = format;
        }
        (self.model, self.language, self.prompt, self.turns) = (model, language, prompt, turns);
        self.dictation.reconfigure(self.config());
        Ok(())
    }

    fn events(&mut self, events: Vec<Event>) -> Vec<Action> {
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::Transcribe(job) => out.push(Action::Transcribe(job)),
                Event::Started { utterance, padded_start, .. } => {
                    let body = json!({"audio_start_ms": (padded_start * 1000.0).round() as u64, "item_id": Self::item_id(utterance)});
                    out.push(self.event("input_audio_buffer.speech_started", body));
                }
                Event::Stopped { utterance, detected } => {
                    let item = Self::item_id(utterance.id);
                    if detected {
                        let body = json!({"audio_end_ms": (utterance.stop * 1000.0).round() as u64, "item_id": item});
                        out.push(self.event("input_audio_buffer.speech_stopped", body));
                    }
                    let previous = self.last_item.replace(item.clone());
                    out.push(
                        self.event(
                            "input_audio_buffer.committed",
                            json!({"previous_item_id": previous, "item_id": item}),
                        ),
                    );
                    let created = json!({"previous_item_id": previous, "item": {
                        "id": item, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
                        "content": [{"type": "input_audio", "transcript": null}]}});
                    out.push(self.event("conversation.item.created", created));
                }
                Event::Final { utterance, transcript } => {
                    let item = Self::item_id(utterance.id);
                    for delta in deltas(&transcript) {
                        let body = json!({"item_id": item, "content_index": 0, "delta": delta});
                        out.push(self.event("conversation.item.input_audio_transcription.delta", body));
                    }
                    let body = json!({"item_id": item, "content_index": 0, "transcript": transcript.text.trim(),
                                      "usage": {"type": "duration", "seconds": (utterance.stop - utterance.padded_start).max(0.0).ceil() as u64}});
                    out.push(self.event("conversation.item.input_audio_transcription.completed", body));
                }
                Event::Failed { utterance, error } => {
                    let body = json!({"item_id": Self::item_id(utterance.id), "content_index": 0,
                                      "error": {"type": "transcription_error", "code": error.code, "message": error.message, "param": null}});
                    out.push(self.event("conversation.item.input_audio_transcription.failed", body));
                }
                Event::Partial { .. } => {}
            }
        }
        out
    }

    fn append(&mut self, audio: Option<&str>, client_event: Option<&str>) -> Vec<Action> {
        let Some(b64) = audio else {
            let r = refuse("missing_required_parameter", "audio", "input_audio_buffer.append needs `audio` (base64)");
            return vec![self.error(r, client_event)];
        };
        let bytes = match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(b) => b,
            Err(e) => {
                return vec![self.error(
                    refuse("invalid_value", "audio", format!("`audio` is not valid base64: {e}")),
                    client_event,
                )];
            }
        };
        let samples = match self.input.push(&bytes) {
            Ok(s) => s,
            Err(e) => return vec![self.error(refuse("invalid_value", "audio", e.to_string()), client_event)],
        };
        if !self.dictation.uses_vad() {
            self.dictation.append(&samples);
            return Vec::new();
        }
        let chunks = self.chunker.push(&samples);
        if chunks.is_empty() { Vec::new() } else { vec![Action::Detect(chunks)] }
    }

    fn commit(&mut self, client_event: Option<&str>) -> Vec<Action> {
        // Whatever the resampler and chunker hold belongs to this commit.
        let tail = self.input.flush().unwrap_or_default();
        let mut out = Vec::new();
        if self.dictation.uses_vad() {
            self.commit_event = client_event.map(str::to_string);
            let mut chunks = self.chunker.push(&tail);
            chunks.extend(self.chunker.finish());
            if !chunks.is_empty() {
                out.push(Action::Detect(chunks));
            }
            out.push(Action::EndOfInput);
            return out;
        }
        self.dictation.append(&tail);
        self.commit_now(client_event)
    }

    fn commit_now(&mut self, client_event: Option<&str>) -> Vec<Action> {
        match self.dictation.commit() {
            Ok(events) => self.events(events),
            Err(samples) => {
                let message = format!(
                    "Error committing input audio buffer: buffer too small. Expected at least {}ms of audio, but buffer only has {:.2}ms of audio.",
                    MIN_COMMIT_SAMPLES * 1000 / 16_000,
                    samples as f64 / 16.0
                );
                vec![
                    self.error(Refusal { code: "input_audio_buffer_commit_empty", param: None, message }, client_event),
                ]
            }
        }
    }
}

/// The final as append-only deltas: one per segment, concatenating to the trimmed transcript.
pub fn deltas(t: &Transcript) -> Vec<String> {
    let whole = t.text.trim();
    let mut out = Vec::new();
    let mut sent = String::new();
    for s in &t.segments {
        let piece = if sent.is_empty() { s.text.trim_start() } else { s.text.as_str() };
        let candidate = format!("{sent}{piece}");
        if piece.is_empty() || !whole.starts_with(candidate.trim_end()) {
            continue;
        }
        sent = candidate;
        out.push(piece.to_string());
    }
    // Segments that do not add up to the text (or none at all): one delta with the rest.
    if let Some(rest) = whole.strip_prefix(sent.as_str()).filter(|r| !r.is_empty()) {
        out.push(rest.to_string());
    } else if !whole.starts_with(sent.as_str()) {
        out = vec![whole.to_string()];
    }
    out.retain(|d| !d.is_empty());
    out
}

impl Protocol for RealtimeSession {
    fn on_open(&mut self) -> Vec<Action> {
        let session = self.session_json();
        vec![self.event("transcription_session.created", json!({"session": session}))]
    }

    fn on_text(&mut self, text: &str) -> Vec<Action> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return vec![
                    self.error(Refusal { code: "invalid_json", param: None, message: format!("not JSON: {e}") }, None),
                ];
            }
        };
        let client_event = v.get("event_id").and_then(Value::as_str).map(str::to_string);
        let ev = client_event.as_deref();
        match v.get("type").and_then(Value::as_str) {
            Some("transcription_session.update" | "session.update") => {
                let session = v.get("session").cloned().unwrap_or(Value::Null);
                if !session.is_object() {
                    return vec![self.error(
                        refuse("missing_required_parameter", "session", "the update needs a `session` object"),
                        ev,
                    )];
                }
                match self.update(&session) {
                    Ok(()) => {
                        let session = self.session_json();
                        vec![self.event("transcription_session.updated", json!({"session": session}))]
                    }
                    Err(r) => vec![self.error(r, ev)],
                }
            }
            Some("input_audio_buffer.append") => self.append(v.get("audio").and_then(Value::as_str), ev),
            Some("input_audio_buffer.commit") => self.commit(ev),
            Some("input_audio_buffer.clear") => {
                let _ = self.input.flush();
                self.chunker.clear();
                self.dictation.clear();
                vec![Action::ResetVad, self.event("input_audio_buffer.cleared", json!({}))]
            }
            Some(other) => {
                let r =
                    refuse("unknown_event", "type", format!("`{other}` is not a transcription-session client event"));
                vec![self.error(r, ev)]
            }
            None => vec![self.error(refuse("missing_required_parameter", "type", "every event needs a `type`"), ev)],
        }
    }

    fn on_binary(&mut self, _bytes: &[u8]) -> Vec<Action> {
        let r = Refusal {
            code: "invalid_event",
            param: None,
            message:
                "binary frames are not part of the Realtime protocol; send input_audio_buffer.append with base64 audio"
                    .into(),
        };
        vec![self.error(r, None)]
    }

    fn on_speech(&mut self, samples: &[f32], probabilities: &[f32]) -> Vec<Action> {
        let events = self.dictation.push(samples, probabilities);
        self.events(events)
    }

    fn on_speech_error(&mut self, samples: &[f32], e: JobError) -> Vec<Action> {
        let silence = vec![0.0; samples.len() / super::turns::CHUNK];
        let message = format!("voice activity detection failed: {}", e.message);
        let mut out = vec![self.error(Refusal { code: e.code, param: None, message }, None)];
        out.extend(self.on_speech(samples, &silence));
        out
    }

    /// A commit in server-VAD mode, after the buffered tail went through the VAD.
    fn on_end_of_input(&mut self) -> Vec<Action> {
        let client_event = self.commit_event.take();
        self.commit_now(client_event.as_deref())
    }

    fn on_result(&mut self, job: u64, result: Result<Transcript, JobError>) -> Vec<Action> {
        let events = self.dictation.on_result(job, result);
        self.events(events)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use timbre_engines::whisper::api::Segment;

    use super::super::turns::CHUNK;
    use super::*;

    fn session() -> RealtimeSession {
        RealtimeSession::new("sess_test", "whisper-tiny.en", vec!["en".into()]).unwrap()
    }

    fn sent(actions: &[Action]) -> Vec<Value> {
        actions.iter().filter_map(|a| if let Action::Send(v) = a { Some(v.clone()) } else { None }).collect()
    }

    fn types(actions: &[Action]) -> Vec<String> {
        sent(actions).iter().map(|v| v["type"].as_str().unwrap().to_string()).collect()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn segment(text: &str) -> Segment {
        Segment {
            id: 0,
            seek: 0,
            start: 0.0,
            end: 1.0,
            text: text.into(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            no_speech_prob: 0.0,
            words: vec![],
        }
    }

    fn transcript(parts: &[&str]) -> Transcript {
        Transcript {
            text: parts.concat(),
            language: "en".into(),
            duration: 1.0,
            segments: parts.iter().map(|p| segment(p)).collect(),
        }
    }

    #[test]
    fn created_then_updated_with_beta_and_ga_shapes() {
        let mut s = session();
        let created = sent(&s.on_open());
        assert_eq!(created[0]["type"], "transcription_session.created");
        assert_eq!(created[0]["session"]["input_audio_format"], "pcm16");
        assert_eq!(created[0]["session"]["turn_detection"]["silence_duration_ms"], 500, "OpenAI's defaults");
        assert!(created[0]["event_id"].as_str().unwrap().starts_with("event_"));

        let out = sent(&s.on_text(
            r#"{"type":"transcription_session.update","session":{"input_audio_format":"g711_ulaw",
                "input_audio_transcription":{"model":"whisper-1","language":"en","prompt":"Timbre"},
                "turn_detection":{"type":"server_vad","threshold":0.6,"prefix_padding_ms":200,"silence_duration_ms":400}}}"#,
        ));
        let session = &out[0]["session"];
        assert_eq!(out[0]["type"], "transcription_session.updated");
        assert_eq!(session["input_audio_format"], "g711_ulaw");
        assert_eq!(session["input_audio_sample_rate"], 8000);
        assert_eq!(session["input_audio_transcription"]["prompt"], "Timbre");
        assert_eq!(session["turn_detection"]["threshold"], 0.6);
        assert_eq!(session["turn_detection"]["silence_duration_ms"], 400);

        let out = sent(&s.on_text(
            r#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{
                "format":{"type":"audio/pcm","rate":16000},"turn_detection":null}}}}"#,
        ));
        assert_eq!(out[0]["session"]["input_audio_format"], "pcm16");
        assert_eq!(out[0]["session"]["input_audio_sample_rate"], 16000);
        assert!(out[0]["session"]["turn_detection"].is_null(), "manual commits");
    }

    #[test]
    fn bad_events_get_openai_errors_and_change_nothing() {
        let mut s = session();
        for (event, param) in [
            (r#"{"type":"session.update","session":{"input_audio_format":"mp3"}}"#, Some("session.input_audio_format")),
            (
                r#"{"type":"session.update","session":{"input_audio_transcription":{"model":"whisper-large"}}}"#,
                Some("session.input_audio_transcription.model"),
            ),
            (
                r#"{"type":"session.update","session":{"input_audio_transcription":{"language":"fr"}}}"#,
                Some("session.input_audio_transcription.language"),
            ),
            (
                r#"{"type":"session.update","session":{"turn_detection":{"type":"server_vad","threshold":3}}}"#,
                Some("session.turn_detection.threshold"),
            ),
            (
                r#"{"type":"session.update","session":{"turn_detection":{"type":"semantic_vad"}}}"#,
                Some("session.turn_detection"),
            ),
            (r#"{"type":"input_audio_buffer.append","audio":"***"}"#, Some("audio")),
            (r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#, Some("audio")),
            (r#"{"type":"response.create","event_id":"c1"}"#, Some("type")),
            ("nonsense", None),
        ] {
            let out = sent(&s.on_text(event));
            assert_eq!(out[0]["type"], "error", "{event}");
            assert_eq!(out[0]["error"]["type"], "invalid_request_error");
            assert_eq!(out[0]["error"]["param"].as_str(), param, "{event}: {}", out[0]);
            assert!(!out[0]["error"]["message"].as_str().unwrap().is_empty());
        }
        let out = sent(&s.on_text(r#"{"type":"response.create","event_id":"c1"}"#));
        assert_eq!(out[0]["error"]["event_id"], "c1", "the client's event is named");
        assert_eq!(s.format, Format::PCM16, "nothing changed");
        assert_eq!(sent(&s.on_binary(&[1, 2]))[0]["error"]["code"], "invalid_event");
    }

    #[test]
    fn manual_commit_transcribes_the_buffer() {
        let mut s = session();
        s.on_text(r#"{"type":"session.update","session":{"input_audio_format":"pcm16","turn_detection":null}}"#);
        let short =
            s.on_text(&format!(r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#, b64(&[0u8; 2 * 1200])));
        assert!(short.is_empty());
        let out = sent(&s.on_text(r#"{"type":"input_audio_buffer.commit","event_id":"c9"}"#));
        assert_eq!(out[0]["error"]["code"], "input_audio_buffer_commit_empty", "50 ms at 24 kHz");
        assert_eq!(out[0]["error"]["event_id"], "c9");
        s.on_text(&format!(r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#, b64(&[0u8; 2 * 2400])));
        let out = s.on_text(r#"{"type":"input_audio_buffer.commit"}"#);
        assert_eq!(types(&out), vec!["input_audio_buffer.committed", "conversation.item.created"]);
        let committed = &sent(&out)[0];
        assert_eq!(committed["item_id"], "item_000000");
        assert!(committed["previous_item_id"].is_null());
        let Some(Action::Transcribe(job)) = out.iter().find(|a| matches!(a, Action::Transcribe(_))) else { panic!() };
        assert_eq!(job.audio.len(), 2400, "150 ms at 16 kHz");
        let done = s.on_result(job.id, Ok(transcript(&[" Hello", " world."])));
        let msgs = sent(&done);
        assert_eq!(
            types(&done),
            vec![
                "conversation.item.input_audio_transcription.delta",
                "conversation.item.input_audio_transcription.delta",
                "conversation.item.input_audio_transcription.completed"
            ]
        );
        assert_eq!((msgs[0]["delta"].as_str(), msgs[1]["delta"].as_str()), (Some("Hello"), Some(" world.")));
        assert_eq!(msgs[2]["transcript"], "Hello world.");
        assert_eq!(msgs[2]["item_id"], "item_000000");
        let cleared = s.on_text(r#"{"type":"input_audio_buffer.clear"}"#);
        assert_eq!(cleared[0], Action::ResetVad);
        assert_eq!(types(&cleared), vec!["input_audio_buffer.cleared"]);
    }

    #[test]
    fn server_vad_events_follow_openai() {
        let mut s = session();
        s.on_text(r#"{"type":"session.update","session":{"turn_detection":{"prefix_padding_ms":64,"silence_duration_ms":160}}}"#);
        let out =
            s.on_text(&format!(r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#, b64(&[0u8; 2 * 2400 * 3])));
        assert!(
            matches!(&out[..], [Action::Detect(c)] if c.len() == 9 * CHUNK),
            "0.3 s at 24 kHz = 4800 samples → 9 chunks"
        );
        let mut all = Vec::new();
        for p in [0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1] {
            all.extend(s.on_speech(&vec![0.0; CHUNK], &[p]));
        }
        assert_eq!(
            types(&all),
            vec![
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.created"
            ]
        );
        let msgs = sent(&all);
        assert_eq!(msgs[0]["audio_start_ms"], 0, "2 chunks of padding before chunk 2 (64 ms)");
        assert_eq!(msgs[1]["audio_end_ms"], 288, "speech end (128 ms) + 160 ms of silence");
        let Some(Action::Transcribe(job)) = all.iter().find(|a| matches!(a, Action::Transcribe(_))) else { panic!() };
        assert!(!job.options.word_timestamps);
        let failed = sent(&s.on_result(job.id, Err(JobError { code: "overloaded", message: "busy".into() })));
        assert_eq!(failed[0]["type"], "conversation.item.input_audio_transcription.failed");
        assert_eq!(failed[0]["error"]["code"], "overloaded");
        // A commit with nobody speaking has nothing to commit.
        let out = s.on_text(r#"{"type":"input_audio_buffer.commit","event_id":"c2"}"#);
        assert_eq!(out.last(), Some(&Action::EndOfInput));
        let err = &sent(&s.on_end_of_input())[0];
        assert_eq!(err["error"]["code"], "input_audio_buffer_commit_empty");
        assert_eq!(err["error"]["event_id"], "c2");
    }

    #[test]
    fn deltas_concatenate_to_the_transcript() {
        assert_eq!(deltas(&transcript(&[" One.", " Two."])), vec!["One.", " Two."]);
        let odd = Transcript { text: " Something else".into(), ..transcript(&[" One."]) };
        assert_eq!(deltas(&odd), vec!["Something else"]);
        let bare = Transcript { text: " Text".into(), ..transcript(&[]) };
        assert_eq!(deltas(&bare), vec!["Text"]);
        assert!(deltas(&transcript(&[])).is_empty());
    }
}
