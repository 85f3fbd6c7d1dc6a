//! The simple live-transcription protocol of `WS /v1/stt/stream` (and Hana's `/ws/echo`):
//!
//! 1. the client sends a JSON config `{"sample_rate": 16000, "encoding": "pcm16"|"f32"|"mulaw"|
//!    "alaw", "language": "en"}` (plus optional tuning, see [`ConfigMsg`]); the server answers
//!    `{"type":"ready",…}`. A bad config gets `{"type":"error",…}` and the socket closes
//!    (1003 for an unsupported rate or encoding, 1008 otherwise);
//! 2. binary audio frames of any length;
//! 3. while someone speaks, `{"type":"partial","text"}` about every 0.5 s (the utterance so far,
//!    re-decoded); at each end of speech `{"type":"final","text","start","end","words"}`;
//! 4. `{"type":"eof"}`: the last utterance is finalised, then the socket closes with 1000.
//!
//! Frames that are not audio in the declared encoding get `{"type":"error"}` and the session
//! goes on. Pure: [`super::driver::run`] moves the messages and runs the models.

use axum::extract::ws::close_code;
use serde::Deserialize;
use serde_json::{Value, json};
use timbre_engines::whisper::api::{TranscribeOptions, Transcript};

use super::dictation::{Dictation, DictationConfig, Event, JobError};
use super::driver::{Action, Protocol};
use super::turns::{Chunker, TurnConfig};
use crate::stream_input::{AudioInput, Encoding};

/// Resampling block for rates other than 16 kHz: short, since it adds to the latency.
const RESAMPLE_BLOCK_S: f32 = 0.1;

/// Everything a config message may carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigMsg {
    #[serde(rename = "type", default)]
    _kind: Option<String>,
    sample_rate: Option<u32>,
    #[serde(default)]
    encoding: Option<String>,
    language: Option<String>,
    /// Beam width of finals (partials are always greedy). Default 1: finals come sooner.
    beam_size: Option<usize>,
    /// Words with times in finals (default true).
    word_timestamps: Option<bool>,
    /// Send partials (default true).
    partials: Option<bool>,
    /// Encode finals on Whisper's full 30 s window, as file transcription does (default false:
    /// only the utterance, several times faster; see `TranscribeOptions::fit_window`).
    full_window: Option<bool>,
    threshold: Option<f32>,
    prefix_padding_ms: Option<u32>,
    silence_duration_ms: Option<u32>,
}

/// Defaults of the simple protocol: a shorter silence than OpenAI's 500 ms so finals come soon
/// after the speaker stops.
pub fn default_turns() -> TurnConfig {
    TurnConfig { silence_duration_ms: 300, ..TurnConfig::default() }
}

pub const PARTIAL_EVERY_MS: u32 = 500;

/// The options of partial re-decodes: greedy, one temperature, no words — cheap, and revised anyway.
pub fn partial_options(language: Option<String>) -> TranscribeOptions {
    TranscribeOptions {
        language,
        temperatures: vec![0.0],
        beam_size: 1,
        best_of: 1,
        word_timestamps: false,
        vad_filter: false,
        compression_ratio_threshold: None,
        log_prob_threshold: None,
        condition_on_previous_text: false,
        fit_window: true,
        ..TranscribeOptions::default()
    }
}

/// Finals: the file defaults (fallback, thresholds), on the utterance alone unless `full_window`.
pub fn final_options(
    language: Option<String>,
    beam_size: usize,
    word_timestamps: bool,
    full_window: bool,
) -> TranscribeOptions {
    TranscribeOptions {
        language,
        beam_size,
        word_timestamps,
        vad_filter: false,
        condition_on_previous_text: false,
        fit_window: !full_window,
        ..TranscribeOptions::default()
    }
}

