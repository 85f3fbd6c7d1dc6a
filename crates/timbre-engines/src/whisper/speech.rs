//! Speech regions from Silero VAD probabilities (faster-whisper's `get_speech_timestamps`), the
//! speech-only signal the decoder sees, and the map back to times in the original input.

use super::api::Segment;

pub const WINDOW: usize = 512;

#[derive(Clone, Debug, PartialEq)]
pub struct VadParams {
    pub threshold: f32,
    /// Below this a window is silence; `None` = `threshold − 0.15` (at least 0.01).
    pub neg_threshold: Option<f32>,
    pub min_speech_ms: u32,
    pub max_speech_s: f32,
    pub min_silence_ms: u32,
    pub speech_pad_ms: u32,
}

impl Default for VadParams {
    /// faster-whisper's `VadOptions()`.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_ms: 0,
            max_speech_s: f32::INFINITY,
            min_silence_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

/// A speech region in samples, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// Speech regions of a signal of `len` samples (16 kHz) from one probability per 512-sample
/// window: hysteresis between `threshold` and `neg_threshold`, silences shorter than
/// `min_silence` bridged, over-long regions split at the last long-enough pause, then padded.
pub fn speech_timestamps(probs: &[f32], len: usize, p: &VadParams) -> Vec<Span> {
    let sr = 16_000f64;
    let w = WINDOW as f64;
    let min_speech = sr * f64::from(p.min_speech_ms) / 1000.0;
    let pad = sr * f64::from(p.speech_pad_ms) / 1000.0;
    let max_speech = sr * f64::from(p.max_speech_s) - w - 2.0 * pad;
    let min_silence = sr * f64::from(p.min_silence_ms) / 1000.0;
    let min_silence_at_max = sr * 98.0 / 1000.0;
    let neg = p.neg_threshold.unwrap_or((p.threshold - 0.15).max(0.01));

    let mut triggered = false;
    let mut speeches: Vec<(usize, usize)> = Vec::new();
    let mut cur_start: Option<usize> = None;
    let (mut temp_end, mut prev_end, mut next_start) = (0usize, 0usize, 0usize);
    for (i, &prob) in probs.iter().enumerate() {
        let at = WINDOW * i;
        if prob >= p.threshold && temp_end != 0 {
            temp_end = 0;
            if next_start < prev_end {
                next_start = at;
            }
        }
        if prob >= p.threshold && !triggered {
            triggered = true;
            cur_start = Some(at);
            continue;
        }
        if triggered
            && let Some(start) = cur_start
            && (at - start) as f64 > max_speech
        {
            if prev_end != 0 {
                speeches.push((start, prev_end));
                cur_start = None;
                if next_start < prev_end {
                    triggered = false;
                } else {
                    cur_start = Some(next_start);
                }
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
            } else {
                speeches.push((start, at));
                cur_start = None;
                prev_end = 0;
                next_start = 0;
                temp_end = 0;
                triggered = false;
                continue;
            }
        }
        if prob < neg && triggered {
            if temp_end == 0 {
                temp_end = at;
            }
            if (at - temp_end) as f64 > min_silence_at_max {
                prev_end = temp_end;
            }
            if ((at - temp_end) as f64) < min_silence {
                continue;
            }
            if let Some(start) = cur_start.take()
                && (temp_end - start) as f64 > min_speech
            {
                speeches.push((start, temp_end));
            }
            prev_end = 0;
            next_start = 0;
            temp_end = 0;
            triggered = false;
            continue;
        }
    }
    if let Some(start) = cur_start
        && (len.saturating_sub(start)) as f64 > min_speech
    {
        speeches.push((start, len));
    }
    let n = speeches.len();
    let mut out: Vec<Span> = speeches.iter().map(|&(s, e)| Span { start: s, end: e }).collect();
    for i in 0..n {
        if i == 0 {
            out[i].start = (out[i].start as f64 - pad).max(0.0) as usize;
        }
        if i != n - 1 {
            let silence = out[i + 1].start as i64 - out[i].end as i64;
            if (silence as f64) < 2.0 * pad {
                let half = silence.div_euclid(2);
                out[i].end = (out[i].end as i64 + half) as usize;
                out[i + 1].start = (out[i + 1].start as i64 - half).max(0) as usize;
            } else {
                out[i].end = ((out[i].end as f64 + pad).min(len as f64)) as usize;
                out[i + 1].start = (out[i + 1].start as f64 - pad).max(0.0) as usize;
            }
        } else {
            out[i].end = ((out[i].end as f64 + pad).min(len as f64)) as usize;
        }
    }
    out
}

/// The speech samples back to back.
pub fn collect(audio: &[f32], spans: &[Span]) -> Vec<f32> {
    let mut out = Vec::with_capacity(spans.iter().map(|s| s.end - s.start).sum());
    for s in spans {
        out.extend_from_slice(&audio[s.start.min(audio.len())..s.end.min(audio.len())]);
    }
    out
}

/// Maps times in the speech-only signal back to the original (faster-whisper's
/// `SpeechTimestampsMap`).
pub struct TimeMap {
    chunk_end_sample: Vec<usize>,
    silence_before: Vec<f64>,
}

impl TimeMap {
    pub fn new(spans: &[Span]) -> Self {
        let (mut previous_end, mut silent) = (0usize, 0usize);
        let mut chunk_end_sample = Vec::new();
        let mut silence_before = Vec::new();
        for s in spans {
            silent += s.start.saturating_sub(previous_end);
            previous_end = s.end;
            chunk_end_sample.push(s.end - silent);
            silence_before.push(silent as f64 / 16_000.0);
        }
        Self { chunk_end_sample, silence_before }
    }

