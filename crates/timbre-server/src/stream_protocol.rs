//! The keypoint stream protocol's messages, parsed and checked without any I/O: what a client
//! may send (`config`, `reset`, frames as JSON or little-endian f32) and the frame-rate
//! throttle. `routes::streams` moves messages; every rule about their content lives here.

use std::time::{Duration, Instant};

use serde::Deserialize;
use timbre_engines::stream::{HAND, Method, Smoothing};

/// Most hands one frame may carry.
pub const MAX_HANDS: usize = 4;

/// One hand's keypoints: 21 `[x, y, z]` triples, or 63 numbers, read straight into floats (an
/// untagged enum would buffer every number first: that showed in the profile). A triple of
/// another length or a non-number makes the count wrong or fails, and is reported then.
struct Points {
    values: Vec<f32>,
    /// Some element was an array whose length was not 3, or arrays and numbers were mixed.
    ragged: bool,
    /// Elements seen that were numbers / arrays.
    numbers: usize,
    arrays: usize,
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Outer;
        impl<'de> serde::de::Visitor<'de> for Outer {
            type Value = Points;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("21 [x, y, z] triples or 63 numbers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Points, A::Error> {
                let mut p = Points { values: Vec::with_capacity(HAND), ragged: false, numbers: 0, arrays: 0 };
                while let Some(()) = seq.next_element_seed(Item(&mut p))? {}
                p.ragged |= p.numbers > 0 && p.arrays > 0;
                Ok(p)
            }
        }
        d.deserialize_seq(Outer)
    }
}

/// One element of the outer array: a number, or an array of numbers (appended in place).
struct Item<'a>(&'a mut Points);

impl<'de> serde::de::DeserializeSeed<'de> for Item<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Item<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or an [x, y, z] triple")
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.numbers += 1;
        self.0.values.push(v as f32);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.numbers += 1;
        self.0.values.push(v as f32);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.numbers += 1;
        self.0.values.push(v as f32);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(v) = seq.next_element::<f32>()? {
            self.0.values.push(v);
            n += 1;
        }
        self.0.arrays += 1;
        self.0.ragged |= n != 3;
        Ok(())
    }
}

/// A hand in `hands`: bare keypoints, or an object with a presence score (MediaPipe's
/// handedness score or detection confidence).
#[derive(Deserialize)]
#[serde(untagged)]
enum HandEntry {
    Bare(Points),
    Scored {
        keypoints: Points,
        #[serde(default, alias = "presence")]
        score: Option<f32>,
    },
}

/// Every field any client message may have; `type` says which it is (absent: a frame).
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    t: Option<f64>,
    #[serde(default)]
    keypoints: Option<Points>,
    #[serde(default)]
    hands: Option<Vec<HandEntry>>,
    #[serde(default, alias = "score")]
    presence: Option<f32>,
    #[serde(default)]
    smoothing: Option<SmoothingMsg>,
    #[serde(default)]
    window: Option<usize>,
    #[serde(default)]
    alpha: Option<f32>,
    #[serde(default)]
    min_confidence: Option<f32>,
}

/// `"smoothing": "ema"` or `"smoothing": {"method": "ema", "alpha": 0.3}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SmoothingMsg {
    Name(Method),
    Full {
        #[serde(default)]
        method: Option<Method>,
        #[serde(default, alias = "window")]
        frames: Option<usize>,
        #[serde(default)]
        alpha: Option<f32>,
    },
}

/// A hand with its presence score (1.0 when the client sent none).
#[derive(Clone, Debug, PartialEq)]
pub struct Hand {
    pub keypoints: Vec<f32>,
    pub presence: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The client's timestamp (ms), echoed in the reply.
    pub t: Option<f64>,
    pub hands: Vec<Hand>,
}

/// Session settings a config message may change; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigChange {
    pub method: Option<Method>,
    pub frames: Option<usize>,
    pub alpha: Option<f32>,
    pub min_confidence: Option<f32>,
}

