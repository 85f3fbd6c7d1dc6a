//! Genre and mood: the AudioSet "Music genre" and "Music mood" classes of the tagger's
//! song-averaged scores, best first.

use serde::{Deserialize, Serialize};

use crate::tagging::groups::{AUDIOSET_LABELS, members};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub label: String,
    pub score: f32,
}

pub const TOP_GENRES: usize = 5;
pub const TOP_MOODS: usize = 3;

fn top(labels: &[String], scores: &[f32], group: &str, k: usize) -> Vec<Label> {
    if labels.len() != AUDIOSET_LABELS || scores.len() != labels.len() {
        return Vec::new();
    }
    let Some(range) = members(group) else { return Vec::new() };
    let mut idx: Vec<usize> = range.filter(|&i| labels[i] != group).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx.into_iter()
        .take(k)
        .map(|i| Label { label: labels[i].clone(), score: (scores[i] * 1000.0).round() / 1000.0 })
        .collect()
}

/// (genres, moods) from mean scores over the AudioSet label set; empty for other label sets.
pub fn genre_mood(labels: &[String], scores: &[f32]) -> (Vec<Label>, Vec<Label>) {
    (top(labels, scores, "Music genre", TOP_GENRES), top(labels, scores, "Music mood", TOP_MOODS))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn picks_genre_and_mood_classes_only() {
        let labels = crate::tagging::audioset_labels();
        let mut scores = vec![0.0f32; labels.len()];
        let at = |name: &str| labels.iter().position(|l| l == name).unwrap();
        scores[at("Music")] = 0.99;
        scores[at("Guitar")] = 0.9;
        scores[at("Country")] = 0.6;
        scores[at("Bluegrass")] = 0.7;
        scores[at("Happy music")] = 0.4;
        scores[at("Sad music")] = 0.1;
        let (genre, mood) = genre_mood(&labels, &scores);
        assert_eq!(genre[0], Label { label: "Bluegrass".into(), score: 0.7 });
        assert_eq!(genre[1].label, "Country");
        assert_eq!(genre.len(), TOP_GENRES);
        assert_eq!(mood[0].label, "Happy music");
        assert_eq!(mood.len(), TOP_MOODS);
        assert!(genre_mood(&labels[..10], &scores[..10]).0.is_empty());
    }
}
