//! Turning per-frame scores into events: `{label, start, end, peak}` with hysteresis, so a score
//! wavering around the threshold gives one event, not a burst of fragments, and with boundaries
//! taken from the signal's energy where it shows where the sound is.

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

/// A run of frames in which a label is on: first and last frame, best score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    pub first: usize,
    pub last: usize,
    pub peak: f32,
}

/// Runs of frames with hysteresis: a run starts at a score of at least `on` and lasts while the
/// score stays at or above `off`.
pub fn runs(scores: &[f32], on: f32, off: f32) -> Vec<Run> {
    let mut out = Vec::new();
    let mut open: Option<Run> = None;
    for (i, &s) in scores.iter().enumerate() {
        open = match open {
            None if s >= on => Some(Run { first: i, last: i, peak: s }),
            Some(r) if s >= off => Some(Run { last: i, peak: r.peak.max(s), ..r }),
            Some(r) => {
                out.push(r);
                if s >= on { Some(Run { first: i, last: i, peak: s }) } else { None }
            }
            None => None,
        };
    }
    out.extend(open);
    out
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
    runs(scores, rules.on, rules.off)
        .into_iter()
        .filter_map(|r| window_estimate(label, times, r, hop, duration, rules.min_duration))
        .collect()
}

fn window_estimate(label: &str, times: &[f32], run: Run, hop: f32, duration: f32, min: f32) -> Option<Event> {
    let start = (times[run.first] - hop / 2.0).max(0.0);
    let end = (times[run.last] + hop / 2.0).min(duration);
    (end - start >= min).then(|| Event {
        label: label.to_string(),
        start: round3(start),
        end: round3(end),
        peak: round3(run.peak),
    })
}

pub fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// Where the timeline's windows lie: centres `times`, each `window` seconds long (the signal's
/// length when it is shorter), `hop` apart, inside `[0, duration]`.
#[derive(Clone, Copy, Debug)]
pub struct Timing<'a> {
    pub times: &'a [f32],
    pub window: f32,
    pub hop: f32,
    pub duration: f32,
}

impl Timing<'_> {
    /// Start and end of window `k`, seconds.
    pub fn span(&self, k: usize) -> (f32, f32) {
        let c = self.times[k];
        ((c - self.window / 2.0).max(0.0), (c + self.window / 2.0).min(self.duration))
    }
}

/// The loudest tenth of the firing windows must be at least this many times the quietest tenth
/// of the background around them (6 dB) for the envelope to say where the sound is.
const CLEAR_STEP: f32 = 2.0;
/// RMS treated as the floor of digital silence (−80 dBFS), so ratios against it stay finite.
const RMS_FLOOR: f32 = 1e-4;

