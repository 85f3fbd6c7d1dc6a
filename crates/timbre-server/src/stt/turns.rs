//! Turn detection for live speech: Silero VAD probabilities per 32 ms chunk in, utterance
//! boundaries out, with OpenAI's server-VAD parameters (`threshold`, `prefix_padding_ms`,
//! `silence_duration_ms`). Pure: the caller runs the VAD model and feeds the results in, so
//! every rule here is tested with made-up probabilities.

use std::collections::VecDeque;

/// Samples per VAD decision (32 ms at 16 kHz), Silero's window.
pub const CHUNK: usize = timbre_engines::vad::CHUNK;
pub const RATE: usize = 16_000;

pub fn seconds(samples: usize) -> f64 {
    samples as f64 / RATE as f64
}

fn samples_of_ms(ms: u32) -> usize {
    ms as usize * RATE / 1000
}

/// Server-VAD settings, OpenAI's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TurnConfig {
    /// Speech starts when a chunk's probability reaches this.
    pub threshold: f32,
    /// Audio kept from before the detected start, so the first syllable is not clipped.
    pub prefix_padding_ms: u32,
    /// Silence that ends an utterance.
    pub silence_duration_ms: u32,
    /// Silence after which a speculative final decode starts (min'd with `silence_duration_ms`):
    /// the decode then overlaps the wait, so the final follows the end of the silence closely.
    pub speculate_after_ms: u32,
    /// Longest utterance; longer speech is cut here (Whisper reads 30 s windows).
    pub max_utterance_ms: u32,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            speculate_after_ms: 64,
            max_utterance_ms: 28_000,
        }
    }
}

impl TurnConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.threshold) || !self.threshold.is_finite() {
            return Err(("threshold", "must be between 0 and 1".into()));
        }
        if self.prefix_padding_ms > 5_000 {
            return Err(("prefix_padding_ms", "must be at most 5000".into()));
        }
        if !(32..=10_000).contains(&self.silence_duration_ms) {
            return Err(("silence_duration_ms", "must be between 32 and 10000".into()));
        }
        Ok(())
    }

    /// Once speaking, a chunk counts as silence only below this (Silero's hysteresis: a
    /// wavering probability near the threshold does not end the utterance).
    fn off_threshold(&self) -> f32 {
        (self.threshold - 0.15).max(0.01)
    }
}

/// What one chunk changed. Positions are samples since the stream began.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    /// `start`: the first speech chunk; `padded_start`: where the utterance audio begins.
    Started { start: usize, padded_start: usize },
    /// Silence for `speculate_after_ms`: the utterance may be over (`audio` so far).
    Paused { audio: Vec<f32> },
    /// Speech again after a pause.
    Resumed,
    /// The utterance is over: `end` is the end of the last speech chunk, `stop` where the
    /// silence (or the cut) ended; `audio` runs from `padded_start` to `stop`.
    Stopped { start: usize, padded_start: usize, end: usize, stop: usize, audio: Vec<f32> },
}

struct Active {
    start: usize,
    padded_start: usize,
    audio: Vec<f32>,
    last_voice_end: usize,
    silence: usize,
    paused: bool,
}

pub struct TurnDetector {
    config: TurnConfig,
    consumed: usize,
    /// The last `prefix_padding_ms` of audio while nobody speaks.
    history: VecDeque<f32>,
    active: Option<Active>,
}

impl TurnDetector {
    pub fn new(config: TurnConfig) -> Self {
        Self::starting_at(config, 0)
    }

    /// A detector whose clock starts at `position` (settings changed mid-stream).
    pub fn starting_at(config: TurnConfig, position: usize) -> Self {
        Self { config, consumed: position, history: VecDeque::new(), active: None }
    }

    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// Samples seen so far (the stream clock).
    pub fn position(&self) -> usize {
        self.consumed
    }

    pub fn speaking(&self) -> bool {
        self.active.is_some()
    }

    /// The current utterance: (speech start, padded start, audio so far).
    pub fn current(&self) -> Option<(usize, usize, &[f32])> {
        self.active.as_ref().map(|a| (a.start, a.padded_start, a.audio.as_slice()))
    }

