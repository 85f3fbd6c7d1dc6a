//! Kokoro-82M distilled voices (the `hibari-tts` package): lexicon G2P → vocabulary ids → one
//! ONNX call per sentence for the spectral parameters and F0 → the signal tail in [`dsp`]. 24 kHz.

pub mod dsp;
mod fastmath;
pub mod g2p;
pub mod layout;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ort::value::Tensor;
use serde::Deserialize;

use crate::actor::Worker;
use crate::onnx::OnnxSession;

pub const SAMPLE_RATE: u32 = dsp::SR;
/// Sentences with more phonemes are cut at clause punctuation (the model's context is 512).
const MAX_PHONEMES: usize = 400;

/// One entry of `voices.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct VoiceEntry {
    pub kokoro: String,
    pub language: String,
    pub accent: String,
    pub gender: String,
    pub file: String,
    #[serde(default)]
    pub british: bool,
}

/// `voices.json` in document order, keeping only voices whose model file is in `dir`.
pub fn read_voices(dir: &Path) -> Result<Vec<(String, VoiceEntry)>, String> {
    let path = dir.join("voices.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let all: g2p::normalize::Ordered<VoiceEntry> =
        serde_json::from_str(&text).map_err(|e| format!("invalid {}: {e}", path.display()))?;
    Ok(all.0.into_iter().filter(|(_, v)| dir.join(&v.file).is_file()).collect())
}

pub enum KokoroInput {
    Text(String),
    Phonemes(String),
}

pub struct KokoroRequest {
    pub voice: String,
    pub input: KokoroInput,
    pub speed: f32,
    /// Add the shaped-noise component (off only for fidelity comparisons).
    pub noise: bool,
}

impl KokoroRequest {
    pub fn text(voice: &str, text: &str, speed: f32) -> Self {
        Self { voice: voice.into(), input: KokoroInput::Text(text.into()), speed, noise: true }
    }

    pub fn phonemes(voice: &str, phonemes: &str, speed: f32) -> Self {
        Self { voice: voice.into(), input: KokoroInput::Phonemes(phonemes.into()), speed, noise: true }
    }
}

/// The OOV network: characters in, CTC phoneme classes out.
pub struct Oov {
    onnx: OnnxSession,
    cin: HashMap<char, i64>,
    cout: HashMap<i64, String>,
    maxlen: usize,
}

#[derive(Deserialize)]
struct OovMeta {
    #[serde(rename = "in")]
    chars_in: Vec<String>,
    #[serde(rename = "out")]
    chars_out: Vec<String>,
    maxlen: usize,
}

impl Oov {
    pub fn load(onnx_path: &Path) -> Result<Self, String> {
        let meta_path = onnx_path.with_extension("json");
        let meta: OovMeta = serde_json::from_str(
            &std::fs::read_to_string(&meta_path).map_err(|e| format!("cannot read {}: {e}", meta_path.display()))?,
        )
        .map_err(|e| format!("invalid {}: {e}", meta_path.display()))?;
        let cin =
            meta.chars_in.iter().enumerate().filter_map(|(i, c)| c.chars().next().map(|c| (c, i as i64 + 1))).collect();
        let cout = meta.chars_out.iter().enumerate().map(|(i, c)| (i as i64 + 1, c.clone())).collect();
        Ok(Self { onnx: OnnxSession::open(onnx_path, 1)?, cin, cout, maxlen: meta.maxlen })
    }

    pub fn read(&mut self, word: &str) -> Option<String> {
        let ids: Vec<i64> = word.chars().filter_map(|c| self.cin.get(&c).copied()).take(self.maxlen).collect();
        if ids.is_empty() {
            return None;
        }
        let n = ids.len();
        let input = Tensor::from_array((vec![1usize, n], ids)).ok()?;
        let outputs = self.onnx.session.run(ort::inputs!["chars" => input]).ok()?;
        let (shape, classes) = outputs[0].try_extract_tensor::<i64>().ok()?;
        let len = shape.last().copied().unwrap_or(0).max(0) as usize;
        let mut out = String::new();
        let mut prev = 0;
        for &c in classes.iter().take(len) {
            if c != prev && c != 0 {
                out.push_str(self.cout.get(&c).map(String::as_str).unwrap_or(""));
            }
            prev = c;
        }
        Some(out)
    }
}

/// The package's `Hibari.split_sentences`: paragraphs (line breaks), then sentence ends
/// (`.!?…`, closing quotes, whitespace, then a non-lowercase start), except after a title or a
/// single capital initial.
pub fn split_sentences_with(text: &str, titles: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.trim().split('\n') {
        let para = para.trim();
        let chars: Vec<(usize, char)> = para.char_indices().collect();
        let mut cut = 0usize;
        let mut i = 0;
        while i < chars.len() {
            let (_, c) = chars[i];
            if matches!(c, '.' | '!' | '?' | '…') {
                // match: closing quotes/brackets*, whitespace+, then a non-space
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && matches!(chars[j].1, '"' | '”' | '’' | ')' | ']') {
                    j += 1;
                }
                let ws = j;
                while j < chars.len() && chars[j].1.is_whitespace() {
                    j += 1;
                }
                if j > ws && j < chars.len() {
                    let start_byte = chars.get(start).map(|x| x.0).unwrap_or(para.len());
                    let next = chars[j].1;
                    if ends_sentence(para, start_byte, next, titles) {
                        out.push(para[cut..start_byte].to_string());
                        cut = chars[j].0;
                    }
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
        out.push(para[cut..].to_string());
    }
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

fn ends_sentence(para: &str, end: usize, next: char, titles: &dyn Fn(&str) -> bool) -> bool {
    if next.is_lowercase() {
        return false;
    }
    if !para[..end].ends_with('.') {
        return true;
    }
    let before = &para[..end - 1];
    let word = match before.rfind(' ') {
        Some(i) => &before[i + 1..],
        None => before,
    };
    let word = word.trim_start_matches(['(', '"', '“', '\'', '‘']);
    let single_capital = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    !(titles(word) || single_capital)
}

const TITLES: [&str; 26] = [
    "Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Mt", "Ft", "Gen", "Gov", "Sen", "Rep", "Capt", "Lt", "Col", "Sgt", "Cmdr",
    "Rev", "Hon", "Pres", "Supt", "Cpl", "Maj", "Adm", "Fr", "Msgr",
];

pub fn split_sentences(text: &str) -> Vec<String> {
    split_sentences_with(text, &|w| TITLES.contains(&w))
}

/// Phoneme strings longer than the model takes, cut at clause punctuation (`, ; : —` + space).
pub fn chunk_phonemes(ps: &str) -> Vec<String> {
    if ps.chars().count() <= MAX_PHONEMES {
        return vec![ps.to_string()];
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = ps.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        cur.push(chars[i]);
        if matches!(chars[i], ',' | ';' | ':' | '—') && chars.get(i + 1).is_some_and(|c| c.is_whitespace()) {
            parts.push(std::mem::take(&mut cur));
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    parts.push(cur);
    let mut chunks = Vec::new();
    let mut cur = String::new();
    for part in parts {
        if !cur.is_empty() && cur.chars().count() + part.chars().count() + 1 > MAX_PHONEMES {
            chunks.push(std::mem::replace(&mut cur, part));
        } else if cur.is_empty() {
            cur = part;
        } else {
            cur = format!("{cur} {part}");
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

pub struct KokoroWorker {
    voices: HashMap<String, OnnxSession>,
    oov: Oov,
    g2p: Arc<g2p::G2p>,
    vocab: Arc<HashMap<char, i64>>,
    tail: dsp::Tail,
    noise: dsp::Gaussian,
}

static SEED: AtomicU64 = AtomicU64::new(0x5EED);

impl KokoroWorker {
    pub fn new(
        voices: HashMap<String, OnnxSession>,
        oov: Oov,
        g2p: Arc<g2p::G2p>,
        vocab: Arc<HashMap<char, i64>>,
    ) -> Self {
        let seed = SEED.fetch_add(0x9E37_79B9, Ordering::Relaxed)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
        Self { voices, oov, g2p, vocab, tail: dsp::Tail::new(), noise: dsp::Gaussian::new(seed) }
    }

    /// `[0, ids of known phoneme characters…, 0]`.
    pub fn ids(vocab: &HashMap<char, i64>, phonemes: &str) -> Vec<i64> {
        let mut ids = vec![0];
        ids.extend(phonemes.chars().filter_map(|c| vocab.get(&c).copied()));
        ids.push(0);
        ids
    }

    fn synth(&mut self, voice: &str, ids: Vec<i64>, speed: f32, noise: bool) -> Result<Vec<f32>, String> {
        if ids.len() < 3 {
            return Ok(Vec::new());
        }
        let onnx = self.voices.get_mut(voice).ok_or_else(|| format!("voice `{voice}` is not loaded"))?;
        let n = ids.len();
        let outputs = onnx
            .session
            .run(ort::inputs![
                "ids" => Tensor::from_array((vec![1usize, n], ids)).map_err(|e| e.to_string())?,
                "speed" => Tensor::from_array((vec![1usize], vec![speed])).map_err(|e| e.to_string())?
            ])
            .map_err(|e| e.to_string())?;
        let f0 = extract(&outputs, "f0")?;
        let frames = f0.len();
        // The load-time edit's frame-major output ([`layout`]) is read in place; a model left as
        // it was gives the five bin-major planes, rearranged here.
        let rearranged;
        let spectral = if outputs.contains_key(layout::FRAMES) {
            extract(&outputs, layout::FRAMES)?
        } else {
            let mut planes = [&[][..]; 5];
            for (plane, name) in planes.iter_mut().zip(layout::PLANES) {
                *plane = extract(&outputs, name)?;
            }
            if planes.iter().any(|p| p.len() != dsp::BINS * frames) {
                return Err(format!("unexpected spectral output sizes for {frames} frames"));
            }
            rearranged = dsp::frames_from_planes(planes, frames);
            &rearranged[..]
        };
        if spectral.len() != dsp::COLUMNS * frames {
            return Err(format!("unexpected spectral output size {} for {frames} frames", spectral.len()));
        }
        let spectral = dsp::Spectral { frames: spectral, f0 };
        Ok(if noise {
            self.tail.synth(&spectral, &mut self.noise)
        } else {
            self.tail.synth(&spectral, &mut dsp::Silent)
        })
    }
}

/// A float output of the model, in place.
fn extract<'a>(outputs: &'a ort::session::SessionOutputs<'_>, name: &str) -> Result<&'a [f32], String> {
    let value = outputs.get(name).ok_or_else(|| format!("the model has no output `{name}`"))?;
    Ok(value.try_extract_tensor::<f32>().map_err(|e| e.to_string())?.1)
}

impl Worker for KokoroWorker {
    type Request = KokoroRequest;
    type Response = Vec<f32>;

    fn handle(&mut self, r: KokoroRequest) -> Result<Vec<f32>, String> {
        let chunks = match &r.input {
            KokoroInput::Phonemes(p) => vec![p.clone()],
            KokoroInput::Text(text) => {
                let g2p = Arc::clone(&self.g2p);
                let oov = &mut self.oov;
                let ps = g2p.phonemize(text, &mut |w| oov.read(w));
                if ps.is_empty() { Vec::new() } else { chunk_phonemes(&ps) }
            }
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let ids = Self::ids(&self.vocab, &chunk);
            out.extend(self.synth(&r.voice, ids, r.speed, r.noise)?);
        }
        Ok(out)
    }
}

/// `vocab.json`: phoneme character → id.
pub fn read_vocab(dir: &Path) -> Result<HashMap<char, i64>, String> {
    let path = dir.join("vocab.json");
    let raw: HashMap<String, i64> = serde_json::from_str(
        &std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    )
    .map_err(|e| format!("invalid {}: {e}", path.display()))?;
    Ok(raw.into_iter().filter_map(|(k, v)| k.chars().next().map(|c| (c, v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_like_hibari() {
        assert_eq!(
            split_sentences("Hello there. Dr. Smith is in. J. K. Rowling wrote it! \"Yes.\" Next\nline two"),
            vec!["Hello there.", "Dr. Smith is in.", "J. K. Rowling wrote it!", "\"Yes.", "Next", "line two"]
        );
        assert_eq!(split_sentences("pi is 3.14. ok then"), vec!["pi is 3.14. ok then"]);
    }

    #[test]
    fn long_phonemes_are_chunked_at_clauses() {
        let clause = "a".repeat(150);
        let ps = format!("{clause}, {clause}, {clause}.");
        let chunks = chunk_phonemes(&ps);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_PHONEMES));
    }
}
