//! hibari's averaged-perceptron part-of-speech tagger (Penn Treebank tags, trained on spaCy's
//! answers), ported: a word with one dominant tag comes from the tag dictionary, every other
//! from summed feature weights.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::pystr::{first_char, isalpha, isdigit, islower, isupper, last_n, skip};

const START: [&str; 2] = ["-START2-", "-START-"];
const END: [&str; 2] = ["-END-", "-END2-"];

#[derive(Deserialize)]
struct Raw {
    tagdict: HashMap<String, String>,
    tags: Vec<String>,
    #[serde(default)]
    vocab: Option<Vec<String>>,
    weights: HashMap<String, HashMap<String, f64>>,
}

pub struct Tagger {
    tagdict: HashMap<String, String>,
    tags: Vec<String>,
    vocab: Option<HashSet<String>>,
    /// feature → (tag index, weight)
    weights: HashMap<String, Vec<(usize, f64)>>,
}

fn norm(w: &str) -> String {
    if w.contains('-') && !w.starts_with('-') {
        "!HYPHEN".into()
    } else if isdigit(w) && w.chars().count() == 4 {
        "!YEAR".into()
    } else if first_char(w).is_some_and(|c| c.is_ascii_digit()) {
        "!DIGITS".into()
    } else {
        w.to_lowercase()
    }
}

fn shape(w: &str) -> String {
    if isalpha(w) {
        if islower(w) {
            return "x".into();
        }
        if isupper(w) {
            return if w.chars().count() > 1 { "XX".into() } else { "X1".into() };
        }
        let first_upper = first_char(w).is_some_and(char::is_uppercase);
        if first_upper && islower(skip(w, 1)) {
            return "Xx".into();
        }
        return "xX".into();
    }
    if isdigit(w) {
        return "d".into();
    }
    w.chars()
        .take(4)
        .map(|c| {
            if c.is_ascii_digit() {
                'd'
            } else if c.is_alphabetic() {
                'x'
            } else {
                c
            }
        })
        .collect()
}

impl Tagger {
    pub fn from_json(json: &str) -> Result<Self, String> {
        let raw: Raw = serde_json::from_str(json).map_err(|e| format!("invalid tagger model: {e}"))?;
        let index: HashMap<&str, usize> = raw.tags.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        let weights = raw
            .weights
            .into_iter()
            .map(|(f, ws)| (f, ws.into_iter().filter_map(|(t, w)| index.get(t.as_str()).map(|i| (*i, w))).collect()))
            .collect();
        Ok(Self { tagdict: raw.tagdict, vocab: raw.vocab.map(|v| v.into_iter().collect()), tags: raw.tags, weights })
    }

    fn context(&self, words: &[String]) -> Vec<String> {
        let mut out: Vec<String> = START.iter().map(|s| s.to_string()).collect();
        for w in words {
            let n = norm(w);
            let known = self.vocab.as_ref().is_none_or(|v| v.contains(&n));
            out.push(if known { n } else { format!("<{}>", shape(w)) });
        }
        out.extend(END.iter().map(|s| s.to_string()));
        out
    }

    fn predict(&self, feats: &[String]) -> String {
        let mut scores: HashMap<usize, f64> = HashMap::new();
        for f in feats {
            if let Some(ws) = self.weights.get(f)
                && !ws.is_empty()
            {
                for (t, w) in ws {
                    *scores.entry(*t).or_insert(0.0) += w;
                }
            }
        }
        if scores.is_empty() {
            return "NN".into();
        }
        // max by (score, tag name), as Python's tuple comparison does.
        let mut best: Option<(f64, &str)> = None;
        for (i, t) in self.tags.iter().enumerate() {
            let s = scores.get(&i).copied().unwrap_or(0.0);
            let better = match best {
                None => true,
                Some((bs, bt)) => s > bs || (s == bs && t.as_str() > bt),
            };
            if better {
                best = Some((s, t.as_str()));
            }
        }
        best.map(|(_, t)| t.to_string()).unwrap_or_else(|| "NN".into())
    }

    pub fn tag(&self, words: &[String]) -> Vec<String> {
        let ctx = self.context(words);
        let mut prev = START[1].to_string();
        let mut prev2 = START[0].to_string();
        let mut tags = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let tag = match self.tagdict.get(w) {
                Some(t) => t.clone(),
                None => {
                    let j = i + 2;
                    let feats = vec![
                        "b".to_string(),
                        format!("s3={}", last_n(w, 3)),
                        format!("p1={}", first_char(w).map(String::from).unwrap_or_default()),
                        format!("w={}", ctx[j]),
                        format!("sh={}", shape(w)),
                        if i == 0 { "i0".into() } else { "i+".into() },
                        format!("t-1={prev}"),
                        format!("t-2={prev2}"),
                        format!("t-12={prev},{prev2}"),
                        format!("w-1={}", ctx[j - 1]),
                        format!("s3-1={}", last_n(&ctx[j - 1], 3)),
                        format!("w-2={}", ctx[j - 2]),
                        format!("w+1={}", ctx[j + 1]),
                        format!("s3+1={}", last_n(&ctx[j + 1], 3)),
                        format!("w+2={}", ctx[j + 2]),
                    ];
                    self.predict(&feats)
                }
            };
            prev2 = std::mem::replace(&mut prev, tag.clone());
            tags.push(tag);
        }
        tags
    }
}
