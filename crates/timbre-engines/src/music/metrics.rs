//! Beat-tracking evaluation as `mir_eval.beat.f_measure`: beats before 5 s are dropped from both
//! lists, then an estimate is a hit when it lies within ±70 ms of a reference beat not already
//! matched. Used by the accuracy tests and the benchmark (cross-checked against mir_eval by
//! `scripts/reference/music_reference.py`).

/// mir_eval's `trim_beats` default: the first 5 s hold no reliable tempo yet.
pub const TRIM_SECONDS: f64 = 5.0;
/// mir_eval's default `f_measure_threshold`.
pub const WINDOW: f64 = 0.07;

/// Size of a maximum matching of `reference` to `estimated` with |r − e| ≤ `window`, both
/// sorted. On a line, matching each reference to the earliest unused estimate in its window is
/// maximum (the windows are intervals of equal width), so greedy equals mir_eval's bipartite
/// matching.
pub fn matches(reference: &[f64], estimated: &[f64], window: f64) -> usize {
    let (mut j, mut hits) = (0, 0);
    for &r in reference {
        while j < estimated.len() && estimated[j] < r - window {
            j += 1;
        }
        if j < estimated.len() && (estimated[j] - r).abs() <= window {
            hits += 1;
            j += 1;
        }
    }
    hits
}

/// F-measure of `estimated` against `reference` (seconds, any order), after trimming both.
pub fn f_measure(reference: &[f64], estimated: &[f64]) -> f64 {
    let trim = |x: &[f64]| {
        let mut v: Vec<f64> = x.iter().copied().filter(|t| *t >= TRIM_SECONDS).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (r, e) = (trim(reference), trim(estimated));
    if r.is_empty() || e.is_empty() {
        return 0.0;
    }
    let hits = matches(&r, &e, WINDOW) as f64;
    if hits == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (hits / e.len() as f64, hits / r.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_half_and_shifted() {
        let r: Vec<f64> = (0..40).map(|i| i as f64 * 0.5).collect();
        assert_eq!(f_measure(&r, &r), 1.0);
        let half: Vec<f64> = r.iter().copied().step_by(2).collect();
        // 15 reference beats after 5 s... 30 of them; the half-tempo estimate hits 15 of 30.
        assert!((f_measure(&r, &half) - 2.0 * (1.0 * 0.5) / 1.5).abs() < 1e-9);
        let late: Vec<f64> = r.iter().map(|t| t + 0.1).collect();
        assert_eq!(f_measure(&r, &late), 0.0);
        assert_eq!(f_measure(&r, &[]), 0.0);
    }
}