    /// One chunk (any length; normally [`CHUNK`]) and its speech probability.
    pub fn push(&mut self, chunk: &[f32], probability: f32) -> Vec<Turn> {
        let pos = self.consumed;
        self.consumed += chunk.len();
        let mut out = Vec::new();
        let Some(active) = self.active.as_mut() else {
            if probability >= self.config.threshold {
                let mut audio: Vec<f32> = self.history.drain(..).collect();
                let padded_start = pos - audio.len();
                audio.extend_from_slice(chunk);
                self.active = Some(Active {
                    start: pos,
                    padded_start,
                    audio,
                    last_voice_end: self.consumed,
                    silence: 0,
                    paused: false,
                });
                out.push(Turn::Started { start: pos, padded_start });
            } else {
                self.history.extend(chunk);
                let keep = samples_of_ms(self.config.prefix_padding_ms);
                while self.history.len() > keep {
                    self.history.pop_front();
                }
            }
            return out;
        };
        active.audio.extend_from_slice(chunk);
        if probability >= self.config.off_threshold() {
            active.silence = 0;
            active.last_voice_end = self.consumed;
            if active.paused {
                active.paused = false;
                out.push(Turn::Resumed);
            }
        } else {
            active.silence += chunk.len();
        }
        let speculate = self.config.speculate_after_ms.min(self.config.silence_duration_ms);
        if !active.paused && active.silence > 0 && active.silence >= samples_of_ms(speculate) {
            active.paused = true;
            out.push(Turn::Paused { audio: active.audio.clone() });
        }
        let too_long = active.audio.len() >= samples_of_ms(self.config.max_utterance_ms);
        if active.silence >= samples_of_ms(self.config.silence_duration_ms) || too_long {
            if too_long && active.silence == 0 {
                active.last_voice_end = self.consumed;
            }
            out.extend(self.stop());
        }
        out
    }

    /// End the current utterance now (end of stream, a manual commit).
    pub fn stop(&mut self) -> Option<Turn> {
        let a = self.active.take()?;
        let keep = samples_of_ms(self.config.prefix_padding_ms).min(a.silence);
        self.history = a.audio[a.audio.len() - keep..].iter().copied().collect();
        Some(Turn::Stopped {
            start: a.start,
            padded_start: a.padded_start,
            end: a.last_voice_end,
            stop: self.consumed,
            audio: a.audio,
        })
    }

    /// Forget everything not yet stopped (`input_audio_buffer.clear`); the clock keeps running.
    pub fn clear(&mut self) {
        self.active = None;
        self.history.clear();
    }
}

/// Cuts a stream of samples into whole VAD chunks.
#[derive(Default)]
pub struct Chunker {
    pending: Vec<f32>,
}

impl Chunker {
    /// Whole chunks now available (possibly none); the rest waits for more audio.
    pub fn push(&mut self, samples: &[f32]) -> Vec<f32> {
        self.pending.extend_from_slice(samples);
        let whole = self.pending.len() / CHUNK * CHUNK;
        let rest = self.pending.split_off(whole);
        std::mem::replace(&mut self.pending, rest)
    }

    /// The tail, padded with silence to a whole chunk (end of stream).
    pub fn finish(&mut self) -> Vec<f32> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let mut tail = std::mem::take(&mut self.pending);
        tail.resize(CHUNK, 0.0);
        tail
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feed a probability per chunk; the chunk's samples carry its index so audio can be traced.
    fn feed(d: &mut TurnDetector, probs: &[f32]) -> Vec<(usize, Turn)> {
        let mut out = Vec::new();
        for &p in probs {
            let index = d.position() / CHUNK;
            let chunk = vec![index as f32; CHUNK];
            out.extend(d.push(&chunk, p).into_iter().map(|t| (index, t)));
        }
        out
    }

    fn config(prefix_ms: u32, silence_ms: u32) -> TurnConfig {
        TurnConfig {
            prefix_padding_ms: prefix_ms,
            silence_duration_ms: silence_ms,
            speculate_after_ms: 96,
            ..TurnConfig::default()
        }
    }