fn error(code: &str, message: impl std::fmt::Display, param: Option<&str>) -> Action {
    Action::Send(json!({"type": "error", "code": code, "message": message.to_string(), "param": param}))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Words of a final: Whisper's leading space trimmed, as OpenAI's `words`.
pub fn words(t: &Transcript) -> Vec<Value> {
    t.segments
        .iter()
        .flat_map(|s| &s.words)
        .map(|w| json!({"word": w.word.trim(), "start": round3(w.start), "end": round3(w.end), "probability": timbre_engines::whisper::format::short(w.probability)}))
        .collect()
}

pub struct LiveSession {
    model: String,
    /// Languages the model knows (`["en"]` for English-only models).
    languages: Vec<String>,
    input: Option<AudioInput>,
    chunker: Chunker,
    dictation: Option<Dictation>,
    /// `eof` received: audio after it is refused.
    ended: bool,
    /// The input is flushed into finals: the socket closes once they are sent.
    flushed: bool,
}

impl LiveSession {
    pub fn new(model: &str, languages: Vec<String>) -> Self {
        Self {
            model: model.into(),
            languages,
            input: None,
            chunker: Chunker::default(),
            dictation: None,
            ended: false,
            flushed: false,
        }
    }

    fn configure(&mut self, text: &str) -> Vec<Action> {
        let refuse = |code: u16, param: Option<&str>, message: String| {
            vec![error("invalid_config", message, param), Action::Close(code, "invalid config")]
        };
        let msg: ConfigMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                return refuse(
                    close_code::POLICY,
                    None,
                    format!(
                        "the first message must be the JSON config {{\"sample_rate\", \"encoding\", \"language\"}}: {e}"
                    ),
                );
            }
        };
        let Some(rate) = msg.sample_rate else {
            return refuse(close_code::POLICY, Some("sample_rate"), "`sample_rate` is required (e.g. 16000)".into());
        };
        let encoding = match msg.encoding.as_deref().unwrap_or("pcm16") {
            "pcm16" => Encoding::Pcm16,
            "f32" => Encoding::F32,
            "mulaw" => Encoding::Mulaw,
            "alaw" => Encoding::Alaw,
            other => {
                return refuse(
                    close_code::UNSUPPORTED,
                    Some("encoding"),
                    format!("encoding `{other}` is not supported; use pcm16, f32, mulaw or alaw"),
                );
            }
        };
        let input = match AudioInput::new(rate, encoding, RESAMPLE_BLOCK_S) {
            Ok(i) => i,
            Err(e) => return refuse(close_code::UNSUPPORTED, Some("sample_rate"), e.to_string()),
        };
        let language = match msg.language.as_deref() {
            None => None,
            Some(raw) => match timbre_engines::whisper::format::language_code(raw) {
                Some(code) if self.languages.is_empty() || self.languages.iter().any(|l| l == code) => {
                    Some(code.to_string())
                }
                _ => {
                    let known =
                        if self.languages.len() <= 5 { self.languages.join(", ") } else { "ISO 639-1 codes".into() };
                    return refuse(
                        close_code::POLICY,
                        Some("language"),
                        format!("model `{}` does not know language `{raw}` ({known})", self.model),
                    );
                }
            },
        };
        let beam_size = msg.beam_size.unwrap_or(1);
        if !(1..=super::request::MAX_BEAMS).contains(&beam_size) {
            return refuse(
                close_code::POLICY,
                Some("beam_size"),
                format!("must be between 1 and {}", super::request::MAX_BEAMS),
            );
        }
        let d = default_turns();
        let turns = TurnConfig {
            threshold: msg.threshold.unwrap_or(d.threshold),
            prefix_padding_ms: msg.prefix_padding_ms.unwrap_or(d.prefix_padding_ms),
            silence_duration_ms: msg.silence_duration_ms.unwrap_or(d.silence_duration_ms),
            ..d
        };
        if let Err((param, message)) = turns.validate() {
            return refuse(close_code::POLICY, Some(param), format!("{param} {message}"));
        }
        let word_timestamps = msg.word_timestamps.unwrap_or(true);
        let partials = msg.partials.unwrap_or(true);
        let full_window = msg.full_window.unwrap_or(false);
        self.dictation = Some(Dictation::new(DictationConfig {
            turns: Some(turns),
            partial_every_ms: partials.then_some(PARTIAL_EVERY_MS),
            partial_options: partial_options(language.clone()),
            final_options: final_options(language.clone(), beam_size, word_timestamps, full_window),
        }));
        self.input = Some(input);
        vec![Action::Send(json!({
            "type": "ready",
            "model": self.model,
            "sample_rate": rate,
            "encoding": msg.encoding.as_deref().unwrap_or("pcm16"),
            "language": language,
            "threshold": super::realtime::tidy(turns.threshold),
            "prefix_padding_ms": turns.prefix_padding_ms,
            "silence_duration_ms": turns.silence_duration_ms,
            "partials": partials,
            "full_window": full_window,
        }))]
    }

    fn events(&self, events: Vec<Event>) -> Vec<Action> {
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::Transcribe(job) => out.push(Action::Transcribe(job)),
                Event::Partial { text, .. } => out.push(Action::Send(json!({"type": "partial", "text": text}))),
                Event::Final { utterance, transcript } => {
                    let text = transcript.text.trim();
                    // Noise the VAD took for speech decodes to nothing: not worth a message.
                    if !text.is_empty() {
                        out.push(Action::Send(json!({
                            "type": "final",
                            "text": text,
                            "start": round3(utterance.start),
                            "end": round3(utterance.end),
                            "words": words(&transcript),
                        })));
                    }
                }
                Event::Failed { utterance, error: e } => out.push(Action::Send(json!({
                    "type": "error",
                    "code": e.code,
                    "message": format!("transcription of {:.2}–{:.2} s failed: {}", utterance.start, utterance.end, e.message),
                    "param": null,
                }))),
                Event::Started { .. } | Event::Stopped { .. } => {}
            }
        }
        if self.flushed && self.dictation.as_ref().is_none_or(|d| d.outstanding() == 0) {
            out.push(Action::Close(close_code::NORMAL, "done"));
        }
        out
    }

    fn samples(&mut self, samples: Vec<f32>) -> Vec<Action> {
        let chunks = self.chunker.push(&samples);
        if chunks.is_empty() { Vec::new() } else { vec![Action::Detect(chunks)] }
    }
}

