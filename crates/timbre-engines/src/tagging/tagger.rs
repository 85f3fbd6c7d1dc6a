//! The tagging service: windows a 16 kHz signal, scores every window with the AudioSet model in
//! batches, and turns the scores into clip tags, a timeline, events and prompt heatmaps.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::events::{
    Envelope, Event, EventRules, Run, Timing, envelope, merge_overlapping, place_events, round3, runs,
};
use super::floor::fill_digital_silence;
use super::groups;
use super::prompts::{LabelMatcher, split_prompts};
use crate::actor::{EngineError, Timed};
use crate::ced::{CedTagger, SAMPLE_RATE, Windows};

/// The model's training clips are 10 s: clip-level tags score 10-second blocks.
pub const CLIP_SECONDS: f32 = 10.0;
/// Windows per model call: big enough to amortise the call, small enough that one long file
/// does not hold the engine for seconds at a time.
const BATCH: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub struct TagOptions {
    /// Timeline window length, seconds.
    pub window: f32,
    /// Timeline hop, seconds.
    pub hop: f32,
    pub top_k: usize,
    /// Minimum score for a detection, and the on-threshold of events.
    pub threshold: f32,
    pub min_event: f32,
    pub prompts: Vec<String>,
}

impl Default for TagOptions {
    fn default() -> Self {
        Self { window: 2.0, hop: 1.0, top_k: 10, threshold: 0.3, min_event: 0.5, prompts: Vec::new() }
    }
}

/// Which option was wrong and why; the HTTP layer names the field in a 422.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionError {
    pub field: &'static str,
    pub message: String,
}

impl TagOptions {
    /// Parse `prompts` as the API receives it (`;`-separated).
    pub fn with_prompt_text(mut self, raw: &str) -> Self {
        self.prompts = split_prompts(raw);
        self
    }