/// Where the sound that made a run of windows fire is, read from the energy envelope: the
/// stretches of sound activity that the run's windows heard, or `None` when the envelope shows
/// no clear sound there (a steady background such as music, noise or continuous speech, or a
/// quiet stretch such as the run of a "Silence" label), in which case only the windows place the
/// event.
///
/// - *Activity* is the envelope at or above the geometric midpoint between the background (the
///   quietest tenth of the run's windows plus one window on each side) and the sound (the
///   loudest tenth of the run's windows); stretches closer than one hop are one stretch (the
///   timeline cannot tell them apart), e.g. the barks of one dog.
/// - *Which stretches*: those overlapping the run's windows that the label's scores speak for.
///   Each window speaks for the stretch it overlaps most, and a stretch is kept when one of its
///   windows scored the label at least `support`. So a second, different sound inside the last
///   firing window is not taken in, while a sound the run's windows only half contained is.
/// - The event then spans the kept stretches; it may reach up to one window beyond the run,
///   since a window fires when the sound fills only part of it.
pub fn activity_span(env: &Envelope, t: &Timing, scores: &[f32], run: Run, support: f32) -> Option<(f32, f32)> {
    let (a, _) = t.span(run.first);
    let (_, b) = t.span(run.last);
    let (near_a, near_b) = ((a - t.window).max(0.0), (b + t.window).min(t.duration));
    let floor = env.quantile(near_a, near_b, 0.1).max(RMS_FLOOR);
    let loud = env.quantile(a, b, 0.9);
    if loud < CLEAR_STEP * floor {
        return None;
    }
    let spans = env.active_spans(near_a, near_b, (loud * floor).sqrt(), t.hop);
    let mut heard = vec![0f32; spans.len()];
    for (k, &score) in scores.iter().enumerate() {
        let (ws, we) = t.span(k);
        if we <= near_a || ws >= near_b {
            continue;
        }
        let most = spans
            .iter()
            .enumerate()
            .map(|(j, &(s, e))| (j, we.min(e) - ws.max(s)))
            .filter(|&(_, overlap)| overlap > 0.0)
            .max_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((j, _)) = most {
            heard[j] = heard[j].max(score);
        }
    }
    spans
        .iter()
        .zip(&heard)
        .filter(|&(&(s, e), &h)| e > a && s < b && h >= support)
        .map(|(&span, _)| span)
        .reduce(|x, y| (x.0.min(y.0), x.1.max(y.1)))
        .map(|(s, e)| (round3(s.max(0.0)), round3(e.min(t.duration))))
}

/// Events of one label from its runs: each placed by [`activity_span`] where the envelope shows
/// the sound, else by the windows (centres ± hop/2, then [`Envelope::refine`]) — or dropped when
/// `need_activity` (a label localised from weak window scores only counts where the envelope
/// confirms a sound). Events shorter than `min_duration` are dropped, and events of the label
/// that overlap are merged (two runs can find the same sound).
#[allow(clippy::too_many_arguments)]
pub fn place_events(
    label: &str,
    scores: &[f32],
    found: &[Run],
    support: f32,
    need_activity: bool,
    t: &Timing,
    env: &Envelope,
    min_duration: f32,
) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for &run in found {
        let peak = round3(run.peak);
        let event = match activity_span(env, t, scores, run, support) {
            Some((start, end)) => {
                Some(Event { label: label.to_string(), start, end, peak }).filter(|e| e.end - e.start >= min_duration)
            }
            None if need_activity => None,
            None => window_estimate(label, t.times, run, t.hop, t.duration, min_duration).map(|mut e| {
                env.refine(&mut e, t.span(run.first), t.span(run.last));
                e.start = e.start.clamp(0.0, t.duration);
                e.end = e.end.clamp(e.start, t.duration);
                e
            }),
        };
        out.extend(event);
    }
    merge_overlapping(out)
}

