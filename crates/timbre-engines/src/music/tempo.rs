//! Global tempo from the onset envelope's autocorrelation, with the metrical level chosen by
//! how strong each level's pulse is against its neighbours (octave correction).
//!
//! The autocorrelation peaks at the beat period and at all its multiples and fractions; a plain
//! prior around 120 BPM (librosa's) picks 140 for a 70 BPM ballad whose hi-hat plays eighths, and
//! 85 for a 170 BPM two-beat. The level is therefore chosen by comparison: a faster level whose
//! pulse is nearly as strong as the current one is the beat (the "off-beats" are as accented as
//! the beats); a faster level that is much weaker is a subdivision.

/// Slowest and fastest tempo reported, BPM.
pub const MIN_BPM: f64 = 40.0;
pub const MAX_BPM: f64 = 240.0;
/// Prior: log-normal around 120 BPM, one octave wide (as librosa's `start_bpm`, `std_bpm`).
const PRIOR_BPM: f64 = 120.0;
const PRIOR_OCTAVES: f64 = 1.0;
/// A faster level is the beat when its pulse reaches this share of the current level's.
const FASTER: f32 = 0.85;
/// A slower level is the beat when the current level's pulse is below this share of it.
const SLOWER: f32 = 0.5;

/// Normalised autocorrelation `r[k] = Σ x[t]·x[t+k] / Σ x[t]²` for lags `0..=max_lag`.
pub fn autocorrelation(x: &[f32], max_lag: usize) -> Vec<f32> {
    let energy: f64 = x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
    if energy <= 0.0 {
        return vec![0.0; max_lag + 1];
    }
    (0..=max_lag)
        .map(|k| {
            if k >= x.len() {
                return 0.0;
            }
            let s: f64 = x[..x.len() - k].iter().zip(&x[k..]).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            (s / energy) as f32
        })
        .collect()
}

/// Mean of the normalised autocorrelations of `window`-frame stretches every `hop` frames (a
/// tempogram averaged over time): a song that changes tempo keeps a peak for each tempo, where
/// one whole-song autocorrelation smears both.
pub fn windowed_autocorrelation(x: &[f32], max_lag: usize, window: usize, hop: usize) -> Vec<f32> {
    if x.len() <= window {
        return autocorrelation(x, max_lag);
    }
    let mut sum = vec![0f32; max_lag + 1];
    let mut count = 0;
    let mut start = 0;
    while start + window <= x.len() {
        let ac = autocorrelation(&x[start..start + window], max_lag);
        if ac[0] > 0.0 {
            sum.iter_mut().zip(&ac).for_each(|(s, a)| *s += a);
            count += 1;
        }
        start += hop;
    }
    sum.iter_mut().for_each(|s| *s /= count.max(1) as f32);
    sum
}

/// Strength of the pulse at a (fractional) lag: the autocorrelation's best value within one
/// frame of it, since a beat period rarely falls on a whole frame.
pub fn pulse(ac: &[f32], lag: f64) -> f32 {
    let c = lag.round() as isize;
    (c - 1..=c + 1).filter(|&k| k >= 1 && (k as usize) < ac.len()).map(|k| ac[k as usize]).fold(0.0, f32::max)
}

fn bpm_of(lag: f64, fps: f64) -> f64 {
    60.0 * fps / lag
}