    pub fn validate(&self) -> Result<(), OptionError> {
        let bad = |field, message: &str| Err(OptionError { field, message: message.to_string() });
        if !(0.25..=30.0).contains(&self.window) {
            return bad("window", "must be between 0.25 and 30 seconds");
        }
        if !(self.hop >= 0.05 && self.hop <= self.window) {
            return bad("hop", "must be at least 0.05 s and at most the window");
        }
        if !(1..=527).contains(&self.top_k) {
            return bad("top_k", "must be between 1 and 527");
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return bad("threshold", "must be between 0 and 1");
        }
        if !(0.0..=60.0).contains(&self.min_event) {
            return bad("min_event", "must be between 0 and 60 seconds");
        }
        if self.prompts.len() > 32 {
            return bad("prompts", "at most 32 prompts");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tag {
    pub label: String,
    pub score: f32,
    /// Enclosing AudioSet groups, outermost first (e.g. ["Animal", "Domestic animals, pets"]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<&'static str>,
}

/// A labels × frames matrix: `scores[i][j]` is `labels[i]` in the window centred at `times[j]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Frames {
    pub times: Vec<f32>,
    pub labels: Vec<String>,
    pub scores: Vec<Vec<f32>>,
}

/// Prompts × frames, as SonoTag's heatmap.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PromptHeatmap {
    pub text: Vec<String>,
    pub matched_labels: Vec<Vec<String>>,
    pub scores: Vec<Vec<f32>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TagReport {
    pub model: String,
    pub duration: f32,
    pub detections: Vec<Tag>,
    pub frames: Frames,
    pub events: Vec<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<PromptHeatmap>,
    /// How prompts are scored: `label-match` (text matched to the model's labels).
    pub method: &'static str,
}

/// Start offsets (samples) of `win`-sample windows every `hop` samples, plus one window flush
/// with the end when the regular ones stop short of it. One window for a signal shorter than
/// `win` (the model takes any length).
pub fn window_starts(len: usize, win: usize, hop: usize) -> Vec<usize> {
    if len <= win || hop == 0 {
        return vec![0];
    }
    let mut starts: Vec<usize> = (0..).map(|i| i * hop).take_while(|s| s + win <= len).collect();
    if starts.last().is_some_and(|&s| s + win < len) {
        starts.push(len - win);
    }
    starts
}

pub struct Tagger {
    model: String,
    engine: Arc<CedTagger>,
    matcher: LabelMatcher,
}

impl Tagger {
    pub fn new(model: impl Into<String>, engine: Arc<CedTagger>) -> Self {
        let matcher = LabelMatcher::new(&engine.labels);
        Self { model: model.into(), engine, matcher }
    }

    pub fn labels(&self) -> &[String] {
        &self.engine.labels
    }

    /// Scores of windows (each `win` samples from `starts`) — `starts.len() × labels` — and the
    /// time spent in the engine queue and in inference. Batches run on all the engine's workers
    /// at once; after each batch `progress` hears how many windows are done; `None` when it asked
    /// to stop. Exact zeros are scored over a noise floor ([`super::floor`]). Windows of digital
    /// silence (every sample exactly 0) differ only in which samples of the floor's noise they
    /// get, not in its level, so the first one is scored and every other takes its row.
    async fn score(
        &self,
        samples: &[f32],
        starts: &[usize],
        win: usize,
        progress: &mut Progress<'_>,
    ) -> Result<Option<(Vec<Vec<f32>>, Duration, Duration)>, EngineError> {
        let n_labels = self.engine.labels.len();
        let len = win.min(samples.len());
        let silent: Vec<bool> = starts.iter().map(|&s| samples[s..s + len].iter().all(|&x| x == 0.0)).collect();
        let first_silent = silent.iter().position(|&q| q);
        let scored: Vec<usize> = (0..starts.len()).filter(|&i| !silent[i] || Some(i) == first_silent).collect();
        // As many batches as a multiple of the workers, of equal size: no worker idles while
        // another scores a long last batch.
        let workers = self.engine.workers().max(1);
        let n_batches = scored.len().div_ceil(BATCH).next_multiple_of(workers).max(1);
        let size = scored.len().div_ceil(n_batches).max(1);
        let chunks: Vec<&[usize]> = scored.chunks(size).collect();
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); starts.len()];
        let (mut queued, mut inference) = (Duration::ZERO, Duration::ZERO);
        for group in chunks.chunks(workers) {
            let calls = group.iter().map(|chunk| {
                let mut batch = Vec::with_capacity(chunk.len() * len);
                for &i in chunk.iter() {
                    batch.extend_from_slice(&samples[starts[i]..starts[i] + len]);
                    let at = batch.len() - len;
                    fill_digital_silence(&mut batch[at..], starts[i]);
                }
                self.engine.score(Windows { samples: batch, batch: chunk.len() })
            });
            let results = futures_util::future::join_all(calls.collect::<Vec<_>>()).await;
            // The group's batches ran side by side: its share of the wall time is its slowest.
            let (mut group_queued, mut group_inference) = (Duration::ZERO, Duration::ZERO);
            for (chunk, result) in group.iter().zip(results) {
                let timed = result?;
                group_queued = group_queued.max(timed.queued);
                group_inference = group_inference.max(timed.inference);
                for (&i, row) in chunk.iter().zip(timed.value.chunks(n_labels)) {
                    rows[i] = row.to_vec();
                }
            }
            queued += group_queued;
            inference += group_inference;
            if progress.advance(group.iter().map(|c| c.len()).sum()).is_break() {
                return Ok(None);
            }
        }
        if let Some(first) = first_silent {
            let row = rows[first].clone();
            for i in (0..starts.len()).filter(|&i| silent[i] && i != first) {
                rows[i] = row.clone();
            }
            if progress.advance(starts.len() - scored.len()).is_break() {
                return Ok(None);
            }
        }
        Ok(Some((rows, queued, inference)))
    }

    /// Tag a mono 16 kHz signal.
    pub async fn tag(&self, samples: &[f32], opts: &TagOptions) -> Result<Timed<TagReport>, EngineError> {
        let report = self.tag_with_progress(samples, opts, &mut |_, _| ControlFlow::Continue(())).await?;
        // Only a callback that breaks stops a run early, and this one never does.
        report.ok_or_else(|| EngineError::Inference { engine: self.model.clone(), message: "stopped early".into() })
    }