/// One event per stretch of a label: events of the same label that overlap or touch are merged.
pub fn merge_overlapping(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(|x, y| x.start.total_cmp(&y.start));
    let mut merged: Vec<Event> = Vec::with_capacity(events.len());
    for e in events {
        match merged.last_mut() {
            Some(m) if e.start <= m.end => {
                m.end = m.end.max(e.end);
                m.peak = m.peak.max(e.peak);
            }
            _ => merged.push(e),
        }
    }
    merged
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
        assert_eq!(runs(&s, 0.5, 0.3), vec![Run { first: 1, last: 3, peak: 0.7 }]);
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

    /// The value a fraction `q` of the way up the sorted envelope over `[a, b)` (0 when empty).
    pub fn quantile(&self, a: f32, b: f32, q: f32) -> f32 {
        let mut v = self.slice(a, b).to_vec();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f32::total_cmp);
        v[((v.len() as f32 * q) as usize).min(v.len() - 1)]
    }

    /// Stretches of `[a, b)` where the envelope is at least `level`, as (start, end) seconds;
    /// stretches less than `join` seconds apart are one.
    pub fn active_spans(&self, a: f32, b: f32, level: f32, join: f32) -> Vec<(f32, f32)> {
        let (i0, i1) = (self.index(a), self.index(b));
        let mut out: Vec<(f32, f32)> = Vec::new();
        let mut i = i0;
        while i < i1 {
            if self.rms[i] < level {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < i1 && self.rms[j] >= level {
                j += 1;
            }
            let span = (i as f32 / self.rate, j as f32 / self.rate);
            match out.last_mut() {
                Some(last) if span.0 - last.1 < join => last.1 = span.1,
                _ => out.push(span),
            }
            i = j;
        }
        out
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
        if core < 2.0 * floor.max(RMS_FLOOR) {
            return;
        }
        // Geometric midpoint between background and event levels.
        let level = (core * floor.max(RMS_FLOOR)).sqrt();
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
#[allow(clippy::unwrap_used)]
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

    /// An envelope at 10 values per second from per-value levels.
    fn env10(levels: &[f32]) -> Envelope {
        Envelope { rms: levels.to_vec(), rate: 10.0 }
    }

    /// `n` tenths of a second at `level`.
    fn hold(level: f32, n: usize) -> Vec<f32> {
        vec![level; n]
    }

    #[test]
    fn active_spans_join_short_gaps() {
        // 0.0–0.3 quiet, 0.3–0.6 loud, 0.6–0.8 quiet (0.2 s gap), 0.8–1.0 loud, 1.0–2.0 quiet,
        // 2.0–2.2 loud.
        let levels = [hold(0.0, 3), hold(1.0, 3), hold(0.0, 2), hold(1.0, 2), hold(0.0, 10), hold(1.0, 2)].concat();
        let env = env10(&levels);
        let spans = env.active_spans(0.0, 2.2, 0.5, 0.5);
        let r = |v: Vec<(f32, f32)>| v.into_iter().map(|(a, b)| (round3(a), round3(b))).collect::<Vec<_>>();
        assert_eq!(r(spans), vec![(0.3, 1.0), (2.0, 2.2)]);
        assert_eq!(r(env.active_spans(0.0, 2.2, 0.5, 0.1)), vec![(0.3, 0.6), (0.8, 1.0), (2.0, 2.2)]);
        assert_eq!(r(env.active_spans(0.5, 2.1, 0.5, 0.5)), vec![(0.5, 1.0), (2.0, 2.1)], "cut at the range");
        assert!((env.quantile(0.0, 1.0, 0.1) - 0.0).abs() < 1e-6 && (env.quantile(0.0, 1.0, 0.9) - 1.0).abs() < 1e-6);
    }

    /// 10 s of background at 0.001 with loud (0.1) stretches; windows of 2 s every second.
    fn scene(loud: &[(f32, f32)]) -> Envelope {
        let levels: Vec<f32> = (0..100)
            .map(|i| {
                let t = i as f32 / 10.0 + 0.05;
                if loud.iter().any(|&(a, b)| t >= a && t < b) { 0.1 } else { 0.001 }
            })
            .collect();
        env10(&levels)
    }

    const CENTRES: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

    fn timing() -> Timing<'static> {
        Timing { times: &CENTRES, window: 2.0, hop: 1.0, duration: 10.0 }
    }

    #[test]
    fn a_short_sound_takes_its_own_boundaries_not_the_window_grid() {
        // One 0.9 s bark at 3.0–3.9 s; only the window 2–4 s (frame 2) fired.
        let env = scene(&[(3.0, 3.9)]);
        let scores = [0.0, 0.1, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0];
        let run = Run { first: 2, last: 2, peak: 0.6 };
        assert_eq!(activity_span(&env, &timing(), &scores, run, 0.18), Some((3.0, 3.9)));
        // The window estimate would have been 2.5–3.5 s.
        let ev = place_events("Dog", &scores, &[run], 0.18, false, &timing(), &env, 0.5);
        assert_eq!(ev, vec![Event { label: "Dog".into(), start: 3.0, end: 3.9, peak: 0.6 }]);
    }

    #[test]
    fn repeats_closer_than_a_hop_are_one_event_even_past_the_firing_windows() {
        // Two moos, 4.0–5.2 and 5.7–6.8 s (0.5 s apart); only the window 3–5 s (frame 3) fired.
        let env = scene(&[(4.0, 5.2), (5.7, 6.8)]);
        let scores = [0.0, 0.0, 0.0, 0.5, 0.1, 0.05, 0.0, 0.0, 0.0];
        let run = Run { first: 3, last: 3, peak: 0.5 };
        assert_eq!(activity_span(&env, &timing(), &scores, run, 0.18), Some((4.0, 6.8)));
    }

    #[test]
    fn a_different_sound_in_the_firing_window_is_left_out() {
        // A bark at 3.0–3.5 s and a bell at 4.6–5.8 s; the label fired on the windows 2–4 and
        // 3–5 s (frames 2, 3). Window 3–5 overlaps the bark 0.5 s and the bell 0.4 s, so it speaks
        // for the bark; windows 4–6 and 5–7 speak for the bell and score the label low.
        let env = scene(&[(3.0, 3.5), (4.6, 5.8)]);
        let scores = [0.0, 0.1, 0.6, 0.5, 0.05, 0.02, 0.0, 0.0, 0.0];
        let run = Run { first: 2, last: 3, peak: 0.6 };
        assert_eq!(activity_span(&env, &timing(), &scores, run, 0.18), Some((3.0, 3.5)));
        // A label that also scored the bell's windows takes both.
        let both = [0.0, 0.1, 0.6, 0.5, 0.4, 0.3, 0.0, 0.0, 0.0];
        let run = Run { first: 2, last: 5, peak: 0.6 };
        assert_eq!(activity_span(&env, &timing(), &both, run, 0.18), Some((3.0, 5.8)));
    }

    #[test]
    fn steady_sound_or_quiet_stretch_has_no_activity_span() {
        // Music-like: loud everywhere, no step.
        let steady = env10(&[0.1; 100]);
        let run = Run { first: 2, last: 4, peak: 0.6 };
        let scores = [0.0, 0.2, 0.6, 0.6, 0.6, 0.2, 0.0, 0.0, 0.0];
        assert_eq!(activity_span(&steady, &timing(), &scores, run, 0.18), None);
        // "Silence" fired on the quiet windows 5–8 s (frames 5–6) next to a sound at 3–4 s: its
        // windows' loudest tenth is background, so nothing is snapped.
        let env = scene(&[(3.0, 4.0)]);
        let silence = [0.0, 0.0, 0.0, 0.0, 0.2, 0.7, 0.7, 0.0, 0.0];
        let run = Run { first: 5, last: 6, peak: 0.7 };
        assert_eq!(activity_span(&env, &timing(), &silence, run, 0.18), None);
        // Without activity a frame event keeps the window estimate; one that needs activity is dropped.
        let kept = place_events("Silence", &silence, &[run], 0.18, false, &timing(), &env, 0.5);
        assert_eq!(kept.iter().map(|e| (e.start, e.end)).collect::<Vec<_>>(), vec![(5.5, 7.5)]);
        assert!(place_events("Silence", &silence, &[run], 0.18, true, &timing(), &env, 0.5).is_empty());
    }

    #[test]
    fn runs_that_find_the_same_sound_merge() {
        // A horn at 6.0–7.6 s; the label wavers: on at frame 5 (window 5–7), off at 6, on at 7.
        let env = scene(&[(6.0, 7.6)]);
        let scores = [0.0, 0.0, 0.0, 0.0, 0.0, 0.36, 0.06, 0.47, 0.0];
        let found = runs(&scores, 0.3, 0.18);
        assert_eq!(found.len(), 2);
        let ev = place_events("Horn", &scores, &found, 0.18, false, &timing(), &env, 0.5);
        assert_eq!(ev, vec![Event { label: "Horn".into(), start: 6.0, end: 7.6, peak: 0.47 }]);
    }
}
