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

/// Short-term RMS of the signal, for placing event boundaries inside a window.
pub struct Envelope {
    pub rms: Vec<f32>,
    /// Envelope values per second.
    pub rate: f32,
}

/// RMS over 20 ms frames.
pub fn envelope(samples: &[f32], sample_rate: u32) -> Envelope {
    let frame = (sample_rate / 50).max(1) as usize;
    let rms = samples.chunks(frame).map(|c| (c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32).sqrt()).collect();
    Envelope { rms, rate: sample_rate as f32 / frame as f32 }
}

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

impl Envelope {
    fn index(&self, t: f32) -> usize {
        ((t.max(0.0) * self.rate) as usize).min(self.rms.len())
    }

    fn slice(&self, a: f32, b: f32) -> &[f32] {
        let (i, j) = (self.index(a), self.index(b));
        if i < j { &self.rms[i..j] } else { &[] }
    }

    /// Move an event's boundaries to where the energy steps up and down. The start is searched
    /// inside the first window that fired (`start_span`), the end inside the last one
    /// (`end_span`): the true boundary can be anywhere in them. Needs a clear step — the
    /// event's median level at least twice the quietest tenth of the search spans — so events
    /// in steady backgrounds (speech over noise, music) keep the window estimate.
    pub fn refine(&self, event: &mut Event, start_span: (f32, f32), end_span: (f32, f32)) {
        let before = self.slice(start_span.0, start_span.1);
        let after = self.slice(end_span.0, end_span.1);
        let core = median(self.slice(event.start, event.end).to_vec());
        let quiet = |span: &[f32]| {
            let mut v = span.to_vec();
            v.sort_by(f32::total_cmp);
            v.get(v.len() / 10).copied().unwrap_or(0.0)
        };
        if core <= 0.0 {
            return;
        }
        let floor = quiet(before).min(quiet(after));
        if core < 2.0 * floor.max(1e-4) {
            return;
        }
        // Geometric midpoint between background and event levels.
        let level = (core * floor.max(1e-4)).sqrt();
        let base = self.index(start_span.0);
        if let Some(k) = before.iter().position(|&r| r >= level) {
            event.start = round3((base + k) as f32 / self.rate);
        }
        let base = self.index(end_span.0);
        if let Some(k) = after.iter().rposition(|&r| r >= level) {
            event.end = round3((base + k + 1) as f32 / self.rate);
        }
    }
}

#[cfg(test)]
mod envelope_tests {
    use super::*;

    #[test]
    fn boundaries_snap_to_a_clear_energy_step() {
        // 8 s at 1 kHz sampling: silence, a loud stretch 2.0–6.0 s, silence.
        let sr = 1000;
        let x: Vec<f32> =
            (0..8 * sr).map(|i| if (2000..6000).contains(&i) { 0.5 * ((i as f32) * 0.3).sin() } else { 0.0 }).collect();
        let env = envelope(&x, sr as u32);
        let mut e = Event { label: "x".into(), start: 1.25, end: 6.75, peak: 0.9 };
        env.refine(&mut e, (0.5, 2.5), (5.5, 7.5));
        assert!((e.start - 2.0).abs() <= 0.02 && (e.end - 6.0).abs() <= 0.02, "{e:?}");
        // A one-window event (the estimate spans one hop) whose sound sits off-centre in the
        // window: the whole window is searched, not a span around the estimate.
        let x: Vec<f32> =
            (0..8 * sr).map(|i| if (2000..3700).contains(&i) { 0.5 * ((i as f32) * 0.3).sin() } else { 0.0 }).collect();
        let env = envelope(&x, sr as u32);
        let mut e = Event { label: "x".into(), start: 2.5, end: 3.5, peak: 0.9 };
        env.refine(&mut e, (2.0, 4.0), (2.0, 4.0));
        assert!((e.start - 2.0).abs() <= 0.02 && (e.end - 3.7).abs() <= 0.02, "{e:?}");
    }

    #[test]
    fn no_step_keeps_the_estimate() {
        let sr = 1000;
        let x: Vec<f32> = (0..8 * sr).map(|i| 0.3 * ((i as f32) * 0.7).sin()).collect();
        let env = envelope(&x, sr as u32);
        let mut e = Event { label: "x".into(), start: 1.5, end: 6.5, peak: 0.9 };
        env.refine(&mut e, (1.0, 3.0), (5.0, 7.0));
        assert_eq!((e.start, e.end), (1.5, 6.5));
    }
}
