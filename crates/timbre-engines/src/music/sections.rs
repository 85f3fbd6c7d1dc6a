//! Song structure from bar-level features: a self-similarity matrix, boundaries where a
//! checkerboard kernel finds the most novelty (Foote 2000), and labels by matching each segment
//! bar-by-bar against the earlier ones (a repeated verse has the same chords in the same order,
//! even when its average chroma equals the chorus's).

use serde::{Deserialize, Serialize};

use super::harmony::cosine;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

/// Bars each side of a boundary the kernel compares.
const KERNEL_BARS: usize = 4;
/// Shortest section, bars.
const MIN_BARS: usize = 4;
/// Two segments are the same part when their bars match this well on average.
const SAME_PART: f32 = 0.85;

/// Cosine self-similarity of the bar vectors.
pub fn similarity(bars: &[Vec<f32>]) -> Vec<Vec<f32>> {
    bars.iter().map(|a| bars.iter().map(|b| cosine(a, b)).collect()).collect()
}

/// Novelty at each bar boundary `b` (between bar b−1 and bar b), 0 at the song's edges.
pub fn novelty(ssm: &[Vec<f32>]) -> Vec<f32> {
    let n = ssm.len();
    (0..n)
        .map(|b| {
            let l = KERNEL_BARS.min(b).min(n - b);
            if l < 2 {
                return 0.0;
            }
            let (mut within, mut across) = (0.0f32, 0.0f32);
            for (i, row) in ssm.iter().enumerate().take(b + l).skip(b - l) {
                for (j, v) in row.iter().enumerate().take(b + l).skip(b - l) {
                    if (i < b) == (j < b) {
                        within += v;
                    } else {
                        across += v;
                    }
                }
            }
            let cells = (2 * l * l) as f32;
            (within - across) / cells
        })
        .collect()
}

/// Boundaries (bar indices) at novelty peaks: local maxima over ±`MIN_BARS/2` bars that stand
/// above the median, at least `MIN_BARS` apart, strongest first.
pub fn boundaries(nov: &[f32]) -> Vec<usize> {
    let n = nov.len();
    let mut sorted: Vec<f32> = nov.iter().copied().filter(|v| *v > 0.0).collect();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let max = sorted.last().copied().unwrap_or(0.0);
    let floor = median + 0.25 * (max - median);
    let mut peaks: Vec<usize> = (MIN_BARS..n.saturating_sub(MIN_BARS / 2))
        .filter(|&b| {
            let (lo, hi) = (b.saturating_sub(MIN_BARS / 2), (b + MIN_BARS / 2 + 1).min(n));
            nov[b] > floor && (lo..hi).all(|k| nov[k] <= nov[b])
        })
        .collect();
    peaks.sort_by(|&a, &b| nov[b].total_cmp(&nov[a]));
    let mut chosen: Vec<usize> = Vec::new();
    for p in peaks {
        if chosen.iter().all(|&c| c.abs_diff(p) >= MIN_BARS) && p + MIN_BARS / 2 <= n {
            chosen.push(p);
        }
    }
    chosen.sort();
    chosen
}

/// Bar-by-bar similarity of two segments (mean over their common length).
fn segment_match(ssm: &[Vec<f32>], a: (usize, usize), b: (usize, usize)) -> f32 {
    let len = (a.1 - a.0).min(b.1 - b.0);
    if len == 0 {
        return 0.0;
    }
    (0..len).map(|k| ssm[a.0 + k][b.0 + k]).sum::<f32>() / len as f32
}

/// Letters for repeated parts (A, B, C…), `intro`/`outro` for a short first/last segment that
/// never recurs.
pub fn label(ssm: &[Vec<f32>], segments: &[(usize, usize)]) -> Vec<String> {
    let mut labels: Vec<usize> = Vec::new();
    let mut next = 0;
    for (i, &seg) in segments.iter().enumerate() {
        let best = (0..i).map(|j| (j, segment_match(ssm, seg, segments[j]))).max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((j, s)) if s >= SAME_PART => labels.push(labels[j]),
            _ => {
                labels.push(next);
                next += 1;
            }
        }
    }
    let total = segments.last().map_or(0, |s| s.1);
    let once = |k: usize| labels.iter().filter(|&&l| l == labels[k]).count() == 1;
    let short = |k: usize| {
        let len = segments[k].1 - segments[k].0;
        len <= 8 && len * 5 <= total
    };
    let n = segments.len();
    let intro = n >= 3 && once(0) && short(0);
    let outro = n >= 3 && once(n - 1) && short(n - 1);
    // Letters are given in order of first appearance, skipping intro/outro.
    let mut letters: Vec<Option<char>> = vec![None; next];
    let mut letter = b'A';
    (0..n)
        .map(|k| {
            if k == 0 && intro {
                return "intro".to_string();
            }
            if k == n - 1 && outro {
                return "outro".to_string();
            }
            let l = labels[k];
            let c = *letters[l].get_or_insert_with(|| {
                let c = letter as char;
                letter = letter.saturating_add(1).min(b'Z');
                c
            });
            c.to_string()
        })
        .collect()
}

/// Sections over bars starting at `bar_starts` (seconds; the last entry is the end of the last
/// bar) with one feature vector per bar.
pub fn sections(bar_starts: &[f64], bars: &[Vec<f32>], duration: f64) -> Vec<Section> {
    let n = bars.len();
    if n == 0 || bar_starts.len() != n + 1 {
        return vec![Section { start: 0.0, end: duration, label: "A".into() }];
    }
    let ssm = similarity(bars);
    let mut cuts = vec![0];
    if n >= 2 * MIN_BARS {
        cuts.extend(boundaries(&novelty(&ssm)));
    }
    cuts.push(n);
    let segments: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    let labels = label(&ssm, &segments);
    segments
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (&(a, b), label))| Section {
            start: if i == 0 { 0.0 } else { bar_starts[a] },
            end: if i + 1 == segments.len() { duration } else { bar_starts[b] },
            label,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(k: usize) -> Vec<f32> {
        let mut x = vec![0.05; 8];
        x[k] = 1.0;
        x
    }

    #[test]
    fn intro_verse_chorus_verse_chorus_outro() {
        // Bars: intro (4, feature 0), A (8 bars, features 1,2 alternating), B (8, features 3,4),
        // A, B, outro (4, feature 5).
        let mut bars = Vec::new();
        bars.extend((0..4).map(|_| v(0)));
        for _ in 0..2 {
            bars.extend((0..8).map(|i| v(1 + i % 2)));
            bars.extend((0..8).map(|i| v(3 + i % 2)));
        }
        bars.extend((0..4).map(|_| v(5)));
        let starts: Vec<f64> = (0..=bars.len()).map(|b| b as f64 * 2.0).collect();
        let s = sections(&starts, &bars, 81.0);
        let got: Vec<(f64, &str)> = s.iter().map(|x| (x.start, x.label.as_str())).collect();
        assert_eq!(
            got,
            vec![(0.0, "intro"), (8.0, "A"), (24.0, "B"), (40.0, "A"), (56.0, "B"), (72.0, "outro")],
            "{s:?}"
        );
        assert_eq!(s.last().map(|x| x.end), Some(81.0));
    }

    #[test]
    fn a_short_song_is_one_section() {
        let bars: Vec<Vec<f32>> = (0..5).map(|_| v(1)).collect();
        let starts: Vec<f64> = (0..=5).map(|b| b as f64).collect();
        let s = sections(&starts, &bars, 5.5);
        assert_eq!(s, vec![Section { start: 0.0, end: 5.5, label: "A".into() }]);
    }
}
