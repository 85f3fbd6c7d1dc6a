//! Whisper's byte-level BPE tokenizer (GPT-2 style), read from the `tokenizer.json` that ships
//! with CTranslate2 and Hugging Face checkpoints. Decoding turns ids back into text; encoding is
//! needed for prompts and for the list of non-speech tokens faster-whisper suppresses.
//!
//! Pre-tokenisation follows GPT-2's pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, written out by
//! hand (no regex engine with look-ahead in the dependency tree).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// The special tokens the decoder needs, looked up by name so English-only and multilingual
/// vocabularies (which number them differently) both work.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub sot_lm: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub transcribe: u32,
    pub translate: u32,
    /// First timestamp token (`<|0.00|>`), right after `<|notimestamps|>`.
    pub timestamp_begin: u32,
}

pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    id_to_token: Vec<String>,
    merges: HashMap<(String, String), usize>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    pub special: SpecialTokens,
    /// `<|en|>` … in vocabulary order, with their codes (`en`, `zh`, …).
    pub languages: Vec<(String, u32)>,
}

#[derive(Deserialize)]
struct TokenizerJson {
    model: BpeJson,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct BpeJson {
    vocab: HashMap<String, u32>,
    merges: Vec<MergeJson>,
}

/// Merges are `"a b"` strings in older files and `["a", "b"]` pairs in newer ones.
#[derive(Deserialize)]
#[serde(untagged)]
enum MergeJson {
    Joined(String),
    Pair(String, String),
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

/// GPT-2's reversible byte → printable character table.
fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let code = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        table[b as usize] = char::from_u32(code).unwrap_or('\u{fffd}');
    }
    table
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let json: TokenizerJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut vocab = json.model.vocab;
        for added in &json.added_tokens {
            vocab.insert(added.content.clone(), added.id);
        }
        let size = vocab.values().copied().max().map_or(0, |m| m as usize + 1);
        let mut id_to_token = vec![String::new(); size];
        for (token, &id) in &vocab {
            id_to_token[id as usize] = token.clone();
        }
        let mut merges = HashMap::with_capacity(json.model.merges.len());
        for (rank, m) in json.model.merges.into_iter().enumerate() {
            let pair = match m {
                MergeJson::Pair(a, b) => (a, b),
                MergeJson::Joined(s) => {
                    let (a, b) = s.split_once(' ').ok_or_else(|| format!("merge `{s}` has no space"))?;
                    (a.to_string(), b.to_string())
                }
            };
            merges.insert(pair, rank);
        }
        let byte_to_char = bytes_to_unicode();
        let char_to_byte = byte_to_char.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let id = |name: &str| vocab.get(name).copied().ok_or_else(|| format!("vocabulary lacks {name}"));
        let no_timestamps = id("<|notimestamps|>")?;
        let special = SpecialTokens {
            eot: id("<|endoftext|>")?,
            sot: id("<|startoftranscript|>")?,
            sot_prev: id("<|startofprev|>")?,
            sot_lm: id("<|startoflm|>")?,
            no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?,
            no_timestamps,
            transcribe: id("<|transcribe|>")?,
            translate: id("<|translate|>")?,
            timestamp_begin: no_timestamps + 1,
        };
        // Language tokens sit between <|startoftranscript|> and <|translate|>.
        let mut languages: Vec<(String, u32)> = vocab
            .iter()
            .filter(|&(_, &i)| i > special.sot && i < special.translate)
            .filter_map(|(t, &i)| {
                let code = t.strip_prefix("<|")?.strip_suffix("|>")?;
                Some((code.to_string(), i))
            })
            .collect();
        languages.sort_by_key(|&(_, i)| i);
        Ok(Self { vocab, id_to_token, merges, byte_to_char, char_to_byte, special, languages })
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages.iter().find(|(c, _)| c == code).map(|&(_, id)| id)
    }

    /// Text of `ids`; special and timestamp tokens are dropped first (faster-whisper's
    /// `decode`), invalid UTF-8 becomes U+FFFD as in the `tokenizers` library.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids.iter().filter(|&&i| i < self.special.eot) {
            if let Some(token) = self.id_to_token.get(id as usize) {
                bytes.extend(token.chars().filter_map(|c| self.char_to_byte.get(&c).copied()));
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for piece in pretokenize(text) {
            let mapped: String = piece.bytes().map(|b| self.byte_to_char[b as usize]).collect();
            for part in self.bpe(&mapped) {
                if let Some(&id) = self.vocab.get(&part) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    fn bpe(&self, word: &str) -> Vec<String> {
        let mut parts: Vec<String> = word.chars().map(String::from).collect();
        while parts.len() > 1 {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.merges.get(&(w[0].clone(), w[1].clone())).map(|&r| (r, i)))
                .min();
            let Some((rank, _)) = best else { break };
            // Merge every occurrence of the best pair, left to right.
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && self.merges.get(&(parts[i].clone(), parts[i + 1].clone())) == Some(&rank) {
                    merged.push(format!("{}{}", parts[i], parts[i + 1]));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
        }
        parts
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Number
    } else {
        Class::Other
    }
}

/// Splits `text` into GPT-2 pre-tokens.
pub fn pretokenize(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        // Contractions.
        if c == '\'' {
            let rest = &text[start + 1..];
            let suffix = ["s", "t", "re", "ve", "m", "ll", "d"].iter().find(|s| rest.starts_with(**s));
            if let Some(s) = suffix {
                let n = 1 + s.len();
                out.push(&text[start..start + n]);
                i += n;
                continue;
            }
        }
        let run = |from: usize, k: Class| {
            let mut j = from;
            while j < chars.len() && class(chars[j].1) == k {
                j += 1;
            }
            j
        };
        let k = class(c);
        if c == ' ' && i + 1 < chars.len() && class(chars[i + 1].1) != Class::Space {
            let j = run(i + 1, class(chars[i + 1].1));
            out.push(&text[start..end_of(j)]);
            i = j;
            continue;
        }
        if k != Class::Space {
            let j = run(i, k);
            out.push(&text[start..end_of(j)]);
            i = j;
            continue;
        }
        let j = run(i, Class::Space);
        // `\s+(?!\S)`: leave the last space to the word that follows.
        let take = if j < chars.len() && j - i > 1 { j - 1 } else { j };
        out.push(&text[start..end_of(take)]);
        i = take;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pretokenizes_like_gpt2() {
        assert_eq!(pretokenize("Hello world"), vec!["Hello", " world"]);
        assert_eq!(
            pretokenize("I'll pay $30.50, ok?"),
            vec!["I", "'ll", " pay", " $", "30", ".", "50", ",", " ok", "?"]
        );
        assert_eq!(pretokenize("a  b\n\nc "), vec!["a", " ", " b", "\n", "\n", "c", " "]);
        assert_eq!(pretokenize(" 'quoted'"), vec![" '", "quoted", "'"]);
    }

    #[test]
    fn byte_table_is_a_bijection() {
        let t = bytes_to_unicode();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'a' as usize], 'a');
    }
}
