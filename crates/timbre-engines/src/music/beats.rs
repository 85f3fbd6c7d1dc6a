//! Beat tracking: a hidden Markov model over (tempo, position inside the beat) decoded with
//! Viterbi — the "bar pointer" state space of Krebs, Böck and Widmer (2015) that madmom's
//! `DBNBeatTrackingProcessor` uses, here with a beat activation derived from spectral flux.
//!
//! Each tempo state `τ` (a beat period in frames) owns `τ` position states; position advances
//! one per frame and wraps to 0 (a beat), where the tempo may change to a neighbour with a
//! probability falling exponentially with the relative change. Frames in the first part of a
//! beat expect a high activation, the others a low one. Unlike a one-tempo dynamic program
//! (librosa's `beat_track`), the path follows tempo changes, and unlike peak picking it keeps
//! the pulse through rests.

/// Share of a beat period that counts as "on the beat" (madmom's `observation_lambda` = 16).
const BEAT_SHARE: f64 = 16.0;
/// Tempo change penalty at a beat: P ∝ exp(-λ·|τ'/τ − 1|) (madmom's `transition_lambda`).
const TRANSITION_LAMBDA: f64 = 100.0;
/// Relative tempo changes beyond this between two beats are not considered (exp(−λ·0.1) ≈ 5e-5).
const MAX_STEP: f64 = 0.1;
/// Log probability of any larger tempo jump at a beat: rare, but a song that switches tempo
/// between sections takes it in one beat instead of drifting off the beat for several.
const JUMP_LOG: f64 = -12.0;
/// At most this many tempo states (log-spaced periods) keep slow songs cheap.
const MAX_TEMPI: usize = 48;
/// Activation floor and ceiling, so a beat without an onset (a rest, a syncopation) is unlikely
/// but not impossible.
const ACT_FLOOR: f32 = 0.03;

/// Beat period candidates (frames) between `min_lag` and `max_lag`, log-spaced when there are
/// more than [`MAX_TEMPI`] whole-frame periods.
fn tempo_states(min_lag: usize, max_lag: usize) -> Vec<usize> {
    let (lo, hi) = (min_lag.max(2), max_lag.max(min_lag.max(2)));
    if hi - lo < MAX_TEMPI {
        return (lo..=hi).collect();
    }
    let mut out: Vec<usize> = (0..MAX_TEMPI)
        .map(|i| (lo as f64 * (hi as f64 / lo as f64).powf(i as f64 / (MAX_TEMPI - 1) as f64)).round() as usize)
        .collect();
    out.dedup();
    out
}

/// Frames of the beats (the position-0 frames of the Viterbi path) for an activation in 0..1.
pub fn track(act: &[f32], min_lag: usize, max_lag: usize) -> Vec<usize> {
    let n = act.len();
    let tempi = tempo_states(min_lag, max_lag);
    if n == 0 || tempi.is_empty() {
        return Vec::new();
    }
    let total: usize = tempi.iter().sum();
    let region: Vec<usize> = tempi.iter().map(|&t| ((t as f64 / BEAT_SHARE).round() as usize).max(1)).collect();
    // Tempo transitions into each tempo: (source index, log probability), normalised per source.
    let mut into: Vec<Vec<(usize, f64)>> = vec![Vec::new(); tempi.len()];
    for (s, &from) in tempi.iter().enumerate() {
        let weights: Vec<(usize, f64)> = tempi
            .iter()
            .enumerate()
            .map(|(d, &to)| (d, (to as f64 / from as f64 - 1.0).abs()))
            .filter(|(_, r)| *r <= MAX_STEP)
            .map(|(d, r)| (d, -TRANSITION_LAMBDA * r))
            .collect();
        let norm = weights.iter().map(|(_, w)| w.exp()).sum::<f64>().ln();
        for (d, w) in weights {
            into[d].push((s, w - norm));
        }
    }
    // Each tempo's positions live in a ring: advancing every position by one frame is moving the
    // ring's head, not copying the scores. A position's score is its ring value plus the tempo's
    // running `off` total (every position but the few "on the beat" ones collects `off`), so a
    // frame touches each tempo's beat region and transitions only — O(tempi), not O(states).
    let mut rings: Vec<Vec<f64>> = tempi.iter().map(|&tau| vec![-(total as f64).ln(); tau]).collect();
    let mut heads = vec![0usize; tempi.len()];
    let mut offs = vec![0f64; tempi.len()];
    let mut ends = vec![0f64; tempi.len()];
    let mut back = vec![0u16; n * tempi.len()];
    for (t, &a) in act.iter().enumerate() {
        let a = f64::from(a.clamp(ACT_FLOOR, 1.0 - ACT_FLOOR));
        let on = a.ln();
        let off = ((1.0 - a) / (BEAT_SHARE - 1.0)).ln();
        for (j, &tau) in tempi.iter().enumerate() {
            ends[j] = rings[j][(heads[j] + tau - 1) % tau] + offs[j];
        }
        // The best beat-ending state of any tempo, for jumps.
        let (jump_from, jump_score) =
            ends.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (s, &v)| if v > b.1 { (s, v) } else { b });
        for (j, &tau) in tempi.iter().enumerate() {
            let mut best = (jump_score + JUMP_LOG, jump_from);
            for &(s, w) in &into[j] {
                let v = ends[s] + w;
                if v > best.0 {
                    best = (v, s);
                }
            }
            back[t * tempi.len() + j] = best.1 as u16;
            // Every position moves up one; the old last position's slot becomes position 0.
            heads[j] = (heads[j] + tau - 1) % tau;
            offs[j] += off;
            let ring = &mut rings[j];
            ring[heads[j]] = best.0 + on - offs[j];
            for p in 1..region[j].min(tau) {
                ring[(heads[j] + p) % tau] += on - off;
            }
        }
    }
    // Backtrack from the best final state (the first of equals in tempo, then position order).
    let (mut j, mut pos) = (0, 0);
    let mut best = f64::NEG_INFINITY;
    for (tj, &tau) in tempi.iter().enumerate() {
        for p in 0..tau {
            let v = rings[tj][(heads[tj] + p) % tau] + offs[tj];
            if v > best {
                (best, j, pos) = (v, tj, p);
            }
        }
    }
    let mut beats = Vec::new();
    for t in (0..n).rev() {
        if pos == 0 {
            beats.push(t);
            j = usize::from(back[t * tempi.len() + j]);
            pos = tempi[j] - 1;
        } else {
            pos -= 1;
        }
    }
    beats.reverse();
    beats
}

