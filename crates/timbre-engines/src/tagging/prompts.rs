//! Free-text prompts ("dog barking; man speaking") matched to AudioSet labels by text.
//!
//! With the models this build has, there is no text encoder: a prompt is normalised (lower
//! case, simple stemming, a synonym table) and compared with every label's comma-separated
//! names by token overlap (Jaccard). The best few labels above a floor are its
//! `matched_labels`, and its score per frame is the maximum over them. The API says so with
//! `"method":"label-match"`; a zero-shot text–audio model would report `"zero-shot"`.

use std::collections::BTreeSet;

/// Labels kept per prompt.
pub const MAX_MATCHES: usize = 3;
/// Minimum token overlap for a label to count as a match.
pub const MIN_SIMILARITY: f32 = 0.3;

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "and", "or", "in", "on", "at", "with", "is", "are", "some", "sound", "someone", "somebody",
    "being", "from", "to", "by",
];

/// Words that mean the same as a label's word, mapped to the label's stem.
const SYNONYMS: &[(&str, &str)] = &[
    ("man", "male"),
    ("men", "male"),
    ("guy", "male"),
    ("woman", "female"),
    ("women", "female"),
    ("lady", "female"),
    ("kid", "child"),
    ("children", "child"),
    ("baby", "infant"),
    ("talk", "speech"),
    ("speak", "speech"),
    ("voice", "speech"),
    ("spoken", "speech"),
    ("person", "speech"),
    ("puppy", "dog"),
    ("doggy", "dog"),
    ("kitten", "cat"),
    ("kitty", "cat"),
    ("automobile", "car"),
    ("motorbike", "motorcycle"),
    ("plane", "aircraft"),
    ("airplane", "aircraft"),
    ("gun", "gunshot"),
    ("gunfire", "gunshot"),
    ("shot", "gunshot"),
    ("drums", "drum"),
    ("song", "singing"),
    ("sing", "singing"),
    ("clap", "clapping"),
    ("applaud", "applause"),
    ("footstep", "footstep"),
    ("step", "footstep"),
    ("laugh", "laughter"),
    ("cry", "crying"),
    ("rainfall", "rain"),
    ("raining", "rain"),
    ("sea", "ocean"),
    ("wave", "waves"),
    ("phone", "telephone"),
    ("ring", "ringing"),
    ("bird", "bird"),
    ("tweet", "chirp"),
    ("keyboard", "keyboard"),
    ("typing", "typing"),
];

fn stem(word: &str) -> String {
    let w = word;
    let stemmed = if let Some(s) = w.strip_suffix("ies").filter(|s| s.len() >= 2) {
        format!("{s}y")
    } else if let Some(s) = w.strip_suffix("ing").filter(|s| s.len() >= 3) {
        // barking → bark, running → run
        let s = s.to_string();
        let b = s.as_bytes();
        if b.len() >= 2 && b[b.len() - 1] == b[b.len() - 2] { s[..s.len() - 1].to_string() } else { s }
    } else if let Some(s) =
        w.strip_suffix("es").filter(|s| s.ends_with("sh") || s.ends_with("ch") || s.ends_with('x') || s.ends_with("ss"))
    {
        s.to_string()
    } else if let Some(s) = w.strip_suffix('s').filter(|s| s.len() >= 3 && !s.ends_with('s')) {
        s.to_string()
    } else {
        w.to_string()
    };
    SYNONYMS.iter().find(|(from, _)| *from == stemmed || *from == w).map_or(stemmed, |(_, to)| (*to).to_string())
}

/// Normalised tokens of a phrase.
pub fn tokens(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(w))
        .map(|w| stem(&stem(w)))
        .collect()
}

/// Split a prompt list: `;` or newlines separate prompts (a comma stays inside one prompt, as in
/// "man speaking, male speech").
pub fn split_prompts(raw: &str) -> Vec<String> {
    raw.split([';', '\n']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

/// A matcher over one label set, with each label's names tokenised once.
pub struct LabelMatcher {
    aliases: Vec<Vec<BTreeSet<String>>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    pub index: usize,
    pub similarity: f32,
}

impl LabelMatcher {
    pub fn new(labels: &[String]) -> Self {
        Self { aliases: labels.iter().map(|l| l.split(',').map(tokens).filter(|t| !t.is_empty()).collect()).collect() }
    }

    /// The best labels for a prompt, most similar first (at most [`MAX_MATCHES`]).
    pub fn matches(&self, prompt: &str) -> Vec<Match> {
        let want = tokens(prompt);
        if want.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<Match> = self
            .aliases
            .iter()
            .enumerate()
            .filter_map(|(index, names)| {
                let best = names
                    .iter()
                    .map(|alias| {
                        let inter = alias.intersection(&want).count() as f32;
                        let union = alias.union(&want).count() as f32;
                        if union == 0.0 { 0.0 } else { inter / union }
                    })
                    .fold(0.0f32, f32::max);
                (best >= MIN_SIMILARITY).then_some(Match { index, similarity: best })
            })
            .collect();
        // Most similar first; among equals, the more general label (lower index in AudioSet's
        // depth-first order) first.
        scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(a.index.cmp(&b.index)));
        scored.truncate(MAX_MATCHES);
        scored
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        super::super::audioset_labels()
    }

    fn names(m: &LabelMatcher, labels: &[String], prompt: &str) -> Vec<String> {
        m.matches(prompt).into_iter().map(|x| labels[x.index].clone()).collect()
    }

    #[test]
    fn normalises_words() {
        let t: Vec<String> = tokens("Dogs barking loudly, the MEN are talking").into_iter().collect();
        assert_eq!(t, vec!["bark", "dog", "loudly", "male", "speech"]);
        assert_eq!(
            split_prompts("dog barking; man speaking, male speech;\n ;rain"),
            vec!["dog barking", "man speaking, male speech", "rain"]
        );
    }

    #[test]
    fn prompts_find_the_labels_a_person_means() {
        let labels = labels();
        let m = LabelMatcher::new(&labels);
        assert_eq!(names(&m, &labels, "man speaking, male speech")[0], "Male speech, man speaking");
        let dog = names(&m, &labels, "dog barking");
        assert!(dog.contains(&"Dog".to_string()) && dog.contains(&"Bark".to_string()), "{dog:?}");
        assert_eq!(names(&m, &labels, "rain")[0], "Rain");
        assert!(names(&m, &labels, "a woman singing").contains(&"Female singing".to_string()));
        assert!(names(&m, &labels, "police siren").contains(&"Police car (siren)".to_string()));
        assert!(names(&m, &labels, "cars passing").contains(&"Car passing by".to_string()));
        assert!(m.matches("xylophonic quasar").is_empty(), "unknown words match nothing");
        assert!(m.matches("the of and").is_empty());
    }
}