    pub fn chunk_index(&self, time: f64, is_end: bool) -> usize {
        let sample = (time * 16_000.0) as usize;
        if is_end && let Some(i) = self.chunk_end_sample.iter().position(|&e| e == sample) {
            return i;
        }
        // bisect_right
        let i = self.chunk_end_sample.partition_point(|&e| e <= sample);
        i.min(self.chunk_end_sample.len().saturating_sub(1))
    }

    pub fn original(&self, time: f64, chunk: Option<usize>, is_end: bool) -> f64 {
        let i = chunk.unwrap_or_else(|| self.chunk_index(time, is_end));
        let t = self.silence_before.get(i).copied().unwrap_or(0.0) + time;
        (t * 100.0).round() / 100.0
    }

    /// Moves a segment (and its words) to original times.
    pub fn restore(&self, seg: &mut Segment) {
        if seg.words.is_empty() {
            seg.start = self.original(seg.start, None, false);
            seg.end = self.original(seg.end, None, true);
            return;
        }
        for w in &mut seg.words {
            let chunk = self.chunk_index((w.start + w.end) / 2.0, false);
            w.start = self.original(w.start, Some(chunk), false);
            w.end = self.original(w.end, Some(chunk), false);
        }
        if let (Some(first), Some(last)) = (seg.words.first(), seg.words.last()) {
            seg.start = first.start;
            seg.end = last.end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(pattern: &[(f32, usize)]) -> Vec<f32> {
        pattern.iter().flat_map(|&(p, n)| std::iter::repeat_n(p, n)).collect()
    }

    #[test]
    fn one_region_padded() {
        // 1 s silence, 2 s speech, 3 s silence (31.25 windows per second).
        let p = probs(&[(0.0, 31), (0.9, 63), (0.0, 94)]);
        let len = p.len() * WINDOW;
        let spans = speech_timestamps(&p, len, &VadParams::default());
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].start, 31 * WINDOW - 6400);
        assert_eq!(spans[0].end, 94 * WINDOW + 6400);
    }

    #[test]
    fn short_pauses_bridge_long_ones_split() {
        let d = VadParams::default();
        // 1 s pause between two speech parts: bridged (min silence 2 s).
        let p = probs(&[(0.9, 40), (0.0, 31), (0.9, 40), (0.0, 100)]);
        assert_eq!(speech_timestamps(&p, p.len() * WINDOW, &d).len(), 1);
        // 3 s pause: two regions, each padded 0.4 s into the gap.
        let p = probs(&[(0.9, 40), (0.0, 94), (0.9, 40), (0.0, 100)]);
        let spans = speech_timestamps(&p, p.len() * WINDOW, &d);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0], Span { start: 0, end: 40 * WINDOW + 6400 });
        assert_eq!(spans[1].start, 134 * WINDOW - 6400);
    }

    #[test]
    fn long_speech_is_split_at_max_duration() {
        let p = VadParams { max_speech_s: 5.0, ..VadParams::default() };
        let probs = probs(&[(0.9, 400)]);
        let spans = speech_timestamps(&probs, probs.len() * WINDOW, &p);
        assert!(spans.len() >= 2, "{spans:?}");
    }

    #[test]
    fn time_map_restores_original_times() {
        let spans = [Span { start: 16_000, end: 32_000 }, Span { start: 64_000, end: 80_000 }];
        let map = TimeMap::new(&spans);
        // 0.5 s into the speech-only signal = 1.5 s in the original.
        assert_eq!(map.original(0.5, None, false), 1.5);
        // 1.5 s = second chunk, after 3 s of silence in total.
        assert_eq!(map.original(1.5, None, false), 4.5);
        // Exactly at the first chunk's end, as an end time, stays in the first chunk.
        assert_eq!(map.original(1.0, None, true), 2.0);
    }
}
