//! A Piper voice's `*.onnx.json`: what the model expects (phoneme ids, rate, scales, speakers).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The defaults piper-tts uses when `inference` leaves a scale out.
const DEFAULT_NOISE_SCALE: f32 = 0.667;
const DEFAULT_LENGTH_SCALE: f32 = 1.0;
const DEFAULT_NOISE_W: f32 = 0.8;

#[derive(Clone, Debug)]
pub struct PiperConfig {
    pub sample_rate: u32,
    pub espeak_voice: String,
    pub language: Option<String>,
    pub phoneme_type: String,
    /// Phoneme (one Unicode scalar after NFD, or a listed cluster) → ids.
    pub phoneme_id_map: BTreeMap<String, Vec<i64>>,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub num_speakers: u32,
    /// Speaker name → id, for multi-speaker voices.
    pub speaker_id_map: BTreeMap<String, i64>,
    pub default_speaker_id: i64,
}

#[derive(Deserialize)]
struct Raw {
    audio: RawAudio,
    #[serde(default)]
    espeak: Option<RawEspeak>,
    #[serde(default)]
    inference: RawInference,
    phoneme_id_map: BTreeMap<String, Vec<i64>>,
    #[serde(default = "espeak_type")]
    phoneme_type: String,
    #[serde(default)]
    num_speakers: Option<u32>,
    #[serde(default)]
    speaker_id_map: BTreeMap<String, i64>,
    #[serde(default)]
    default_speaker_id: Option<i64>,
    #[serde(default)]
    language: Option<RawLanguage>,
}

fn espeak_type() -> String {
    "espeak".into()
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize, Default)]
struct RawInference {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

#[derive(Deserialize)]
struct RawLanguage {
    code: Option<String>,
}

impl PiperConfig {
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| format!("invalid Piper voice config: {e}"))?;
        if raw.phoneme_type != "espeak" {
            return Err(format!("Piper phoneme_type `{}` is not supported (only `espeak`)", raw.phoneme_type));
        }
        for key in ["^", "$", "_"] {
            if !raw.phoneme_id_map.contains_key(key) {
                return Err(format!("phoneme_id_map has no `{key}` (BOS/EOS/pad) entry"));
            }
        }
        if raw.audio.sample_rate == 0 {
            return Err("audio.sample_rate is 0".into());
        }
        let num_speakers = raw.num_speakers.unwrap_or(1).max(1);
        Ok(Self {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.map(|e| e.voice).unwrap_or_else(|| "en-us".into()),
            language: raw.language.and_then(|l| l.code),
            phoneme_type: raw.phoneme_type,
            phoneme_id_map: raw.phoneme_id_map,
            noise_scale: raw.inference.noise_scale.unwrap_or(DEFAULT_NOISE_SCALE),
            length_scale: raw.inference.length_scale.unwrap_or(DEFAULT_LENGTH_SCALE),
            noise_w: raw.inference.noise_w.unwrap_or(DEFAULT_NOISE_W),
            num_speakers,
            speaker_id_map: raw.speaker_id_map,
            default_speaker_id: raw.default_speaker_id.unwrap_or(0),
        })
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text)
    }

    pub fn multi_speaker(&self) -> bool {
        self.num_speakers > 1
    }

    /// The speaker id for a speaker name or number; `None` → the default speaker.
    pub fn speaker_id(&self, speaker: Option<&str>) -> Result<i64, String> {
        let Some(s) = speaker else { return Ok(self.default_speaker_id) };
        if let Some(id) = self.speaker_id_map.get(s) {
            return Ok(*id);
        }
        match s.parse::<i64>() {
            Ok(id) if id >= 0 && id < i64::from(self.num_speakers) => Ok(id),
            _ => Err(format!(
                "unknown speaker `{s}` (speakers: {})",
                self.speaker_id_map.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_multi_speaker_configs() {
        let one = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},"inference":{"noise_scale":0.5},
            "phoneme_id_map":{"^":[1],"$":[2],"_":[0],"a":[14]},"num_speakers":1}"#;
        let c = PiperConfig::parse(one).unwrap();
        assert_eq!((c.sample_rate, c.noise_scale, c.length_scale, c.noise_w), (22050, 0.5, 1.0, 0.8));
        assert!(!c.multi_speaker());
        let many = r#"{"audio":{"sample_rate":16000},"espeak":{"voice":"en-gb"},
            "phoneme_id_map":{"^":[1],"$":[2],"_":[0]},"num_speakers":3,
            "speaker_id_map":{"alice":0,"bob":2}}"#;
        let c = PiperConfig::parse(many).unwrap();
        assert!(c.multi_speaker());
        assert_eq!(c.speaker_id(Some("bob")).unwrap(), 2);
        assert_eq!(c.speaker_id(Some("1")).unwrap(), 1);
        assert_eq!(c.speaker_id(None).unwrap(), 0);
        assert!(c.speaker_id(Some("carol")).unwrap_err().contains("alice, bob"));
        assert!(c.speaker_id(Some("3")).is_err());
    }

    #[test]
    fn rejects_configs_it_cannot_honour() {
        assert!(PiperConfig::parse(r#"{"audio":{"sample_rate":1},"phoneme_id_map":{"^":[1]}}"#).is_err());
        let text = r#"{"audio":{"sample_rate":1},"phoneme_type":"text","phoneme_id_map":{"^":[1],"$":[2],"_":[0]}}"#;
        assert!(PiperConfig::parse(text).unwrap_err().contains("text"));
    }
}