/// Beat period in frames (fractional) of a detrended onset envelope at `fps` frames per second;
/// `None` when there is no periodicity at all (silence, noise).
pub fn beat_period(onset: &[f32], fps: f64) -> Option<f64> {
    let min_lag = (60.0 * fps / MAX_BPM).floor().max(1.0) as usize;
    let max_lag = (60.0 * fps / MIN_BPM).ceil() as usize;
    let ac = autocorrelation(onset, 2 * max_lag + 2);
    // Best lag under the prior, among local maxima only.
    let mut best: Option<(usize, f64)> = None;
    for k in min_lag.max(2)..=max_lag.min(ac.len() - 2) {
        if ac[k] <= 0.0 || ac[k] < ac[k - 1] || ac[k] < ac[k + 1] {
            continue;
        }
        let octaves = (bpm_of(k as f64, fps) / PRIOR_BPM).log2() / PRIOR_OCTAVES;
        let score = f64::from(ac[k]) * (-0.5 * octaves * octaves).exp();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((k, score));
        }
    }
    let (k, _) = best?;
    // Refine to a fractional lag with a parabola through the peak.
    let (a, b, c) = (f64::from(ac[k - 1]), f64::from(ac[k]), f64::from(ac[k + 1]));
    let denom = a - 2.0 * b + c;
    let mut lag = if denom.abs() > 1e-12 { k as f64 + 0.5 * (a - c) / denom } else { k as f64 };
    // Octave correction: faster while the faster pulse is nearly as strong, else slower while the
    // slower pulse dominates.
    let mut moved = false;
    while bpm_of(lag / 2.0, fps) <= MAX_BPM && pulse(&ac, lag / 2.0) >= FASTER * pulse(&ac, lag) {
        lag /= 2.0;
        moved = true;
    }
    if !moved {
        while bpm_of(lag * 2.0, fps) >= MIN_BPM && pulse(&ac, lag) < SLOWER * pulse(&ac, lag * 2.0) {
            lag *= 2.0;
        }
    }
    Some(lag)
}

/// Tempo (BPM) that most beat intervals share, and the share of intervals within 2 % of it: a
/// song that changes tempo reports its longest-held tempo with a lower confidence.
pub fn tempo_from_beats(beats: &[f64]) -> (f64, f64) {
    let ibis: Vec<f64> = beats.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    if ibis.is_empty() {
        return (0.0, 0.0);
    }
    let near = |a: f64, b: f64| (a / b - 1.0).abs() <= 0.02;
    let (mut best, mut count) = (ibis[0], 0);
    for &d in &ibis {
        let c = ibis.iter().filter(|&&e| near(e, d)).count();
        if c > count {
            (best, count) = (d, c);
        }
    }
    let close: Vec<f64> = ibis.iter().copied().filter(|&e| near(e, best)).collect();
    let mean = close.iter().sum::<f64>() / close.len() as f64;
    (60.0 / mean, count as f64 / ibis.len() as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An onset envelope with `strong` pulses every `period` frames and weaker ones between.
    fn pulses(period: usize, strong: f32, between: &[(usize, f32)], frames: usize) -> Vec<f32> {
        let mut x = vec![0f32; frames];
        for t in (0..frames).step_by(period) {
            x[t] = strong;
            for &(off, v) in between {
                if t + off < frames {
                    x[t + off] = v;
                }
            }
        }
        x
    }

    #[test]
    fn quarter_notes_with_soft_eighths_are_the_beat() {
        // 70 BPM at 100 fps: period 85.7 → use 86; soft eighth-note hats halfway.
        let x = pulses(86, 1.0, &[(43, 0.3)], 3000);
        let lag = beat_period(&x, 100.0).unwrap();
        assert!((lag - 86.0).abs() < 1.0, "{lag}");
    }

    #[test]
    fn equally_accented_two_beat_is_not_halved() {
        // 170 BPM: 35 frames; boom on 1, chick on 2, as loud.
        let x = pulses(70, 1.0, &[(35, 0.9)], 3000);
        let lag = beat_period(&x, 100.0).unwrap();
        assert!((lag - 35.0).abs() < 1.0, "{lag}");
    }

    #[test]
    fn silence_has_no_tempo() {
        assert!(beat_period(&[0.0; 500], 100.0).is_none());
    }

    #[test]
    fn tempo_from_beats_takes_the_longest_held_tempo() {
        let mut beats: Vec<f64> = (0..20).map(|i| i as f64 * 0.6).collect(); // 100 BPM
        let last = *beats.last().unwrap();
        beats.extend((1..=12).map(|i| last + i as f64 * 0.5)); // then 120 BPM
        let (bpm, conf) = tempo_from_beats(&beats);
        assert!((bpm - 100.0).abs() < 0.01, "{bpm}");
        assert!((conf - 19.0 / 31.0).abs() < 1e-9, "{conf}");
    }
}