impl ConfigChange {
    /// `current` with this change applied, validated.
    pub fn apply(&self, current: Smoothing, min_confidence: f32) -> Result<(Smoothing, f32), String> {
        let smoothing = Smoothing {
            method: self.method.unwrap_or(current.method),
            frames: self.frames.unwrap_or(current.frames),
            alpha: self.alpha.unwrap_or(current.alpha),
        };
        smoothing.validate()?;
        let min = self.min_confidence.unwrap_or(min_confidence);
        if !(0.0..=1.0).contains(&min) {
            return Err(format!("min_confidence must be in [0, 1], got {min}"));
        }
        Ok((smoothing, min))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Frame(Frame),
    Config(ConfigChange),
    Reset,
}

/// Why a message was refused (sent back as `{"type":"error","code","message"}`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> ProtocolError {
    ProtocolError { code, message: message.into() }
}

const KEYPOINTS_HELP: &str = "keypoints must be 21 [x, y, z] triples (or 63 numbers), all finite";

fn hand_of(points: Points, presence: Option<f32>) -> Result<Hand, ProtocolError> {
    if points.ragged {
        return Err(invalid("invalid_frame", KEYPOINTS_HELP));
    }
    let keypoints = points.values;
    if keypoints.len() != HAND {
        return Err(invalid("invalid_frame", format!("{KEYPOINTS_HELP}; got {} numbers", keypoints.len())));
    }
    if keypoints.iter().any(|v| !v.is_finite()) {
        return Err(invalid("invalid_frame", format!("{KEYPOINTS_HELP}; got NaN or infinity")));
    }
    let presence = presence.unwrap_or(1.0);
    if !presence.is_finite() {
        return Err(invalid("invalid_frame", "presence must be a finite number"));
    }
    Ok(Hand { keypoints, presence })
}

/// A text message.
pub fn parse_text(text: &str) -> Result<Message, ProtocolError> {
    let msg: Incoming = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() { "not JSON" } else { "not a valid message" };
        invalid("invalid_message", format!("{what}: {e}; {KEYPOINTS_HELP}"))
    })?;
    match msg.kind.as_deref() {
        Some("reset") => Ok(Message::Reset),
        Some("config") => {
            let (method, frames, alpha) = match msg.smoothing {
                None => (None, None, None),
                Some(SmoothingMsg::Name(m)) => (Some(m), None, None),
                Some(SmoothingMsg::Full { method, frames, alpha }) => (method, frames, alpha),
            };
            Ok(Message::Config(ConfigChange {
                method,
                frames: frames.or(msg.window),
                alpha: alpha.or(msg.alpha),
                min_confidence: msg.min_confidence,
            }))
        }
        None | Some("frame") => {
            if let Some(t) = msg.t
                && !t.is_finite()
            {
                return Err(invalid("invalid_frame", "t must be a finite number of milliseconds"));
            }
            let hands = match (msg.keypoints, msg.hands) {
                (Some(points), None) => vec![hand_of(points, msg.presence)?],
                (None, Some(hands)) => {
                    if hands.len() > MAX_HANDS {
                        return Err(invalid("invalid_frame", format!("at most {MAX_HANDS} hands per frame")));
                    }
                    hands
                        .into_iter()
                        .map(|h| match h {
                            HandEntry::Bare(p) => hand_of(p, None),
                            HandEntry::Scored { keypoints, score } => hand_of(keypoints, score),
                        })
                        .collect::<Result<_, _>>()?
                }
                (Some(_), Some(_)) => return Err(invalid("invalid_frame", "send `keypoints` or `hands`, not both")),
                (None, None) => return Err(invalid("invalid_frame", "a frame needs `keypoints` or `hands`")),
            };
            Ok(Message::Frame(Frame { t: msg.t, hands }))
        }
        Some(other) => Err(invalid(
            "invalid_message",
            format!("unknown message type `{other}` (frames, `config` and `reset` are understood)"),
        )),
    }
}

