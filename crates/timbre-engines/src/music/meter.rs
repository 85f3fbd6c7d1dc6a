//! Downbeats and meter from the tracked beats: a bar's first beat is where the harmony changes
//! and the kick or bass lands. For each meter (3 or 4 beats) and phase, compare those cues on
//! the beats the hypothesis calls downbeats with the other beats; the best contrast wins.

use super::harmony::cosine;

fn zscore(x: &[f32]) -> Vec<f32> {
    let n = x.len().max(1) as f32;
    let mean = x.iter().sum::<f32>() / n;
    let sd = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt();
    x.iter().map(|v| if sd > 1e-9 { (v - mean) / sd } else { 0.0 }).collect()
}

/// Downbeat evidence per beat: harmonic change into the beat (chroma of the beat's interval
/// against the previous one), low-band onset strength at the beat and, when BeatNet ran, its
/// downbeat activation, each standardised. BeatNet knows 4/4 bars well but hardly 3/4 ones; the
/// harmony cue works for both.
pub fn downbeat_evidence(beat_chroma: &[[f32; 12]], low_at_beat: &[f32], net: Option<&[f32]>) -> Vec<f32> {
    let change: Vec<f32> = (0..beat_chroma.len())
        .map(|i| if i == 0 { 0.0 } else { 1.0 - cosine(&beat_chroma[i - 1], &beat_chroma[i]) })
        .collect();
    let (c, l) = (zscore(&change), zscore(low_at_beat));
    let n = net.map(zscore).unwrap_or_else(|| vec![0.0; c.len()]);
    c.iter().zip(&l).zip(&n).map(|((a, b), d)| a + 0.5 * b + d).collect()
}

/// Cost of re-phasing the bar (a missed or extra beat upstream), in standardised evidence
/// units: a few bars of contrary evidence are needed before the bar shifts.
const REPHASE: f32 = 4.0;

/// Position in the bar (0 = downbeat) of each beat for `m` beats per bar: Viterbi over the `m`
/// positions, advancing one per beat, with a penalised jump anywhere (so one tracking slip does
/// not shift every later bar).
pub fn bar_positions(evidence: &[f32], m: usize) -> Vec<usize> {
    let n = evidence.len();
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let emit = |i: usize, p: usize| if p == 0 { evidence[i] } else { 0.0 };
    let mut score: Vec<f32> = (0..m).map(|p| emit(0, p)).collect();
    let mut back = vec![0u8; n * m];
    for i in 1..n {
        let (best_q, best) =
            score.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (q, &v)| if v > b.1 { (q, v) } else { b });
        let mut next = vec![0f32; m];
        for p in 0..m {
            let prev = (p + m - 1) % m;
            let (from, v) = if score[prev] >= best - REPHASE { (prev, score[prev]) } else { (best_q, best - REPHASE) };
            next[p] = v + emit(i, p);
            back[i * m + p] = from as u8;
        }
        score = next;
    }
    let mut p = score.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (q, &v)| if v > b.1 { (q, v) } else { b }).0;
    let mut out = vec![0; n];
    for i in (0..n).rev() {
        out[i] = p;
        p = usize::from(back[i * m + p]);
    }
    out
}

/// Mean evidence on the downbeats minus mean on the other beats.
fn contrast(evidence: &[f32], positions: &[usize]) -> f32 {
    let (mut on, mut n_on, mut off, mut n_off) = (0.0, 0, 0.0, 0);
    for (v, &p) in evidence.iter().zip(positions) {
        if p == 0 {
            on += v;
            n_on += 1;
        } else {
            off += v;
            n_off += 1;
        }
    }
    if n_on == 0 || n_off == 0 {
        return f32::NEG_INFINITY;
    }
    on / n_on as f32 - off / n_off as f32
}

/// Beats per bar (4 or 3, whichever bars' downbeats stand out more) and the indices of the
/// downbeats.
pub fn downbeats(evidence: &[f32]) -> (usize, Vec<usize>) {
    let mut best = (4, Vec::new(), f32::NEG_INFINITY);
    for m in [4usize, 3] {
        let pos = bar_positions(evidence, m);
        let c = contrast(evidence, &pos);
        if c > best.2 {
            best = (m, pos.iter().enumerate().filter(|(_, p)| **p == 0).map(|(i, _)| i).collect(), c);
        }
    }
    (best.0, best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chord(root: usize) -> [f32; 12] {
        let mut c = [0.0; 12];
        for k in [0, 4, 7] {
            c[(root + k) % 12] = 1.0;
        }
        c
    }

    #[test]
    fn waltz_with_chord_changes_every_three_beats() {
        // 3/4, first downbeat at beat 1 (a one-beat pickup); chords C F G Am cycle per bar.
        let roots = [0, 5, 7, 9];
        let beats = 40;
        let chroma: Vec<[f32; 12]> = (0..beats).map(|i| chord(roots[(i as usize).div_ceil(3) % 4])).collect();
        let low: Vec<f32> = (0..beats).map(|i| if i % 3 == 1 { 1.0 } else { 0.3 }).collect();
        let (m, down) = downbeats(&downbeat_evidence(&chroma, &low, None));
        assert_eq!(m, 3);
        assert_eq!(&down[..3], &[1, 4, 7]);
    }

    #[test]
    fn four_four_with_kick_on_one_and_three() {
        let roots = [0, 9, 5, 7];
        let chroma: Vec<[f32; 12]> = (0..48).map(|i| chord(roots[(i / 4) % 4])).collect();
        let low: Vec<f32> = (0..48).map(|i| if i % 2 == 0 { 1.0 } else { 0.2 }).collect();
        let (m, down) = downbeats(&downbeat_evidence(&chroma, &low, None));
        assert_eq!(m, 4);
        assert_eq!(&down[..3], &[0, 4, 8]);
    }

    #[test]
    fn the_bar_follows_a_skipped_beat() {
        // 4/4 with strong downbeats; one beat is missing at index 18, so later bars start 1 early.
        let ev: Vec<f32> =
            (0..60).map(|i| if (i < 18 && i % 4 == 0) || (i >= 18 && i % 4 == 3) { 2.0 } else { -0.6 }).collect();
        let (m, down) = downbeats(&ev);
        assert_eq!(m, 4);
        assert!(down.contains(&16) && down.contains(&19) && down.contains(&55), "{down:?}");
    }
}
