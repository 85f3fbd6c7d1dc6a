//! Rendering a [`Transcript`] the way OpenAI's `/v1/audio/transcriptions` answers: `json`,
//! `text`, `srt`, `vtt` and `verbose_json`. Pure functions, shared by the HTTP routes and the CLI
//! so a file transcribed either way reads the same.

use serde_json::{Value, json};

use super::api::{Task, Transcript};

/// The `response_format` values OpenAI accepts for transcriptions and translations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseFormat {
    #[default]
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl ResponseFormat {
    pub const NAMES: &'static str = "json, text, srt, verbose_json, vtt";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::VerboseJson => "verbose_json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip; charset=utf-8",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }

    /// File extension for the CLI's `--output-dir`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "json",
            Self::Text => "txt",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
        }
    }
}

/// Which timestamp lists `verbose_json` carries (`timestamp_granularities[]`). OpenAI fills only
/// what was asked for, segments when nothing was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granularities {
    pub segment: bool,
    pub word: bool,
}

impl Default for Granularities {
    fn default() -> Self {
        Self { segment: true, word: false }
    }
}

/// Render `t` in `format`. Text formats end with a newline, as OpenAI's do.
pub fn render(t: &Transcript, format: ResponseFormat, task: Task, granularities: Granularities) -> String {
    match format {
        ResponseFormat::Json => json(t).to_string(),
        ResponseFormat::VerboseJson => verbose_json(t, task, granularities).to_string(),
        ResponseFormat::Text => format!("{}\n", t.text.trim()),
        ResponseFormat::Srt => srt(t),
        ResponseFormat::Vtt => vtt(t),
    }
}

/// Billing-style usage OpenAI reports for Whisper: whole seconds of input, rounded up.
fn usage(t: &Transcript) -> Value {
    json!({"type": "duration", "seconds": t.duration.max(0.0).ceil() as u64})
}

pub fn json(t: &Transcript) -> Value {
    json!({"text": t.text.trim(), "usage": usage(t)})
}

/// An `f32` as the shortest decimal that reads back as it (`0.01`, not `0.009999999776482582`
/// as widening to `f64` would print).
pub fn short(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Seconds rounded to the millisecond: float noise (`1.2300000000000002`) helps no one.
fn secs(s: f64) -> f64 {
    (s.max(0.0) * 1000.0).round() / 1000.0
}

pub fn verbose_json(t: &Transcript, task: Task, granularities: Granularities) -> Value {
    let mut out = json!({
        "task": match task { Task::Transcribe => "transcribe", Task::Translate => "translate" },
        "language": language_name(&t.language).unwrap_or(&t.language),
        "duration": secs(t.duration),
        "text": t.text.trim(),
    });
    if granularities.segment {
        let segments: Vec<Value> = t
            .segments
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "seek": s.seek,
                    "start": secs(s.start),
                    "end": secs(s.end),
                    "text": s.text,
                    "tokens": s.tokens,
                    "temperature": short(s.temperature),
                    "avg_logprob": short(s.avg_logprob),
                    "compression_ratio": short(s.compression_ratio),
                    "no_speech_prob": short(s.no_speech_prob),
                })
            })
            .collect();
        out["segments"] = Value::Array(segments);
    }
    if granularities.word {
        let words: Vec<Value> = t
            .segments
            .iter()
            .flat_map(|s| &s.words)
            .map(|w| json!({"word": w.word.trim(), "start": secs(w.start), "end": secs(w.end), "probability": short(w.probability)}))
            .collect();
        out["words"] = Value::Array(words);
    }
    out["usage"] = usage(t);
    out
}

/// `HH:MM:SS<sep>mmm`, rounded to the millisecond; negative times clamp to zero.
pub fn timestamp(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// Cue text that cannot break the cue: no blank lines (they end a cue), no `-->` (it starts a
/// timing line), surrounding whitespace trimmed.
fn cue_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("\n").replace("-->", "->")
}

/// The cues: segments with text, in order.
fn cues(t: &Transcript) -> impl Iterator<Item = (f64, f64, String)> + '_ {
    t.segments.iter().map(|s| (s.start, s.end.max(s.start), cue_text(&s.text))).filter(|(_, _, text)| !text.is_empty())
}

pub fn srt(t: &Transcript) -> String {
    let mut out = String::new();
    for (i, (start, end, text)) in cues(t).enumerate() {
        out.push_str(&format!("{}\n{} --> {}\n{}\n\n", i + 1, timestamp(start, ','), timestamp(end, ','), text));
    }
    out
}

/// WebVTT cue text must escape `&`, `<` and `>` (they start entities and tags).
fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn vtt(t: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (start, end, text) in cues(t) {
        out.push_str(&format!("{} --> {}\n{}\n\n", timestamp(start, '.'), timestamp(end, '.'), vtt_escape(&text)));
    }
    out
}

