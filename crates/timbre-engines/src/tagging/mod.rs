//! Sound tagging on an AudioSet model: clip-level tags, a timeline of per-window scores,
//! events with hysteresis, label groups, and prompt heatmaps by label matching.

pub mod events;
pub mod floor;
pub mod groups;
pub mod prompts;
pub mod tagger;

pub use tagger::{Frames, PromptHeatmap, Tag, TagOptions, TagReport, Tagger};

/// The 527 AudioSet labels in model order, for tests that need the real label set.
#[cfg(test)]
pub(crate) fn audioset_labels() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tagging/testdata/audioset_labels.txt");
    std::fs::read_to_string(path).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
}