    #[test]
    fn an_utterance_starts_with_padding_and_stops_after_the_silence() {
        // 64 ms padding = 2 chunks; 160 ms silence = 5 chunks; speculation after 96 ms = 3 chunks.
        let mut d = TurnDetector::new(config(64, 160));
        let mut probs = vec![0.1; 4];
        probs.extend([0.9, 0.8, 0.4, 0.7]); // 0.4 is above the off threshold (0.35): still speech
        probs.extend([0.1; 6]);
        let turns = feed(&mut d, &probs);
        assert_eq!(turns[0], (4, Turn::Started { start: 4 * CHUNK, padded_start: 2 * CHUNK }));
        let (at, Turn::Paused { audio }) = &turns[1] else { panic!("{:?}", turns[1]) };
        assert_eq!(*at, 10, "three silent chunks (8, 9, 10)");
        assert_eq!(audio.len(), 9 * CHUNK, "chunks 2..=10");
        let (at, Turn::Stopped { start, padded_start, end, stop, audio }) = &turns[2] else { panic!() };
        assert_eq!(*at, 12, "five silent chunks end it");
        assert_eq!((*start, *padded_start, *end, *stop), (4 * CHUNK, 2 * CHUNK, 8 * CHUNK, 13 * CHUNK));
        assert_eq!(audio.len(), 11 * CHUNK);
        assert_eq!((audio[0], audio[audio.len() - 1]), (2.0, 12.0), "padding chunk 2 through chunk 12");
        assert_eq!(turns.len(), 3);
        assert!(!d.speaking());
    }

    #[test]
    fn speech_during_the_pause_resumes_the_utterance() {
        let mut d = TurnDetector::new(config(0, 160));
        let turns = feed(&mut d, &[0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]);
        let kinds: Vec<&str> = turns
            .iter()
            .map(|(_, t)| match t {
                Turn::Started { .. } => "started",
                Turn::Paused { .. } => "paused",
                Turn::Resumed => "resumed",
                Turn::Stopped { .. } => "stopped",
            })
            .collect();
        assert_eq!(kinds, ["started", "paused", "resumed", "paused", "stopped"]);
        let Turn::Stopped { start, end, padded_start, .. } = &turns[4].1 else { panic!() };
        assert_eq!((*start, *padded_start, *end), (0, 0, 5 * CHUNK), "one utterance, no padding before 0");
    }

    #[test]
    fn long_speech_is_cut_and_padding_comes_from_the_previous_silence() {
        let mut d = TurnDetector::new(TurnConfig { max_utterance_ms: 320, ..config(64, 500) });
        let turns = feed(&mut d, &[0.9; 12]);
        let stops: Vec<(usize, usize)> = turns
            .iter()
            .filter_map(|(_, t)| if let Turn::Stopped { start, end, .. } = t { Some((*start, *end)) } else { None })
            .collect();
        assert_eq!(stops, vec![(0, 10 * CHUNK)], "cut at 10 chunks (320 ms), end = the cut");
        assert!(d.speaking(), "chunks 10 and 11 start the next utterance");
        assert_eq!(d.current().unwrap().0, 10 * CHUNK);
        assert_eq!(d.current().unwrap().1, 10 * CHUNK, "no silence before it: no padding");
    }

    #[test]
    fn stop_and_clear() {
        let mut d = TurnDetector::new(config(0, 500));
        assert!(d.stop().is_none());
        feed(&mut d, &[0.1, 0.9, 0.9]);
        let Some(Turn::Stopped { start, end, stop, .. }) = d.stop() else { panic!() };
        assert_eq!((start, end, stop), (CHUNK, 3 * CHUNK, 3 * CHUNK));
        feed(&mut d, &[0.9]);
        d.clear();
        assert!(!d.speaking());
        assert_eq!(d.position(), 4 * CHUNK, "the clock keeps running");
        assert!(config(0, 5).validate().is_err());
        assert_eq!(TurnConfig { threshold: 1.5, ..TurnConfig::default() }.validate().unwrap_err().0, "threshold");
    }

    #[test]
    fn chunker_cuts_whole_chunks_and_pads_the_tail() {
        let mut c = Chunker::default();
        assert!(c.push(&[0.5; 500]).is_empty());
        assert_eq!(c.push(&[0.5; 600]).len(), 2 * CHUNK);
        let tail = c.finish();
        assert_eq!(tail.len(), CHUNK);
        assert_eq!((tail[75], tail[76]), (0.5, 0.0), "76 real samples, then silence");
        assert!(c.finish().is_empty());
    }
}