impl Protocol for LiveSession {
    fn on_text(&mut self, text: &str) -> Vec<Action> {
        if self.input.is_none() {
            return self.configure(text);
        }
        let kind =
            serde_json::from_str::<Value>(text).map(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
        match kind {
            Err(e) => vec![error("invalid_json", format!("not JSON: {e}"), None)],
            Ok(Some(k)) if k == "eof" => {
                if self.ended {
                    return Vec::new();
                }
                self.ended = true;
                let tail = match self.input.as_mut().map(AudioInput::flush) {
                    Some(Ok(t)) => t,
                    _ => Vec::new(),
                };
                let mut chunks = self.chunker.push(&tail);
                chunks.extend(self.chunker.finish());
                let mut out = Vec::new();
                if !chunks.is_empty() {
                    out.push(Action::Detect(chunks));
                }
                out.push(Action::EndOfInput);
                out
            }
            Ok(Some(k)) if k == "config" => {
                vec![error("already_configured", "the session is configured; send audio or eof", Some("type"))]
            }
            Ok(None) => vec![error("already_configured", "the session is configured; send audio or eof", None)],
            Ok(Some(other)) => {
                vec![error(
                    "unknown_type",
                    format!("unknown message type `{other}` (only `eof` after the config)"),
                    Some("type"),
                )]
            }
        }
    }

    fn on_binary(&mut self, bytes: &[u8]) -> Vec<Action> {
        let Some(input) = self.input.as_mut() else {
            return vec![
                error("no_config", "send the JSON config message before audio", None),
                Action::Close(close_code::POLICY, "no config"),
            ];
        };
        if self.ended {
            return vec![error("after_eof", "audio after eof is ignored", None)];
        }
        match input.push(bytes) {
            Ok(samples) => self.samples(samples),
            Err(e) => vec![error("invalid_audio", e, None)],
        }
    }

    fn on_speech(&mut self, samples: &[f32], probabilities: &[f32]) -> Vec<Action> {
        let events = self.dictation.as_mut().map(|d| d.push(samples, probabilities)).unwrap_or_default();
        self.events(events)
    }

    fn on_speech_error(&mut self, samples: &[f32], e: JobError) -> Vec<Action> {
        let silence = vec![0.0; samples.len() / super::turns::CHUNK];
        let mut out = vec![error(e.code, format!("voice activity detection failed: {}", e.message), None)];
        out.extend(self.on_speech(samples, &silence));
        out
    }

    fn on_end_of_input(&mut self) -> Vec<Action> {
        self.flushed = true;
        let events = self.dictation.as_mut().and_then(|d| d.commit().ok()).unwrap_or_default();
        self.events(events)
    }

    fn on_result(&mut self, job: u64, result: Result<Transcript, JobError>) -> Vec<Action> {
        let events = self.dictation.as_mut().map(|d| d.on_result(job, result)).unwrap_or_default();
        self.events(events)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::turns::CHUNK;
    use super::*;

    fn session() -> LiveSession {
        LiveSession::new("whisper-tiny.en", vec!["en".into()])
    }

    fn sent(actions: &[Action]) -> Vec<Value> {
        actions.iter().filter_map(|a| if let Action::Send(v) = a { Some(v.clone()) } else { None }).collect()
    }

    fn closes(actions: &[Action]) -> Option<u16> {
        actions.iter().find_map(|a| if let Action::Close(c, _) = a { Some(*c) } else { None })
    }

    #[test]
    fn a_bad_config_is_refused_and_closes() {
        for (config, param, code) in [
            (r#"{"encoding":"pcm16"}"#, Some("sample_rate"), close_code::POLICY),
            (r#"{"sample_rate":12345}"#, Some("sample_rate"), close_code::UNSUPPORTED),
            (r#"{"sample_rate":16000,"encoding":"opus"}"#, Some("encoding"), close_code::UNSUPPORTED),
            (r#"{"sample_rate":16000,"language":"de"}"#, Some("language"), close_code::POLICY),
            (r#"{"sample_rate":16000,"beam_size":0}"#, Some("beam_size"), close_code::POLICY),
            (r#"{"sample_rate":16000,"silence_duration_ms":1}"#, Some("silence_duration_ms"), close_code::POLICY),
            (r#"{"sample_rate":16000,"volume":3}"#, None, close_code::POLICY),
            ("not json", None, close_code::POLICY),
        ] {
            let out = session().on_text(config);
            let v = &sent(&out)[0];
            assert_eq!(v["type"], "error", "{config}");
            assert_eq!(v["param"].as_str(), param, "{config}: {v}");
            assert_eq!(closes(&out), Some(code), "{config}");
        }
        let out = session().on_binary(&[0, 0]);
        assert_eq!(sent(&out)[0]["code"], "no_config");
        assert_eq!(closes(&out), Some(close_code::POLICY));
    }

    #[test]
    fn audio_goes_to_the_vad_in_whole_chunks() {
        let mut s = session();
        let ready = sent(&s.on_text(r#"{"sample_rate":16000,"encoding":"pcm16","language":"EN"}"#));
        assert_eq!(ready[0]["type"], "ready");
        assert_eq!(ready[0]["language"], "en");
        assert_eq!(ready[0]["silence_duration_ms"], 300);
        assert!(s.on_binary(&[0u8; 2 * 300]).is_empty(), "300 samples: under a chunk");
        let out = s.on_binary(&[0u8; 2 * 300]);
        assert!(matches!(&out[..], [Action::Detect(c)] if c.len() == CHUNK));
        let odd = s.on_binary(&[0u8; 3]);
        assert_eq!(sent(&odd)[0]["code"], "invalid_audio");
        assert_eq!(closes(&odd), None, "a bad frame does not end the session");
        assert_eq!(sent(&s.on_text("{oops"))[0]["code"], "invalid_json");
        assert_eq!(sent(&s.on_text(r#"{"type":"dance"}"#))[0]["code"], "unknown_type");
        // eof: the 88-sample tail is padded to a chunk and detected before the input ends.
        let out = s.on_text(r#"{"type":"eof"}"#);
        assert!(matches!(&out[..], [Action::Detect(c), Action::EndOfInput] if c.len() == CHUNK));
        assert_eq!(closes(&s.on_end_of_input()), Some(close_code::NORMAL), "nothing pending: close at once");
    }

    fn transcript(text: &str) -> Transcript {
        Transcript { text: text.into(), language: "en".into(), duration: 1.0, segments: vec![] }
    }

    #[test]
    fn partials_then_a_final_then_close_after_eof() {
        let mut s = session();
        s.on_text(r#"{"sample_rate":16000,"prefix_padding_ms":0}"#);
        let chunk = vec![0.1; CHUNK];
        // 16 speech chunks = 512 ms: the first partial is asked for.
        let mut jobs = Vec::new();
        for _ in 0..16 {
            for a in s.on_speech(&chunk, &[0.9]) {
                if let Action::Transcribe(j) = a {
                    jobs.push(j);
                }
            }
        }
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].options.beam_size, 1);
        assert!(!jobs[0].options.word_timestamps);
        let out = s.on_result(jobs[0].id, Ok(transcript(" hello")));
        assert_eq!(sent(&out), vec![json!({"type": "partial", "text": "hello"})]);
        // eof while speaking: the tail's VAD result does not close the socket early…
        let eof = s.on_text(r#"{"type":"eof"}"#);
        assert_eq!(eof, vec![Action::EndOfInput], "no tail: 16 whole chunks were sent");
        assert!(closes(&s.on_speech(&chunk, &[0.9])).is_none());
        // …the utterance becomes a final, then the socket closes.
        let out = s.on_end_of_input();
        let Some(Action::Transcribe(fin)) = out.into_iter().next() else { panic!() };
        assert!(fin.options.word_timestamps);
        let out = s.on_result(fin.id, Ok(transcript(" hello world")));
        let msgs = sent(&out);
        assert_eq!(msgs[0]["type"], "final");
        assert_eq!(msgs[0]["text"], "hello world");
        assert_eq!(
            (msgs[0]["start"].as_f64(), msgs[0]["end"].as_f64()),
            (Some(0.0), Some(0.544)),
            "17 chunks of speech"
        );
        assert_eq!(closes(&out), Some(close_code::NORMAL));
        assert_eq!(sent(&s.on_binary(&[0, 0]))[0]["code"], "after_eof");
    }

    #[test]
    fn failures_are_reported_and_empty_finals_skipped() {
        let mut s = session();
        s.on_text(r#"{"sample_rate":16000,"partials":false,"silence_duration_ms":64}"#);
        let chunk = vec![0.1; CHUNK];
        let mut jobs = Vec::new();
        for p in [0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1] {
            for a in s.on_speech(&chunk, &[p]) {
                if let Action::Transcribe(j) = a {
                    jobs.push(j);
                }
            }
        }
        assert_eq!(jobs.len(), 2, "two utterances, no partials");
        assert!(sent(&s.on_result(jobs[0].id, Ok(transcript("  ")))).is_empty());
        let err = sent(&s.on_result(jobs[1].id, Err(JobError { code: "overloaded", message: "busy".into() })));
        assert_eq!(err[0]["code"], "overloaded");
        let out = s.on_speech_error(&chunk, JobError { code: "overloaded", message: "vad busy".into() });
        assert!(sent(&out)[0]["message"].as_str().unwrap().contains("voice activity"));
    }
}
