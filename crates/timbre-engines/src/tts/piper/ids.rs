//! Phonemes → model input ids, exactly as piper-tts does it: BOS, pad, then each phoneme
//! followed by pad, then EOS; phonemes are the Unicode scalars of the NFD-normalized string (so a
//! combining accent is its own phoneme); unknown phonemes are skipped.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;

pub const BOS: &str = "^";
pub const EOS: &str = "$";
pub const PAD: &str = "_";

/// The phoneme string split as piper does: NFD, one entry per scalar.
pub fn phoneme_list(phonemes: &str) -> Vec<String> {
    phonemes.nfd().map(String::from).collect()
}

/// Ids for one sentence's phonemes, and the phonemes that had no id (piper logs and skips them).
pub fn phonemes_to_ids(phonemes: &[String], map: &BTreeMap<String, Vec<i64>>) -> (Vec<i64>, Vec<String>) {
    let empty = Vec::new();
    let pad = map.get(PAD).unwrap_or(&empty);
    let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
    let mut missing = Vec::new();
    ids.extend(map.get(BOS).unwrap_or(&empty));
    ids.extend(pad);
    for p in phonemes {
        match map.get(p) {
            Some(v) => {
                ids.extend(v);
                ids.extend(pad);
            }
            None => missing.push(p.clone()),
        }
    }
    ids.extend(map.get(EOS).unwrap_or(&empty));
    (ids, missing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_pad_and_skips_unknown() {
        let map: BTreeMap<String, Vec<i64>> = [("^", 1), ("$", 2), ("_", 0), ("h", 20), ("ə", 59), ("̃", 141)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), vec![v]))
            .collect();
        let (ids, missing) = phonemes_to_ids(&phoneme_list("hə☃"), &map);
        assert_eq!(ids, vec![1, 0, 20, 0, 59, 0, 2]);
        assert_eq!(missing, vec!["☃"]);
        // NFD splits a precomposed nasal vowel into base + combining tilde.
        assert_eq!(phoneme_list("ã"), vec!["a", "\u{303}"]);
    }
}