    /// [`Tagger::tag`] for long files run as jobs: `on_batch(windows_done, windows_total)` is
    /// called after every model call (the timeline's windows, then the 10 s clip blocks);
    /// returning `ControlFlow::Break` stops early (a cancelled job) and yields `None`.
    pub async fn tag_with_progress(
        &self,
        samples: &[f32],
        opts: &TagOptions,
        on_batch: &mut (dyn FnMut(usize, usize) -> ControlFlow<()> + Send),
    ) -> Result<Option<Timed<TagReport>>, EngineError> {
        let sr = SAMPLE_RATE as f32;
        let seconds = |s: f32| (s * sr).round() as usize;
        let (win, hop) = (seconds(opts.window).max(1), seconds(opts.hop).max(1));
        let starts = window_starts(samples.len(), win, hop);
        let clip_win = seconds(CLIP_SECONDS);
        let clip_starts = window_starts(samples.len(), clip_win, clip_win);
        let mut progress = Progress { done: 0, total: starts.len() + clip_starts.len(), report: on_batch };
        let Some((frame_scores, q1, i1)) = self.score(samples, &starts, win, &mut progress).await? else {
            return Ok(None);
        };
        let Some((clip_scores, q2, i2)) = self.score(samples, &clip_starts, clip_win, &mut progress).await? else {
            return Ok(None);
        };
        let span = win.min(samples.len()) as f32;
        let times: Vec<f32> = starts.iter().map(|&s| round3((s as f32 + span / 2.0) / sr)).collect();
        let clip_span = clip_win.min(samples.len()) as f32;
        let blocks: Vec<(f32, f32)> =
            clip_starts.iter().map(|&s| (s as f32 / sr, (s as f32 + clip_span) / sr)).collect();
        let duration = samples.len() as f32 / sr;
        let scores = Scores {
            timing: Timing { times: &times, window: span / sr, hop: opts.hop, duration },
            frames: &frame_scores,
            blocks: &blocks,
            block_scores: &clip_scores,
        };
        let env = envelope(samples, SAMPLE_RATE);
        let report = build_report(&self.model, &self.engine.labels, &self.matcher, &scores, &env, opts);
        Ok(Some(Timed { value: report, queued: q1 + q2, inference: i1 + i2 }))
    }
}

/// Windows scored so far out of all a tagging run will score, told to a caller's callback.
struct Progress<'a> {
    done: usize,
    total: usize,
    report: &'a mut (dyn FnMut(usize, usize) -> ControlFlow<()> + Send),
}

impl Progress<'_> {
    fn advance(&mut self, windows: usize) -> ControlFlow<()> {
        self.done += windows;
        (self.report)(self.done, self.total)
    }
}

/// Up to `max` window starts spread evenly from the signal's start to its end (one window for a
/// signal shorter than `win`).
pub fn spread_starts(len: usize, win: usize, max: usize) -> Vec<usize> {
    if len <= win || max <= 1 {
        return vec![len.saturating_sub(win) / 2];
    }
    let n = max.min(len.div_ceil(win));
    if n <= 1 {
        return vec![(len - win) / 2];
    }
    (0..n).map(|i| i * (len - win) / (n - 1)).collect()
}

impl Tagger {
    /// Mean label scores over at most `max_windows` 10-second windows spread over the signal: a
    /// whole-song average (genre, mood) at a bounded cost, whatever the song's length.
    pub async fn mean_scores(&self, samples: &[f32], max_windows: usize) -> Result<Timed<Vec<f32>>, EngineError> {
        let win = (CLIP_SECONDS * SAMPLE_RATE as f32) as usize;
        let starts = spread_starts(samples.len(), win, max_windows);
        let mut never_stop = |_: usize, _: usize| ControlFlow::Continue(());
        let mut progress = Progress { done: 0, total: starts.len(), report: &mut never_stop };
        let scored = self.score(samples, &starts, win, &mut progress).await?;
        let Some((rows, queued, inference)) = scored else {
            return Err(EngineError::Inference { engine: self.model.clone(), message: "stopped early".into() });
        };
        let mut mean = vec![0f32; self.engine.labels.len()];
        for row in &rows {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows.len().max(1) as f32);
        Ok(Timed { value: mean, queued, inference })
    }
}

/// One window's top labels and prompt scores, for live streams.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveTags {
    pub top: Vec<Tag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<LivePrompt>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LivePrompt {
    pub text: String,
    pub score: f32,
    pub matched_labels: Vec<String>,
}

impl Tagger {
    /// Score one window (one model call) for a live stream.
    pub async fn live(
        &self,
        window: Vec<f32>,
        top_k: usize,
        prompts: &[String],
    ) -> Result<Timed<LiveTags>, EngineError> {
        let mut window = window;
        fill_digital_silence(&mut window, 0);
        let timed = self.engine.score(Windows { samples: window, batch: 1 }).await?;
        let scores = &timed.value;
        let labels = &self.engine.labels;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let top = order
            .iter()
            .take(top_k)
            .map(|&l| Tag { label: labels[l].clone(), score: round3(scores[l]), groups: groups::ancestors(l, labels) })
            .collect();
        let prompts = prompts
            .iter()
            .map(|p| {
                let m = self.matcher.matches(p);
                LivePrompt {
                    text: p.clone(),
                    score: round3(m.iter().map(|x| scores[x.index]).fold(0.0, f32::max)),
                    matched_labels: m.iter().map(|x| labels[x.index].clone()).collect(),
                }
            })
            .collect();
        Ok(Timed { value: LiveTags { top, prompts }, queued: timed.queued, inference: timed.inference })
    }
}