/// Move each beat to the strongest onset within its beat region (the path marks the region's
/// first frame), as madmom's `correct=True`.
pub fn snap_to_onsets(beats: &[usize], flux: &[f32], radius: usize) -> Vec<usize> {
    beats
        .iter()
        .map(|&b| {
            let (lo, hi) = (b.saturating_sub(radius), (b + radius + 1).min(flux.len()));
            (lo..hi).fold(b, |best, t| if flux[t] > flux[best] { t } else { best })
        })
        .collect()
}

/// Drop beats at either end that fall on no onset (`strength` below a fifth of the median of
/// the beats'): the tracker keeps its pulse going through a song's ring-out and count-in, where
/// nothing is played.
pub fn trim_silent_ends(beats: &mut Vec<usize>, strength: impl Fn(usize) -> f32) {
    let mut s: Vec<f32> = beats.iter().map(|&b| strength(b)).collect();
    let mut sorted = s.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = 0.2 * sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    while s.last().is_some_and(|&v| v < floor) {
        s.pop();
        beats.pop();
    }
    let lead = s.iter().take_while(|&&v| v < floor).count();
    beats.drain(..lead);
}

/// Sub-frame position of a peak at frame `t` (parabola through its neighbours).
pub fn refine(x: &[f32], t: usize) -> f64 {
    if t == 0 || t + 1 >= x.len() {
        return t as f64;
    }
    let (a, b, c) = (f64::from(x[t - 1]), f64::from(x[t]), f64::from(x[t + 1]));
    let denom = a - 2.0 * b + c;
    if denom.abs() < 1e-12 || b < a || b < c {
        return t as f64;
    }
    t as f64 + (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_pulse_through_a_tempo_change_and_a_rest() {
        // 50-frame beats, then 40-frame beats; one beat missing (a rest) in each half.
        let mut truth: Vec<usize> = (0..20).map(|i| 10 + i * 50).collect();
        let last = *truth.last().unwrap();
        truth.extend((1..=20).map(|i| last + i * 40));
        let mut act = vec![0.0f32; last + 21 * 40];
        for (i, &b) in truth.iter().enumerate() {
            if i != 7 && i != 30 {
                act[b] = 1.0;
            }
        }
        let beats = track(&act, 30, 70);
        // The first beat may be missed while the model locks on; every later one is found.
        let hits = truth.iter().filter(|&&b| beats.iter().any(|&e| e.abs_diff(b) <= 1)).count();
        assert!(hits >= truth.len() - 1, "{hits} of {} found: {beats:?}", truth.len());
        assert!(beats.len() <= truth.len() + 1, "no extra beats: {beats:?}");
    }

    #[test]
    fn an_abrupt_tempo_change_is_followed_at_once() {
        // 60-frame beats, then straight to 45-frame beats (+33 %).
        let mut truth: Vec<usize> = (0..15).map(|i| 10 + i * 60).collect();
        let last = *truth.last().unwrap();
        truth.extend((1..=20).map(|i| last + i * 45));
        let mut act = vec![0.0f32; last + 21 * 45];
        for &b in &truth {
            act[b] = 1.0;
        }
        let beats = track(&act, 35, 80);
        let missed: Vec<usize> =
            truth[1..].iter().copied().filter(|&b| !beats.iter().any(|&e| e.abs_diff(b) <= 1)).collect();
        assert!(missed.is_empty(), "missed {missed:?} in {beats:?}");
    }

    #[test]
    fn silent_ends_lose_their_beats() {
        let mut b = vec![10, 20, 30, 40, 50];
        let strength = [0.0, 1.0, 0.9, 1.1, 0.05];
        trim_silent_ends(&mut b, |x| strength[x / 10 - 1]);
        assert_eq!(b, vec![20, 30, 40]);
    }

    #[test]
    fn states_are_log_spaced_when_many() {
        let s = tempo_states(30, 200);
        assert!(s.len() <= MAX_TEMPI && s[0] == 30 && *s.last().unwrap() == 200);
        assert_eq!(tempo_states(30, 40).len(), 11);
    }

    #[test]
    fn snapping_and_refinement() {
        let flux = [0.0, 0.1, 0.5, 1.0, 0.5, 0.0];
        assert_eq!(snap_to_onsets(&[1], &flux, 2), vec![3]);
        assert!((refine(&flux, 3) - 3.0).abs() < 1e-9, "symmetric peak stays put");
        let skew = [0.0, 0.8, 1.0, 0.2];
        assert!(refine(&skew, 2) < 2.0);
    }
}