/// Whisper's languages: ISO 639-1 code (or Whisper's own code where there is none) → the English
/// name OpenAI's `verbose_json` reports.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// A language as a client may name it (`en`, `EN`, `english`) → Whisper's code.
pub fn language_code(input: &str) -> Option<&'static str> {
    let wanted = input.trim().to_ascii_lowercase();
    LANGUAGES.iter().find(|(c, n)| *c == wanted || *n == wanted).map(|(c, _)| *c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::whisper::api::{Segment, Word};

    fn segment(id: usize, start: f64, end: f64, text: &str, words: Vec<Word>) -> Segment {
        Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![50364, 400 + id as u32],
            temperature: 0.0,
            avg_logprob: -0.25,
            compression_ratio: 1.5,
            no_speech_prob: 0.01,
            words,
        }
    }

    fn word(w: &str, start: f64, end: f64) -> Word {
        Word { start, end, word: w.into(), probability: 0.9 }
    }

    fn transcript() -> Transcript {
        Transcript {
            text: " Hello there. <b>Fish</b> & chips --> now".into(),
            language: "en".into(),
            duration: 3661.2346,
            segments: vec![
                segment(0, 0.0, 1.5004, " Hello there.", vec![word(" Hello", 0.0, 0.5), word(" there.", 0.6, 1.5)]),
                segment(1, 1.5, 1.5, "   ", vec![]),
                segment(2, 3600.0, 3661.2346, " <b>Fish</b> & chips\n\n--> now", vec![word(" Fish", 3600.0, 3601.0)]),
            ],
        }
    }

    #[test]
    fn timestamps_round_to_the_millisecond_with_hours() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(1.0006, ','), "00:00:01,001");
        assert_eq!(timestamp(59.9999, '.'), "00:01:00.000");
        assert_eq!(timestamp(3661.2346, '.'), "01:01:01.235");
        assert_eq!(timestamp(-2.0, ','), "00:00:00,000");
        assert_eq!(timestamp(100.0 * 3600.0, ','), "100:00:00,000");
    }

    #[test]
    fn srt_numbers_cues_from_one_and_skips_empty_segments() {
        let out = srt(&transcript());
        let expected = "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n\
                        2\n01:00:00,000 --> 01:01:01,235\n<b>Fish</b> & chips\n-> now\n\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn vtt_has_a_header_dots_and_escapes_markup() {
        let out = vtt(&transcript());
        let expected = "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n\
                        01:00:00.000 --> 01:01:01.235\n&lt;b&gt;Fish&lt;/b&gt; &amp; chips\n-&gt; now\n\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn json_and_text_trim_the_leading_space() {
        let t = transcript();
        let v = json(&t);
        assert_eq!(v["text"], "Hello there. <b>Fish</b> & chips --> now");
        assert_eq!(v["usage"], json!({"type": "duration", "seconds": 3662}));
        assert_eq!(
            render(&t, ResponseFormat::Text, Task::Transcribe, Granularities::default()),
            "Hello there. <b>Fish</b> & chips --> now\n"
        );
    }

    #[test]
    fn verbose_json_fills_only_the_granularities_asked_for() {
        let t = transcript();
        let v = verbose_json(&t, Task::Transcribe, Granularities::default());
        assert_eq!(v["task"], "transcribe");
        assert_eq!(v["language"], "english");
        assert_eq!(v["duration"], 3661.235);
        let seg = &v["segments"][0];
        let keys: Vec<&str> = seg.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "id",
            "seek",
            "start",
            "end",
            "text",
            "tokens",
            "temperature",
            "avg_logprob",
            "compression_ratio",
            "no_speech_prob",
        ];
        want.sort_unstable();
        assert_eq!(keys, want, "OpenAI's segment fields, no more");
        assert_eq!(seg["end"], 1.5);
        assert_eq!(seg["avg_logprob"], -0.25);
        assert_eq!(seg["no_speech_prob"], 0.01, "f32 printed short");
        assert_eq!(seg["tokens"], json!([50364, 400]));
        assert!(v.get("words").is_none());

        let words_only = verbose_json(&t, Task::Translate, Granularities { segment: false, word: true });
        assert_eq!(words_only["task"], "translate");
        assert!(words_only.get("segments").is_none());
        assert_eq!(words_only["words"][0], json!({"word": "Hello", "start": 0.0, "end": 0.5, "probability": 0.9}));
        assert_eq!(words_only["words"].as_array().unwrap().len(), 3);

        let both = verbose_json(&t, Task::Transcribe, Granularities { segment: true, word: true });
        assert!(both["segments"].is_array() && both["words"].is_array());
        let unknown = Transcript { language: "xx".into(), ..t };
        assert_eq!(verbose_json(&unknown, Task::Transcribe, Granularities::default())["language"], "xx");
    }

    #[test]
    fn formats_and_languages_parse() {
        for name in ["json", "text", "srt", "vtt", "verbose_json"] {
            assert_eq!(ResponseFormat::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(ResponseFormat::parse("xml"), None);
        assert_eq!(ResponseFormat::Vtt.content_type(), "text/vtt; charset=utf-8");
        assert_eq!(LANGUAGES.len(), 100);
        assert_eq!(language_code("EN"), Some("en"));
        assert_eq!(language_code("German"), Some("de"));
        assert_eq!(language_code("klingon"), None);
        assert_eq!(language_name("yue"), Some("cantonese"));
    }
}
