//! Turning per-frame scores into events: `{label, start, end, peak}` with hysteresis, so a score
//! wavering around the threshold gives one event, not a burst of fragments.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub label: String,
    pub start: f32,
    pub end: f32,
    pub peak: f32,
}

#[derive(Clone, Copy, Debug)]
pub struct EventRules {
    /// A label turns on at or above this score…
    pub on: f32,
    /// …and stays on until it drops below this one.
    pub off: f32,
    /// Shorter events are dropped.
    pub min_duration: f32,
}

/// Events of one label over frames centred at `times` (spaced `hop` apart). An event covers its
/// frames' centres ± hop/2: a window's score crosses the threshold about when the sound fills
/// half of it, i.e. when the window's centre reaches the sound, so the boundaries are within
/// half a hop of the truth. Clamped to `[0, duration]`.
pub fn label_events(
    label: &str,
    times: &[f32],
    scores: &[f32],
    hop: f32,
    duration: f32,
    rules: EventRules,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut open: Option<(usize, f32)> = None; // (first frame, peak)
    for (i, &s) in scores.iter().enumerate() {
        open = match open {
            None if s >= rules.on => Some((i, s)),
            Some((first, peak)) if s >= rules.off => Some((first, peak.max(s))),
            Some((first, peak)) => {
                push(&mut out, label, times, first, i - 1, peak, hop, duration, rules);
                if s >= rules.on { Some((i, s)) } else { None }
            }
            None => None,
        };
    }
    if let Some((first, peak)) = open {
        push(&mut out, label, times, first, scores.len() - 1, peak, hop, duration, rules);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn push(
    out: &mut Vec<Event>,
    label: &str,
    times: &[f32],
    first: usize,
    last: usize,
    peak: f32,
    hop: f32,
    duration: f32,
    rules: EventRules,
) {
    let start = (times[first] - hop / 2.0).max(0.0);
    let end = (times[last] + hop / 2.0).min(duration);
    if end - start >= rules.min_duration {
        out.push(Event { label: label.to_string(), start: round3(start), end: round3(end), peak: round3(peak) });
    }
}

pub fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RULES: EventRules = EventRules { on: 0.5, off: 0.3, min_duration: 1.0 };

    fn times(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 + 0.5).collect()
    }

    #[test]
    fn hysteresis_keeps_one_event_through_a_dip() {
        let s = [0.1, 0.6, 0.4, 0.7, 0.2, 0.1];
        let e = label_events("Dog", &times(6), &s, 1.0, 6.0, RULES);
        assert_eq!(e, vec![Event { label: "Dog".into(), start: 1.0, end: 4.0, peak: 0.7 }]);
    }

    #[test]
    fn separate_events_short_ones_dropped_and_clamped() {
        // On for frames 0–1; a one-frame blip at 4 (exactly the 1 s minimum: kept); on at the end
        // until the clamped duration (0.8 s: dropped).
        let s = [0.9, 0.8, 0.1, 0.1, 0.55, 0.1, 0.7];
        let e = label_events("x", &times(7), &s, 1.0, 6.8, RULES);
        let spans: Vec<(f32, f32)> = e.iter().map(|e| (e.start, e.end)).collect();
        assert_eq!(spans, vec![(0.0, 2.0), (4.0, 5.0)]);
        let longer = label_events("x", &times(7), &s, 1.0, 7.0, RULES);
        assert_eq!(longer.last().map(|e| (e.start, e.end)), Some((6.0, 7.0)));
        let strict = EventRules { min_duration: 1.5, ..RULES };
        assert_eq!(label_events("x", &times(7), &s, 1.0, 6.8, strict).len(), 1);
    }

    #[test]
    fn nothing_above_threshold_means_no_event() {
        assert!(label_events("x", &times(3), &[0.49, 0.2, 0.0], 1.0, 3.0, RULES).is_empty());
    }
}
