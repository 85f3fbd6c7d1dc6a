//! Server-sent events of a streamed transcription (`stream=true`), in OpenAI's shape:
//! `transcript.text.delta` per decoded segment as soon as it is decoded, then one
//! `transcript.text.done` with the whole text.

use serde_json::{Value, json};
use timbre_engines::whisper::api::Transcript;

/// Turns segments into deltas that concatenate to the final text (the first loses Whisper's
/// leading space, as the final text does).
#[derive(Default)]
pub struct Deltas {
    started: bool,
}

impl Deltas {
    /// The delta event for a segment's text, or `None` when it adds nothing.
    pub fn next(&mut self, segment_text: &str) -> Option<Value> {
        let text = if self.started { segment_text } else { segment_text.trim_start() };
        if text.is_empty() {
            return None;
        }
        self.started = true;
        Some(json!({"type": "transcript.text.delta", "delta": text, "logprobs": null}))
    }
}

pub fn done(t: &Transcript) -> Value {
    json!({
        "type": "transcript.text.done",
        "text": t.text.trim(),
        "logprobs": null,
        "usage": {"type": "duration", "seconds": t.duration.max(0.0).ceil() as u64},
    })
}

/// A failure after the stream began (the status line is already sent): the envelope as an event.
pub fn error(e: &crate::error::ApiError) -> Value {
    json!({"type": "error", "error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_concatenate_to_the_done_text() {
        let t = Transcript { text: " One. Two.".into(), language: "en".into(), duration: 2.2, segments: vec![] };
        let mut d = Deltas::default();
        assert_eq!(d.next("   "), None, "an empty first segment is skipped");
        let a = d.next(" One.").unwrap_or_default();
        let b = d.next(" Two.").unwrap_or_default();
        assert_eq!(a["type"], "transcript.text.delta");
        let joined = format!("{}{}", a["delta"].as_str().unwrap_or_default(), b["delta"].as_str().unwrap_or_default());
        let done = done(&t);
        assert_eq!(done["text"], joined.as_str());
        assert_eq!(done["usage"]["seconds"], 3);
        assert_eq!(done["type"], "transcript.text.done");
    }
}