/// A binary message: little-endian f32, `63 × hands` keypoint values, optionally preceded by
/// the timestamp in ms (`1 + 63 × hands` values; never a multiple of 63, so unambiguous).
pub fn parse_binary(bytes: &[u8]) -> Result<Frame, ProtocolError> {
    let help = "binary frames are little-endian f32: 63 × hands keypoint values, optionally after t (ms)";
    if !bytes.len().is_multiple_of(4) {
        return Err(invalid("invalid_frame", format!("{help}; got {} bytes", bytes.len())));
    }
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let (t, values) = match floats.len() % HAND {
        0 => (None, floats.as_slice()),
        1 => (floats.first().map(|t| f64::from(*t)), &floats[1..]),
        _ => return Err(invalid("invalid_frame", format!("{help}; got {} values", floats.len()))),
    };
    let count = values.len() / HAND;
    if count == 0 || count > MAX_HANDS {
        return Err(invalid("invalid_frame", format!("{help}; 1–{MAX_HANDS} hands, got {count}")));
    }
    if floats.iter().any(|v| !v.is_finite()) {
        return Err(invalid("invalid_frame", format!("{help}; got NaN or infinity")));
    }
    let hands = values.chunks_exact(HAND).map(|h| Hand { keypoints: h.to_vec(), presence: 1.0 }).collect();
    Ok(Frame { t, hands })
}

/// Frames beyond `max_fps` (averaged over a second) are dropped, not queued: a client that
/// floods gets a notice and keeps its session, and cannot starve the others.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    tokens: f64,
    last: Instant,
    dropped: u64,
    last_notice: Option<Instant>,
}

/// What the session should do with a frame.
#[derive(Debug, PartialEq)]
pub enum Admit {
    Accept,
    /// Dropped; `Some(n)` when a notice should tell the client that `n` frames were dropped
    /// since the last notice (at most one notice a second).
    Drop(Option<u64>),
}