/// What the model said about one file: the timeline's windows and the 10-second blocks.
pub struct Scores<'a> {
    pub timing: Timing<'a>,
    /// One row of label scores per timeline window.
    pub frames: &'a [Vec<f32>],
    /// The 10-second blocks, (start, end) seconds…
    pub blocks: &'a [(f32, f32)],
    /// …and one row of label scores per block.
    pub block_scores: &'a [Vec<f32>],
}

/// A label that a 10-second block detects but none of the block's windows reaches the threshold
/// for is placed at the windows scoring at least this fraction of its best window in the block.
const RELATIVE_PLACEMENT: f32 = 0.5;

/// Events of label `l` that only the 10-second blocks detect. CED-tiny scores a short sound far
/// lower on a short window that is mostly background than on the whole clip (a 0.9 s bark: Dog
/// 0.07 on its 2 s windows, 0.23 on the 10 s clip), so a label detected on a block (score ≥
/// threshold) may have no window at the threshold. Its windows still rank where it is: the
/// event is placed at the block's windows scoring at least [`RELATIVE_PLACEMENT`] × the label's
/// best window there — but only when the energy envelope confirms a distinct sound at that place
/// ([`place_events`] with `need_activity`). A steady sound (music, noise, speech throughout) has
/// no such place and gets no event from this rule: it is a clip-level tag, not an event. Blocks
/// where the label already has a window-threshold event add nothing.
fn block_events(
    label: &str,
    column: &[f32],
    found: &[Run],
    scores: &Scores,
    env: &Envelope,
    opts: &TagOptions,
    l: usize,
) -> Vec<Event> {
    let t = &scores.timing;
    let mut out = Vec::new();
    for (&(start, end), row) in scores.blocks.iter().zip(scores.block_scores) {
        if row[l] < opts.threshold {
            continue;
        }
        let inside = |k: usize| (start..=end).contains(&t.times[k]);
        if found.iter().any(|r| (r.first..=r.last).any(inside)) {
            continue;
        }
        let peak = (0..column.len()).filter(|&k| inside(k)).map(|k| column[k]).fold(0.0, f32::max);
        if peak <= 0.0 {
            continue;
        }
        let level = RELATIVE_PLACEMENT * peak;
        let masked: Vec<f32> = column.iter().enumerate().map(|(k, &s)| if inside(k) { s } else { 0.0 }).collect();
        out.extend(place_events(label, column, &runs(&masked, level, level), level, true, t, env, opts.min_event));
    }
    out
}

