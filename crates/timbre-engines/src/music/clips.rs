//! Clip plans for video generation (VibeCraft's `ClipPlan`): the song cut into consecutive clips
//! of `min_sec`–`max_sec`, every cut on a section start or a beat (downbeats preferred), so no
//! clip straddles a section change when the lengths allow it.

use serde::Serialize;

use super::{Analysis, Section};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clip {
    pub index: usize,
    pub start: f64,
    pub end: f64,
    pub duration: f64,
    /// Label of the section the clip starts in.
    pub section: String,
    /// Beats inside the clip.
    pub beats: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("min_sec must be greater than 0 and at most 60")]
    Min,
    #[error("max_sec must be at least min_sec and at most 120")]
    Max,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn section_at(sections: &[Section], t: f64) -> &str {
    sections.iter().rev().find(|s| s.start <= t + 1e-6).or(sections.first()).map_or("A", |s| s.label.as_str())
}

/// Cuts strictly inside `a..b` so every piece is `min_sec..=max_sec`: from each cut, the
/// latest downbeat in reach (else the latest beat, else `max_sec` on), leaving at least
/// `min_sec` for the rest of the span.
fn cut_span(a: f64, b: f64, beats: &[(f64, u8)], min_sec: f64, max_sec: f64) -> Vec<f64> {
    let mut cuts = Vec::new();
    let mut at = a;
    while b - at > max_sec {
        let fits = |t: f64| b - t >= min_sec;
        let pick = beats
            .iter()
            .filter(|(t, _)| *t >= at + min_sec - 1e-9 && *t <= at + max_sec + 1e-9 && fits(*t))
            .min_by(|x, y| x.1.cmp(&y.1).then(y.0.total_cmp(&x.0)))
            .map(|(t, _)| *t)
            .unwrap_or(at + max_sec.min((b - at) / 2.0).max(min_sec));
        cuts.push(pick);
        at = pick;
    }
    cuts
}

/// The plan: clips covering `0..duration` exactly. Section starts are cut first (a section
/// shorter than `min_sec` joins the one before it), then each section is cut on beats, each clip
/// `min_sec..=max_sec` long unless the whole song is shorter.
pub fn plan(a: &Analysis, min_sec: f64, max_sec: f64) -> Result<Vec<Clip>, PlanError> {
    if !(min_sec > 0.0 && min_sec <= 60.0) {
        return Err(PlanError::Min);
    }
    if !(max_sec >= min_sec && max_sec <= 120.0) {
        return Err(PlanError::Max);
    }
    let duration = a.duration;
    let mut spans = vec![0.0];
    for s in a.sections.iter().skip(1).map(|s| s.start) {
        let last = spans.last().copied().unwrap_or(0.0);
        if s - last >= min_sec && duration - s >= min_sec {
            spans.push(s);
        }
    }
    spans.push(duration);
    let near = |t: f64| a.downbeats.iter().any(|d| (d - t).abs() < 0.02);
    let ranked: Vec<(f64, u8)> = a.beats.iter().map(|&b| (b, if near(b) { 0 } else { 1 })).collect();
    let mut cuts = Vec::new();
    for w in spans.windows(2) {
        cuts.push(w[0]);
        cuts.extend(cut_span(w[0], w[1], &ranked, min_sec, max_sec));
    }
    cuts.push(duration);
    Ok(cuts
        .windows(2)
        .enumerate()
        .map(|(i, w)| Clip {
            index: i,
            start: round3(w[0]),
            end: round3(w[1]),
            duration: round3(w[1] - w[0]),
            section: section_at(&a.sections, w[0]).to_string(),
            beats: a.beats.iter().filter(|&&b| b >= w[0] - 1e-9 && b < w[1] - 1e-9).count(),
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn song() -> Analysis {
        // 120 BPM 4/4, 40 s; sections: intro 0–8, A 8–24, B 24–40.
        let beats: Vec<f64> = (0..80).map(|i| i as f64 * 0.5).collect();
        let downbeats: Vec<f64> = beats.iter().copied().step_by(4).collect();
        let section = |s: f64, e: f64, l: &str| Section { start: s, end: e, label: l.into() };
        Analysis {
            duration: 40.0,
            sample_rate: 44100,
            bpm: 120.0,
            bpm_confidence: 1.0,
            energy: vec![1.0; beats.len()],
            beats,
            downbeats,
            time_signature: "4/4".into(),
            sections: vec![section(0.0, 8.0, "intro"), section(8.0, 24.0, "A"), section(24.0, 40.0, "B")],
            loudness_lufs: -14.0,
            genre: Vec::new(),
            mood: Vec::new(),
        }
    }

    #[test]
    fn clips_cover_the_song_on_beats_within_bounds_and_respect_sections() {
        let a = song();
        let clips = plan(&a, 3.0, 6.0).unwrap();
        assert_eq!(clips.first().unwrap().start, 0.0);
        assert_eq!(clips.last().unwrap().end, 40.0);
        for w in clips.windows(2) {
            assert_eq!(w[0].end, w[1].start, "contiguous");
        }
        for c in &clips {
            assert!(c.duration >= 3.0 - 1e-9 && c.duration <= 6.0 + 1e-9, "{c:?}");
            assert!(a.beats.iter().any(|b| (b - c.start).abs() < 1e-6), "cut on a beat: {c:?}");
        }
        // Section starts are cuts, so no clip straddles a section change.
        for s in [8.0, 24.0] {
            assert!(clips.iter().any(|c| c.start == s), "no cut at {s}: {clips:?}");
        }
        assert_eq!(clips.iter().find(|c| c.start == 24.0).unwrap().section, "B");
        assert_eq!(clips.iter().map(|c| c.beats).sum::<usize>(), 80);
    }

    #[test]
    fn bounds_are_validated_and_a_short_song_is_one_clip() {
        let a = song();
        assert_eq!(plan(&a, 0.0, 6.0), Err(PlanError::Min));
        assert_eq!(plan(&a, 5.0, 4.0), Err(PlanError::Max));
        assert_eq!(plan(&a, f64::NAN, 4.0), Err(PlanError::Min));
        let whole = plan(&a, 30.0, 60.0).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!((whole[0].start, whole[0].end), (0.0, 40.0));
    }
}
