//! Sound tagging on an AudioSet model: clip-level tags, a timeline of per-window scores,
//! events with hysteresis, label groups, and prompt heatmaps by label matching.

pub mod events;
pub mod groups;
pub mod prompts;
pub mod tagger;

pub use tagger::{Frames, PromptHeatmap, Tag, TagOptions, TagReport, Tagger};