/// Everything after inference: pure, so it is tested without a model. `env` is the signal's
/// energy envelope, which places event boundaries.
pub fn build_report(
    model: &str,
    labels: &[String],
    matcher: &LabelMatcher,
    scores: &Scores,
    env: &Envelope,
    opts: &TagOptions,
) -> TagReport {
    let n = labels.len();
    let (frame_scores, duration) = (scores.frames, scores.timing.duration);
    // A sound anywhere in the file counts: clip score = best 10-second block.
    let clip: Vec<f32> = (0..n).map(|l| scores.block_scores.iter().map(|row| row[l]).fold(0.0, f32::max)).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| clip[b].total_cmp(&clip[a]));
    let detected: Vec<usize> = order.iter().copied().filter(|&l| clip[l] >= opts.threshold).take(opts.top_k).collect();
    let detections = detected
        .iter()
        .map(|&l| Tag { label: labels[l].clone(), score: round3(clip[l]), groups: groups::ancestors(l, labels) })
        .collect();

    let column = |l: usize| -> Vec<f32> { frame_scores.iter().map(|row| row[l]).collect() };
    let rules = EventRules { on: opts.threshold, off: opts.threshold * 0.6, min_duration: opts.min_event };
    let mut events: Vec<Event> = Vec::new();
    let mut event_labels = Vec::new();
    for (l, label) in labels.iter().enumerate() {
        let col = column(l);
        let found = runs(&col, rules.on, rules.off);
        let mut mine = place_events(label, &col, &found, rules.off, false, &scores.timing, env, rules.min_duration);
        mine.extend(block_events(label, &col, &found, scores, env, opts, l));
        let mine = merge_overlapping(mine);
        if !mine.is_empty() {
            event_labels.push(l);
        }
        events.extend(mine);
    }
    events.sort_by(|a, b| a.start.total_cmp(&b.start).then(b.peak.total_cmp(&a.peak)));

    // Timeline rows: the detections, then labels that only appear as events, by clip score.
    let mut rows = detected.clone();
    for l in order.iter().copied().filter(|l| event_labels.contains(l)) {
        if !rows.contains(&l) {
            rows.push(l);
        }
    }
    let frames = Frames {
        times: scores.timing.times.to_vec(),
        labels: rows.iter().map(|&l| labels[l].clone()).collect(),
        scores: rows.iter().map(|&l| column(l).into_iter().map(round3).collect()).collect(),
    };

    let prompts = (!opts.prompts.is_empty()).then(|| {
        let mut heat = PromptHeatmap::default();
        for p in &opts.prompts {
            let matches = matcher.matches(p);
            heat.text.push(p.clone());
            heat.matched_labels.push(matches.iter().map(|m| labels[m.index].clone()).collect());
            heat.scores.push(
                frame_scores
                    .iter()
                    .map(|row| round3(matches.iter().map(|m| row[m.index]).fold(0.0, f32::max)))
                    .collect(),
            );
        }
        heat
    });
    TagReport {
        model: model.to_string(),
        duration: round3(duration),
        detections,
        frames,
        events,
        prompts,
        method: "label-match",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spread_windows_span_the_song() {
        assert_eq!(spread_starts(50, 100, 6), vec![0], "short: one window");
        assert_eq!(spread_starts(1000, 100, 4), vec![0, 300, 600, 900]);
        assert_eq!(spread_starts(250, 100, 6), vec![0, 75, 150], "no more windows than fit");
    }

    #[test]
    fn windows_cover_the_signal_to_its_end() {
        assert_eq!(window_starts(10, 32, 16), vec![0], "short signal: one window");
        assert_eq!(window_starts(64, 32, 16), vec![0, 16, 32]);
        assert_eq!(window_starts(70, 32, 16), vec![0, 16, 32, 38], "a last window flush with the end");
    }

    #[test]
    fn report_ranks_groups_times_events_and_prompts() {
        let labels: Vec<String> = ["Speech", "Dog", "Bark", "Rain"].iter().map(|s| s.to_string()).collect();
        let matcher = LabelMatcher::new(&labels);
        // 5 frames at 1 s hop: the dog barks in frames 1–3, speech is faint throughout.
        let frames: Vec<Vec<f32>> = vec![
            vec![0.2, 0.05, 0.0, 0.0],
            vec![0.2, 0.8, 0.7, 0.0],
            vec![0.2, 0.9, 0.6, 0.0],
            vec![0.2, 0.7, 0.4, 0.0],
            vec![0.2, 0.1, 0.0, 0.0],
        ];
        let times = [1.0, 2.0, 3.0, 4.0, 5.0];
        let opts = TagOptions { prompts: vec!["dog barking".into(), "violin".into()], ..TagOptions::default() };
        let scores = Scores {
            timing: Timing { times: &times, window: 2.0, hop: 1.0, duration: 6.0 },
            frames: &frames,
            blocks: &[(0.0, 6.0)],
            block_scores: &[vec![0.25, 0.85, 0.65, 0.01]],
        };
        // No envelope: the windows alone place events.
        let r = build_report("ced-tiny", &labels, &matcher, &scores, &no_envelope(), &opts);
        let det: Vec<(&str, f32)> = r.detections.iter().map(|t| (t.label.as_str(), t.score)).collect();
        assert_eq!(det, vec![("Dog", 0.85), ("Bark", 0.65)], "sorted, thresholded at 0.3");
        assert!(r.detections[0].groups.is_empty(), "no hierarchy for a non-AudioSet label set");
        assert_eq!(r.frames.labels, vec!["Dog", "Bark"]);
        assert_eq!(r.frames.scores[0], vec![0.05, 0.8, 0.9, 0.7, 0.1]);
        let dog: Vec<&Event> = r.events.iter().filter(|e| e.label == "Dog").collect();
        assert_eq!(dog.len(), 1);
        assert_eq!((dog[0].start, dog[0].end, dog[0].peak), (1.5, 4.5, 0.9));
        let p = r.prompts.unwrap();
        assert_eq!(p.matched_labels[0], vec!["Dog", "Bark"]);
        assert_eq!(p.scores[0], vec![0.05, 0.8, 0.9, 0.7, 0.1], "max over the matched labels");
        assert!(p.matched_labels[1].is_empty() && p.scores[1].iter().all(|&s| s == 0.0));
        assert_eq!(r.method, "label-match");
    }

    fn no_envelope() -> Envelope {
        Envelope { rms: Vec::new(), rate: 50.0 }
    }

    /// 10 s at 50 envelope values per second: background at 0.001, 0.1 inside `loud`.
    fn scene(loud: &[(f32, f32)]) -> Envelope {
        let rms = (0..500)
            .map(|i| {
                let t = (i as f32 + 0.5) / 50.0;
                if loud.iter().any(|&(a, b)| t >= a && t < b) { 0.1 } else { 0.001 }
            })
            .collect();
        Envelope { rms, rate: 50.0 }
    }

    #[test]
    fn a_label_only_the_block_detects_is_placed_where_a_sound_is() {
        let labels: Vec<String> = ["Dog", "Music"].iter().map(|s| s.to_string()).collect();
        let matcher = LabelMatcher::new(&labels);
        let times: Vec<f32> = (1..10).map(|i| i as f32).collect();
        // Dog: 0.23 on the 10 s block, at most 0.08 on a window (all under the 0.3 threshold); its
        // best windows are 2–4 and 3–5 s (frames 2, 3: 0.07 and 0.08 ≥ 0.5 × 0.08). Music: 0.4 on
        // the block, 0.1–0.15 on every window (under the threshold too).
        let dog = [0.0, 0.01, 0.07, 0.08, 0.01, 0.0, 0.0, 0.0, 0.0];
        let music = [0.1, 0.15, 0.1, 0.15, 0.1, 0.15, 0.1, 0.15, 0.1];
        let frames: Vec<Vec<f32>> = dog.iter().zip(&music).map(|(&d, &m)| vec![d, m]).collect();
        let block = [vec![0.23, 0.4]];
        let scores = Scores {
            timing: Timing { times: &times, window: 2.0, hop: 1.0, duration: 10.0 },
            frames: &frames,
            blocks: &[(0.0, 10.0)],
            block_scores: &block,
        };
        let bark = scene(&[(3.0, 3.92)]);
        let opts = TagOptions { threshold: 0.2, ..TagOptions::default() };
        let r = build_report("ced-tiny", &labels, &matcher, &scores, &bark, &opts);
        // Dog is placed on the bark's own boundaries. Music's placement windows are all of them
        // (≥ 0.5 × 0.15), whose loudest tenth is background: no distinct sound, no event.
        let dog_events: Vec<(f32, f32, f32)> =
            r.events.iter().filter(|e| e.label == "Dog").map(|e| (e.start, e.end, e.peak)).collect();
        assert_eq!(dog_events, vec![(3.0, 3.92, 0.08)]);
        assert!(r.events.iter().all(|e| e.label != "Music"), "{:?}", r.events);
        assert!(r.frames.labels.contains(&"Dog".to_string()), "a label with an event gets a timeline row");
        // Over a steady signal (music throughout) neither label becomes an event.
        let steady = Envelope { rms: vec![0.1; 500], rate: 50.0 };
        let r = build_report("ced-tiny", &labels, &matcher, &scores, &steady, &opts);
        assert!(r.events.is_empty(), "{:?}", r.events);
        // Under the threshold on the block too: no event, whatever the envelope.
        let r = build_report("ced-tiny", &labels, &matcher, &scores, &bark, &TagOptions::default());
        assert!(r.events.iter().all(|e| e.label != "Dog"), "{:?}", r.events);
    }

    #[test]
    fn options_are_validated_by_field() {
        assert_eq!(TagOptions { hop: 3.0, ..TagOptions::default() }.validate().unwrap_err().field, "hop");
        assert_eq!(TagOptions { top_k: 0, ..TagOptions::default() }.validate().unwrap_err().field, "top_k");
        assert_eq!(TagOptions { threshold: 1.5, ..TagOptions::default() }.validate().unwrap_err().field, "threshold");
        assert_eq!(TagOptions { window: f32::NAN, ..TagOptions::default() }.validate().unwrap_err().field, "window");
        assert!(TagOptions::default().with_prompt_text("a; b").validate().is_ok());
    }
}