impl Throttle {
    /// `max_fps` ≤ 0: no cap.
    pub fn new(max_fps: f64, now: Instant) -> Self {
        Self { rate: max_fps, tokens: max_fps.max(1.0), last: now, dropped: 0, last_notice: None }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        if self.rate <= 0.0 {
            return Admit::Accept;
        }
        let burst = self.rate.max(1.0);
        self.tokens = (self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admit::Accept;
        }
        self.dropped += 1;
        let due = self.last_notice.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if due {
            self.last_notice = Some(now);
            let n = std::mem::take(&mut self.dropped);
            Admit::Drop(Some(n))
        } else {
            Admit::Drop(None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn triples(v: impl std::fmt::Display) -> String {
        let one = format!("[{v},{v},{v}]");
        format!("[{}]", vec![one; 21].join(","))
    }

    #[test]
    fn frames_in_every_json_form() {
        let Message::Frame(f) = parse_text(&format!(r#"{{"t": 12.5, "keypoints": {}}}"#, triples(0.5))).unwrap() else {
            panic!()
        };
        assert_eq!(f.t, Some(12.5));
        assert_eq!(f.hands, vec![Hand { keypoints: vec![0.5; 63], presence: 1.0 }]);

        let flat = format!("[{}]", vec!["1"; 63].join(","));
        let Message::Frame(f) = parse_text(&format!(r#"{{"keypoints": {flat}, "presence": 0.3}}"#)).unwrap() else {
            panic!()
        };
        assert_eq!((f.t, f.hands[0].presence), (None, 0.3));

        let two = format!(
            r#"{{"type":"frame","hands": [{}, {{"keypoints": {}, "score": 0.8}}]}}"#,
            triples(1.0),
            triples(2.0)
        );
        let Message::Frame(f) = parse_text(&two).unwrap() else { panic!() };
        assert_eq!(f.hands.len(), 2);
        assert_eq!((f.hands[1].keypoints[0], f.hands[1].presence), (2.0, 0.8));
        let Message::Frame(f) = parse_text(r#"{"t": 1, "hands": []}"#).unwrap() else { panic!() };
        assert!(f.hands.is_empty(), "no hand in view is a valid frame");
    }

    #[test]
    fn malformed_frames_say_what_is_wrong() {
        let short = format!("[{}]", vec!["[1,2,3]"; 20].join(","));
        for (text, code, needle) in [
            ("not json", "invalid_message", "not JSON"),
            (r#"{"keypoints": 5}"#, "invalid_message", "not a valid message"),
            (&format!(r#"{{"keypoints": {short}}}"#) as &str, "invalid_frame", "got 60 numbers"),
            (r#"{"keypoints": [[1,2],[3,4]]}"#, "invalid_frame", "21 [x, y, z]"),
            (
                &format!(r#"{{"keypoints": [{}, 1, 2, 3]}}"#, vec!["[1,2,3]"; 20].join(",")) as &str,
                "invalid_frame",
                "21 [x, y, z]",
            ),
            (&format!(r#"{{"keypoints": {}}}"#, triples("1e39")) as &str, "invalid_frame", "NaN or infinity"),
            (r#"{"t": 1}"#, "invalid_frame", "needs `keypoints` or `hands`"),
            (r#"{"type": "dance"}"#, "invalid_message", "unknown message type `dance`"),
        ] {
            let err = parse_text(text).unwrap_err();
            assert_eq!(err.code, code, "{text}: {err:?}");
            assert!(err.message.contains(needle), "{text}: {}", err.message);
        }
        // JavaScript sends NaN as null.
        let with_null = triples(1.0).replacen("1", "null", 1);
        assert_eq!(parse_text(&format!(r#"{{"keypoints": {with_null}}}"#)).unwrap_err().code, "invalid_message");
    }

    #[test]
    fn control_messages() {
        assert_eq!(parse_text(r#"{"type":"reset"}"#).unwrap(), Message::Reset);
        let Message::Config(c) = parse_text(r#"{"type":"config","smoothing":"ema","alpha":0.2}"#).unwrap() else {
            panic!()
        };
        assert_eq!((c.method, c.alpha, c.frames), (Some(Method::Ema), Some(0.2), None));
        let Message::Config(c) =
            parse_text(r#"{"type":"config","smoothing":{"method":"majority","window":7},"min_confidence":0.9}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!((c.method, c.frames, c.min_confidence), (Some(Method::Majority), Some(7), Some(0.9)));
        let (s, min) = c.apply(Smoothing::default(), 0.5).unwrap();
        assert_eq!((s.frames, min), (7, 0.9));
        let bad = ConfigChange { alpha: Some(2.0), ..Default::default() };
        assert!(bad.apply(Smoothing::default(), 0.5).unwrap_err().contains("alpha"));
    }

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn binary_frames_with_and_without_t() {
        let f = parse_binary(&le(&[0.25; 63])).unwrap();
        assert_eq!((f.t, f.hands.len()), (None, 1));
        let mut with_t = vec![40.0];
        with_t.extend([0.5; 126]);
        let f = parse_binary(&le(&with_t)).unwrap();
        assert_eq!((f.t, f.hands.len(), f.hands[1].keypoints[62]), (Some(40.0), 2, 0.5));
        assert!(parse_binary(&le(&[0.0; 62])).unwrap_err().message.contains("got 62 values"));
        assert!(parse_binary(&[0, 0, 0]).unwrap_err().message.contains("3 bytes"));
        let mut nan = vec![0.0; 63];
        nan[5] = f32::NAN;
        assert!(parse_binary(&le(&nan)).unwrap_err().message.contains("NaN"));
        assert!(parse_binary(&[]).is_err());
    }

    #[test]
    fn throttle_drops_beyond_the_rate_with_one_notice_a_second() {
        let t0 = Instant::now();
        let mut th = Throttle::new(10.0, t0);
        let burst: Vec<Admit> = (0..15).map(|_| th.admit(t0)).collect();
        assert!(burst[..10].iter().all(|a| *a == Admit::Accept), "a second's worth passes");
        assert_eq!(burst[10], Admit::Drop(Some(1)));
        assert!(burst[11..].iter().all(|a| *a == Admit::Drop(None)));
        // 100 ms later one token is back.
        assert_eq!(th.admit(t0 + Duration::from_millis(100)), Admit::Accept);
        // A second after the first notice the next drop reports the ones in between.
        assert_eq!(th.admit(t0 + Duration::from_millis(100)), Admit::Drop(None));
        let later = t0 + Duration::from_millis(1000);
        assert_eq!((0..9).filter(|_| th.admit(later) == Admit::Accept).count(), 9, "0.9 s refilled 9 tokens");
        assert_eq!(th.admit(later), Admit::Drop(Some(6)));
        let mut open = Throttle::new(0.0, t0);
        assert!((0..1000).all(|_| open.admit(t0) == Admit::Accept));
    }
}
