//! Long-form transcription over 30 s windows, following faster-whisper's `generate_segments`:
//! log-mel of the whole input, a window at `seek`, temperature fallback, no-speech skipping,
//! segments cut at timestamp pairs, `seek` moved to the last complete segment (or the last
//! word), the previous text fed back as prompt, optional word timestamps.

use std::io::Write;

use ndarray::{Array2, s};

use super::align::{self, WordTiming};
use super::api::{Segment, Task, TranscribeOptions, Word};
use super::checkpoint::Checkpoint;
use super::logits::LogitRules;
use super::model::{CrossKv, N_FRAMES};
use super::search::{SearchOptions, SearchResult, Searcher};
use super::tokenizer::Tokenizer;

pub const SAMPLE_RATE: usize = 16_000;
const HOP: usize = 160;
const FRAMES_PER_SECOND: f64 = 100.0;
const TIME_PER_FRAME: f64 = HOP as f64 / SAMPLE_RATE as f64;
/// One timestamp token is 20 ms; the encoder halves the frame rate.
const TIME_PRECISION: f64 = 0.02;
const INPUT_STRIDE: usize = 2;
const MAX_LENGTH: usize = 448;
/// faster-whisper's defaults for options the public API does not expose.
const MAX_INITIAL_TIMESTAMP: f64 = 1.0;
const PROMPT_RESET_ON_TEMPERATURE: f32 = 0.5;
const LENGTH_PENALTY: f32 = 1.0;
const PATIENCE: f32 = 1.0;

/// What decoding a window produced, with the numbers the fallback rules look at.
struct WindowResult {
    result: SearchResult,
    avg_logprob: f32,
    temperature: f32,
    compression_ratio: f32,
}

/// A segment before it is numbered and emitted.
struct Pending {
    start: f64,
    end: f64,
    tokens: Vec<u32>,
    words: Vec<Word>,
}

/// gzip-style compression ratio of the text (zlib, level 6, like Python's `zlib.compress`):
/// repetition loops compress well and push it above the threshold.
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    let compressed = enc.write_all(bytes).and_then(|()| enc.finish()).map(|v| v.len()).unwrap_or(1);
    bytes.len() as f32 / compressed.max(1) as f32
}

pub struct Pipeline<'a> {
    pub ckpt: &'a Checkpoint,
    /// The checkpoint's model this request runs on ([`Checkpoint::model_for`]).
    pub model: &'a super::model::WhisperModel,
    pub threads: usize,
}

/// Frames of a fitted window for `content` frames of audio: the audio and a second of padding,
/// but never less than 10 s nor more than 30 s (even: the encoder's stride-2 convolution).
/// Below 10 s tiny.en stops finding the end of speech and repeats itself until the token
/// limit on a quarter of the speech test set (8 s: 4 of 22 clips looped; 10 s: none, same WER
/// as the 30 s window); above it the text matches the full window's on most clips.
fn window_frames(content: usize) -> usize {
    (content + FIT_PADDING_FRAMES).max(FIT_MIN_FRAMES).div_ceil(2).saturating_mul(2).min(N_FRAMES)
}

/// One second at 100 mel frames a second.
const FIT_PADDING_FRAMES: usize = 100;
const FIT_MIN_FRAMES: usize = 1000;
/// Tokens a fitted window may produce: generous for the fastest speech (timestamps included),
/// so that reaching it means the decoder is looping and the full window must decide.
fn fit_token_cap(seconds: f64) -> usize {
    24 + (10.0 * seconds).ceil() as usize
}
/// Whisper's own repetition threshold (its default `compression_ratio_threshold`).
const LOOP_COMPRESSION_RATIO: f32 = 2.4;

/// Whether a fitted window's result must be redone on the full window: it hit the token cap
/// or repeats itself, or the log-probability check would have asked for a fallback (unless the
/// window is silence).
fn doubtful(window: &WindowResult, opts: &TranscribeOptions, cap: usize) -> bool {
    let low_logprob = opts.log_prob_threshold.is_some_and(|t| window.avg_logprob < t);
    let silence = low_logprob && opts.no_speech_threshold.is_some_and(|t| window.result.no_speech_prob > t);
    window.result.best.tokens.len() >= cap
        || window.compression_ratio > opts.compression_ratio_threshold.unwrap_or(LOOP_COMPRESSION_RATIO)
        || (low_logprob && !silence)
}

/// Segments out, in order, as each window finishes; `false` back stops the work.
pub type Emit<'e> = dyn FnMut(Segment) -> bool + 'e;

impl Pipeline<'_> {
    /// Log-mel of the whole input as faster-whisper computes it (160 zero samples appended,
    /// normalised over the whole signal). Returns `[n_mels, frames]` and the content frames.
    pub fn features(&self, audio: &[f32]) -> Result<(Array2<f32>, usize), String> {
        let n_mels = self.model.dims.n_mels;
        let mut padded = Vec::with_capacity(audio.len() + HOP);
        padded.extend_from_slice(audio);
        padded.extend(std::iter::repeat_n(0.0, HOP));
        let (mel, frames) = timbre_audio::log_mel_spectrogram(&padded, n_mels).map_err(|e| e.to_string())?;
        let mel = Array2::from_shape_vec((n_mels, frames), mel).map_err(|e| e.to_string())?;
        Ok((mel, frames.saturating_sub(1)))
    }

    /// Encoder output's keys/values for the window starting at `seek` frames.
    fn encode_window(&self, mel: &Array2<f32>, seek: usize, size: usize, fit: bool) -> Result<CrossKv, String> {
        let n_mels = mel.nrows();
        let take = size.min(N_FRAMES).min(mel.ncols().saturating_sub(seek));
        let frames = if fit { window_frames(take) } else { N_FRAMES };
        let mut window = Array2::<f32>::zeros((n_mels, frames));
        window.slice_mut(s![.., ..take]).assign(&mel.slice(s![.., seek..seek + take]));
        let encoded = self.model.encode(window.view(), self.threads)?;
        Ok(self.model.cross_kv(encoded.view(), self.threads))
    }

    /// `<|startoftranscript|>` and, for multilingual checkpoints, language and task tokens.
    pub fn sot_sequence(&self, language: &str, task: Task) -> Vec<u32> {
        sot_sequence(&self.ckpt.tokenizer, self.ckpt.multilingual, language, task)
    }

    /// Most likely language of a window from the logits at `<|startoftranscript|>`, restricted
    /// to the language tokens, with its probability.
    pub fn detect_language(&self, cross: &CrossKv) -> Result<(String, f32), String> {
        let tok = &self.ckpt.tokenizer;
        let mut cache = self.model.new_cache();
        let (logits, _) = self.model.decode(
            &[vec![tok.special.sot]],
            std::slice::from_mut(&mut cache),
            cross,
            false,
            &[],
            self.threads,
        )?;
        let row = logits.row(0);
        let scores: Vec<f32> = tok.languages.iter().map(|&(_, id)| row[id as usize]).collect();
        pick_language(&tok.languages, &scores).ok_or_else(|| "the vocabulary has no language tokens".into())
    }

    fn generate_with_fallback(
        &self,
        cross: &CrossKv,
        prompt: &[u32],
        sot_index: usize,
        opts: &TranscribeOptions,
        max_length: usize,
    ) -> Result<WindowResult, String> {
        let tok = &self.ckpt.tokenizer;
        let rules = LogitRules {
            eot: tok.special.eot,
            no_timestamps: tok.special.no_timestamps,
            timestamp_begin: tok.special.timestamp_begin,
            timestamp_end: (self.model.dims.n_vocab - 1) as u32,
            suppress: self.ckpt.suppress.clone(),
            suppress_begin: self.ckpt.suppress_begin.clone(),
            max_initial_timestamp: Some((MAX_INITIAL_TIMESTAMP / TIME_PRECISION).round() as u32),
        };
        let searcher = Searcher {
            model: self.model,
            cross,
            rules: &rules,
            no_speech: tok.special.no_speech,
            threads: self.threads,
        };
        let mut all: Vec<WindowResult> = Vec::new();
        let mut below_cr: Vec<usize> = Vec::new();
        let temperatures = if opts.temperatures.is_empty() { vec![0.0] } else { opts.temperatures.clone() };
        let mut last_temperature = 0.0;
        for &temperature in &temperatures {
            last_temperature = temperature;
            let search = SearchOptions {
                beam_size: opts.beam_size.max(1),
                best_of: opts.best_of.max(1),
                temperature,
                patience: PATIENCE,
                length_penalty: LENGTH_PENALTY,
                max_length,
            };
            let result = searcher.run(prompt, sot_index, &search)?;
            let seq_len = result.best.tokens.len() as f32;
            let avg_logprob = result.best.sum_logprob / (seq_len + 1.0);
            let text = tok.decode(&result.best.tokens);
            let ratio = compression_ratio(text.trim());
            let no_speech_prob = result.no_speech_prob;
            all.push(WindowResult { result, avg_logprob, temperature, compression_ratio: ratio });
            let mut needs_fallback = false;
            if let Some(t) = opts.compression_ratio_threshold {
                if ratio > t {
                    needs_fallback = true;
                } else {
                    below_cr.push(all.len() - 1);
                }
            }
            if opts.log_prob_threshold.is_some_and(|t| avg_logprob < t) {
                needs_fallback = true;
            }
            if opts.no_speech_threshold.is_some_and(|t| no_speech_prob > t)
                && opts.log_prob_threshold.is_some_and(|t| avg_logprob < t)
            {
                needs_fallback = false; // silence
            }
            if !needs_fallback {
                return all.pop().ok_or_else(|| "no decoding result".into());
            }
        }
        // Every temperature failed: the best average log-probability among the results that
        // passed the compression check (or among all), reported at the last temperature.
        let pool: Vec<usize> = if below_cr.is_empty() { (0..all.len()).collect() } else { below_cr };
        let best = pool
            .into_iter()
            .max_by(|&a, &b| all[a].avg_logprob.total_cmp(&all[b].avg_logprob))
            .ok_or("no decoding result")?;
        let mut chosen = all.swap_remove(best);
        chosen.temperature = last_temperature;
        Ok(chosen)
    }

    fn prompt(&self, previous: &[u32], sot_sequence: &[u32]) -> (Vec<u32>, usize) {
        let mut prompt = Vec::new();
        if !previous.is_empty() {
            prompt.push(self.ckpt.tokenizer.special.sot_prev);
            let keep = MAX_LENGTH / 2 - 1;
            prompt.extend_from_slice(&previous[previous.len().saturating_sub(keep)..]);
        }
        let sot_index = prompt.len();
        prompt.extend_from_slice(sot_sequence);
        (prompt, sot_index)
    }

    /// Transcribes `audio` (16 kHz mono). `language` is already validated/decided by the
    /// caller or detected here for multilingual models. Each segment is passed to `emit` as it
    /// is finished; the language used is returned.
    pub fn run(&self, audio: &[f32], opts: &TranscribeOptions, emit: &mut Emit<'_>) -> Result<String, String> {
        let tok = &self.ckpt.tokenizer;
        let ts_begin = tok.special.timestamp_begin;
        let (mel, content_frames) = self.features(audio)?;
        let mut language = opts.language.clone().unwrap_or_else(|| "en".to_string());
        let mut seek = 0usize;
        let mut all_tokens: Vec<u32> = Vec::new();
        let mut prompt_reset_since = 0usize;
        if let Some(p) = opts.prompt.as_deref() {
            all_tokens.extend(tok.encode(&format!(" {}", p.trim())));
        }
        let mut last_speech_timestamp = 0.0f64;
        let mut next_id = 0usize;
        let mut detected = opts.language.is_some() || !self.ckpt.multilingual;
        while seek < content_frames {
            let time_offset = seek as f64 * TIME_PER_FRAME;
            let segment_size = (N_FRAMES).min(content_frames - seek);
            let segment_duration = segment_size as f64 * TIME_PER_FRAME;
            let mut cross = self.encode_window(&mel, seek, segment_size, opts.fit_window)?;
            if !detected {
                language = self.detect_language(&cross)?.0;
                detected = true;
            }
            let sot_sequence = self.sot_sequence(&language, opts.task);
            let previous = &all_tokens[prompt_reset_since.min(all_tokens.len())..];
            let (prompt, sot_index) = self.prompt(previous, &sot_sequence);
            let window = if opts.fit_window {
                // First temperature only, a bounded token count; any doubt (a loop, a result the
                // thresholds would reject) goes to the full window with every fallback.
                // The search takes at most min(max_length / 2, max_length - prompt) steps.
                let wanted = fit_token_cap(segment_duration);
                let max_length = (2 * wanted).max(prompt.len() + wanted).min(MAX_LENGTH);
                let cap = wanted.min(max_length / 2).min(max_length.saturating_sub(prompt.len()));
                let first = TranscribeOptions {
                    temperatures: opts.temperatures.iter().take(1).copied().collect(),
                    ..opts.clone()
                };
                let window = self.generate_with_fallback(&cross, &prompt, sot_index, &first, max_length)?;
                if doubtful(&window, opts, cap) {
                    tracing::debug!(
                        tokens = window.result.best.tokens.len(),
                        ratio = window.compression_ratio,
                        "fitted window in doubt: decoding the full 30 s window"
                    );
                    cross = self.encode_window(&mel, seek, segment_size, false)?;
                    self.generate_with_fallback(&cross, &prompt, sot_index, opts, MAX_LENGTH)?
                } else {
                    window
                }
            } else {
                self.generate_with_fallback(&cross, &prompt, sot_index, opts, MAX_LENGTH)?
            };
            if let Some(t) = opts.no_speech_threshold {
                let mut skip = window.result.no_speech_prob > t;
                if opts.log_prob_threshold.is_some_and(|lp| window.avg_logprob > lp) {
                    skip = false;
                }
                if skip {
                    seek += segment_size;
                    continue;
                }
            }
            let tokens = &window.result.best.tokens;
            let previous_seek = seek;
            let (mut current, next_seek, single_timestamp_ending) =
                split_by_timestamps(tokens, ts_begin, time_offset, segment_size, segment_duration, seek);
            seek = next_seek;
            if opts.word_timestamps {
                last_speech_timestamp = self.add_word_timestamps(
                    &mut current,
                    &cross,
                    &sot_sequence,
                    segment_size,
                    previous_seek,
                    last_speech_timestamp,
                )?;
                if !single_timestamp_ending
                    && let Some(end) = last_end(&current)
                    && end > time_offset
                {
                    seek = (end * FRAMES_PER_SECOND).round() as usize;
                }
                if let Some(end) = last_end(&current) {
                    last_speech_timestamp = end;
                }
            }
            for seg in current {
                let text = tok.decode(&seg.tokens);
                if seg.start == seg.end || text.trim().is_empty() {
                    continue;
                }
                all_tokens.extend_from_slice(&seg.tokens);
                let wanted = emit(Segment {
                    id: next_id,
                    seek: previous_seek,
                    start: seg.start,
                    end: seg.end,
                    text,
                    tokens: seg.tokens,
                    temperature: window.temperature,
                    avg_logprob: window.avg_logprob,
                    compression_ratio: window.compression_ratio,
                    no_speech_prob: window.result.no_speech_prob,
                    words: seg.words,
                });
                if !wanted {
                    return Ok(language);
                }
                next_id += 1;
            }
            if !opts.condition_on_previous_text || window.temperature > PROMPT_RESET_ON_TEMPERATURE {
                prompt_reset_since = all_tokens.len();
            }
            // Guard against a window that did not advance (it always does in faster-whisper's
            // rules, but a bug here must not spin forever).
            if seek <= previous_seek {
                seek = previous_seek + segment_size;
            }
        }
        Ok(language)
    }

    /// faster-whisper's `add_word_timestamps` for one window's segments.
    fn add_word_timestamps(
        &self,
        segments: &mut [Pending],
        cross: &CrossKv,
        sot_sequence: &[u32],
        num_frames: usize,
        seek: usize,
        mut last_speech_timestamp: f64,
    ) -> Result<f64, String> {
        let tok = &self.ckpt.tokenizer;
        let eot = tok.special.eot;
        let per_segment: Vec<Vec<u32>> =
            segments.iter().map(|s| s.tokens.iter().copied().filter(|&t| t < eot).collect()).collect();
        let text_tokens: Vec<u32> = per_segment.iter().flatten().copied().collect();
        let mut alignment = self.find_alignment(&text_tokens, cross, sot_sequence, num_frames)?;
        let (median, max_duration) = align::median_and_max(&alignment);
        if !alignment.is_empty() && alignment.iter().any(|w| w.end - w.start != 0.0) {
            align::clamp_sentence_ends(&mut alignment, max_duration);
        }
        align::merge_punctuations(&mut alignment, align::PREPEND_PUNCTUATIONS, align::APPEND_PUNCTUATIONS);
        let time_offset = seek as f64 / FRAMES_PER_SECOND;
        let round2 = |x: f64| (x * 100.0).round() / 100.0;
        let mut word_index = 0;
        for (seg, seg_tokens) in segments.iter_mut().zip(&per_segment) {
            let mut saved = 0;
            let mut words: Vec<Word> = Vec::new();
            while word_index < alignment.len() && saved < seg_tokens.len() {
                let t = &alignment[word_index];
                if !t.word.is_empty() {
                    words.push(Word {
                        word: t.word.clone(),
                        start: round2(time_offset + t.start),
                        end: round2(time_offset + t.end),
                        probability: t.probability,
                    });
                }
                saved += t.tokens.len();
                word_index += 1;
            }
            if let (Some(first), Some(_)) = (words.first().cloned(), words.last()) {
                // A first word long after the previous speech, or too long itself, is clipped.
                if first.end - last_speech_timestamp > median * 4.0
                    && (first.end - first.start > max_duration
                        || (words.len() > 1 && words[1].end - first.start > max_duration * 2.0))
                {
                    if words.len() > 1 && words[1].end - words[1].start > max_duration {
                        let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
                        words[0].end = boundary;
                        words[1].start = boundary;
                    }
                    words[0].start = (words[0].end - max_duration).max(0.0);
                }
                if seg.start < words[0].end && seg.start - 0.5 > words[0].start {
                    words[0].start = (words[0].end - median).min(seg.start).max(0.0);
                } else {
                    seg.start = words[0].start;
                }
                let n = words.len() - 1;
                if seg.end > words[n].start && seg.end + 0.5 < words[n].end {
                    words[n].end = (words[n].start + median).max(seg.end);
                } else {
                    seg.end = words[n].end;
                }
                last_speech_timestamp = seg.end;
            }
            seg.words = words;
        }
        Ok(last_speech_timestamp)
    }

    /// Runs the decoder over `sot_sequence + <|notimestamps|> + text + <|endoftext|>` and
    /// aligns the text tokens to frames.
    fn find_alignment(
        &self,
        text_tokens: &[u32],
        cross: &CrossKv,
        sot_sequence: &[u32],
        num_frames: usize,
    ) -> Result<Vec<WordTiming>, String> {
        if text_tokens.is_empty() {
            return Ok(Vec::new());
        }
        let tok = &self.ckpt.tokenizer;
        let eot = tok.special.eot as usize;
        let mut input = sot_sequence.to_vec();
        input.push(tok.special.no_timestamps);
        input.extend_from_slice(text_tokens);
        input.push(tok.special.eot);
        let offset = sot_sequence.len();
        let mut cache = self.model.new_cache();
        let (logits, heads) = self.model.decode(
            &[input],
            std::slice::from_mut(&mut cache),
            cross,
            true,
            &self.ckpt.alignment_heads,
            self.threads,
        )?;
        // Probability of each text token among text tokens, from the position before it.
        let mut probs = Vec::with_capacity(text_tokens.len());
        for (t, &token) in text_tokens.iter().enumerate() {
            let row = logits.row(offset + t);
            let mut text: Vec<f32> = row.iter().take(eot).copied().collect();
            super::ops::softmax_slice(&mut text);
            probs.push(text.get(token as usize).copied().unwrap_or(0.0));
        }
        let Some(matrix) = align::alignment_matrix(&heads, num_frames) else { return Ok(Vec::new()) };
        let rows = align::text_rows(&matrix, offset, text_tokens.len());
        Ok(align::word_timings(tok, text_tokens, &probs, &rows))
    }
}

/// The decoder's start: `<|startoftranscript|>`, then for multilingual checkpoints the language
/// token and `<|transcribe|>` or `<|translate|>` (English-only checkpoints take neither).
pub fn sot_sequence(tok: &Tokenizer, multilingual: bool, language: &str, task: Task) -> Vec<u32> {
    let mut seq = vec![tok.special.sot];
    if multilingual {
        if let Some(lang) = tok.language_token(language) {
            seq.push(lang);
        }
        seq.push(match task {
            Task::Transcribe => tok.special.transcribe,
            Task::Translate => tok.special.translate,
        });
    }
    seq
}

/// The language with the highest score and its softmax probability.
pub fn pick_language(languages: &[(String, u32)], scores: &[f32]) -> Option<(String, f32)> {
    let mut probs = scores.to_vec();
    super::ops::softmax_slice(&mut probs);
    let (i, p) = probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    Some((languages.get(i)?.0.clone(), *p))
}

fn last_end(segments: &[Pending]) -> Option<f64> {
    segments.iter().rev().flat_map(|s| s.words.iter().rev()).map(|w| w.end).next().or(segments.last().map(|s| s.end))
}

/// faster-whisper's `_split_segments_by_timestamps`: segments between consecutive timestamp
/// pairs; returns them, the next seek, and whether the tokens ended on a single timestamp.
fn split_by_timestamps(
    tokens: &[u32],
    ts_begin: u32,
    time_offset: f64,
    segment_size: usize,
    segment_duration: f64,
    seek: usize,
) -> (Vec<Pending>, usize, bool) {
    let is_ts = |t: u32| t >= ts_begin;
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let consecutive: Vec<usize> = (1..n).filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1])).collect();
    let mut out = Vec::new();
    let mut seek = seek;
    let pos = |t: u32| f64::from(t - ts_begin);
    if !consecutive.is_empty() {
        let mut slices = consecutive;
        if single_timestamp_ending {
            slices.push(n);
        }
        let mut last = 0;
        for &cur in &slices {
            let sliced = &tokens[last..cur];
            if let (Some(&first), Some(&end)) = (sliced.first(), sliced.last()) {
                let start = if is_ts(first) { time_offset + pos(first) * TIME_PRECISION } else { time_offset };
                let end = if is_ts(end) { time_offset + pos(end) * TIME_PRECISION } else { time_offset };
                out.push(Pending { start, end, tokens: sliced.to_vec(), words: Vec::new() });
            }
            last = cur;
        }
        if single_timestamp_ending {
            seek += segment_size;
        } else {
            let last_ts = tokens[last - 1];
            seek += (pos(last_ts) as usize) * INPUT_STRIDE;
        }
    } else {
        let mut duration = segment_duration;
        if let Some(&last) = tokens.iter().rev().find(|&&t| is_ts(t))
            && last != ts_begin
        {
            duration = pos(last) * TIME_PRECISION;
        }
        out.push(Pending {
            start: time_offset,
            end: time_offset + duration,
            tokens: tokens.to_vec(),
            words: Vec::new(),
        });
        seek += segment_size;
    }
    (out, seek, single_timestamp_ending)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::whisper::search::Hypothesis;

    const B: u32 = 100; // timestamp_begin in these tests

    #[test]
    fn fitted_windows_hold_the_audio_a_second_more_and_at_least_ten_seconds() {
        assert_eq!(window_frames(150), 1000, "1.5 s of audio still gets 10 s");
        assert_eq!(window_frames(1250), 1350, "12.5 s + 1 s");
        assert_eq!(window_frames(1251), 1352, "even, for the stride-2 convolution");
        assert_eq!(window_frames(2950), N_FRAMES, "never beyond 30 s");
    }

    fn window(tokens: usize, ratio: f32, avg_logprob: f32, no_speech_prob: f32) -> WindowResult {
        WindowResult {
            result: SearchResult {
                best: Hypothesis { tokens: vec![1; tokens], score: 0.0, sum_logprob: 0.0 },
                no_speech_prob,
            },
            avg_logprob,
            temperature: 0.0,
            compression_ratio: ratio,
        }
    }

    #[test]
    fn a_fitted_window_is_redone_when_it_loops_or_would_fall_back() {
        let opts = TranscribeOptions::default();
        let cap = fit_token_cap(3.0);
        assert!(!doubtful(&window(20, 1.2, -0.3, 0.01), &opts, cap), "an ordinary result stands");
        assert!(doubtful(&window(cap, 1.2, -0.3, 0.01), &opts, cap), "hit the token cap: looping");
        assert!(doubtful(&window(40, 3.1, -0.3, 0.01), &opts, cap), "repeats itself");
        assert!(doubtful(&window(20, 1.2, -1.4, 0.01), &opts, cap), "low confidence");
        assert!(!doubtful(&window(2, 1.0, -1.4, 0.9), &opts, cap), "silence is not redone");
        let no_thresholds = TranscribeOptions { compression_ratio_threshold: None, log_prob_threshold: None, ..opts };
        assert!(doubtful(&window(40, 2.5, -0.3, 0.01), &no_thresholds, cap), "loops are caught without thresholds");
        assert!(!doubtful(&window(20, 1.2, -1.4, 0.01), &no_thresholds, cap));
    }

    #[test]
    fn splits_on_consecutive_timestamps() {
        // <0.00> a b <1.00><1.00> c <2.00>   (single timestamp ending)
        let tokens = [B, 1, 2, B + 50, B + 50, 3, B + 100];
        let (segs, seek, single) = split_by_timestamps(&tokens, B, 10.0, 3000, 30.0, 1000);
        assert!(single);
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].start, segs[0].end), (10.0, 11.0));
        assert_eq!(segs[0].tokens, vec![B, 1, 2, B + 50]);
        assert_eq!((segs[1].start, segs[1].end), (11.0, 12.0));
        assert_eq!(seek, 4000);
        // <0.00> a <1.00><1.00> b   (unfinished segment: seek to the last pair)
        let tokens = [B, 1, B + 50, B + 50, 2];
        let (segs, seek, single) = split_by_timestamps(&tokens, B, 0.0, 3000, 30.0, 0);
        assert!(!single);
        assert_eq!(segs.len(), 1);
        assert_eq!(seek, 100);
    }

    #[test]
    fn one_segment_without_pairs() {
        let tokens = [B, 1, 2, B + 60];
        let (segs, seek, _) = split_by_timestamps(&tokens, B, 5.0, 800, 8.0, 500);
        assert_eq!(segs.len(), 1);
        assert!((segs[0].end - 6.2).abs() < 1e-9);
        assert_eq!(seek, 1300);
    }

    #[test]
    fn compression_ratio_flags_repetition() {
        assert!(compression_ratio(&"the the the the ".repeat(20)) > 2.4);
        assert!(compression_ratio("The quick brown fox jumps over the lazy dog.") < 1.5);
        assert_eq!(compression_ratio(""), 0.0);
    }

    /// A multilingual vocabulary in miniature: three text tokens, then Whisper's specials.
    fn multilingual_tokenizer() -> Tokenizer {
        let json = serde_json::json!({
            "model": {"vocab": {"a": 0, "b": 1, "Ġ": 2}, "merges": []},
            "added_tokens": [
                {"id": 3, "content": "<|endoftext|>"}, {"id": 4, "content": "<|startoftranscript|>"},
                {"id": 5, "content": "<|en|>"}, {"id": 6, "content": "<|de|>"}, {"id": 7, "content": "<|fr|>"},
                {"id": 8, "content": "<|translate|>"}, {"id": 9, "content": "<|transcribe|>"},
                {"id": 10, "content": "<|startoflm|>"}, {"id": 11, "content": "<|startofprev|>"},
                {"id": 12, "content": "<|nospeech|>"}, {"id": 13, "content": "<|notimestamps|>"}
            ]
        });
        Tokenizer::from_json(&json.to_string()).unwrap()
    }

    #[test]
    fn sot_sequences_for_tasks_and_languages() {
        let tok = multilingual_tokenizer();
        assert_eq!(tok.languages.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), vec!["en", "de", "fr"]);
        assert_eq!(tok.special.timestamp_begin, 14);
        assert_eq!(sot_sequence(&tok, true, "de", Task::Transcribe), vec![4, 6, 9]);
        assert_eq!(sot_sequence(&tok, true, "fr", Task::Translate), vec![4, 7, 8]);
        // English-only checkpoints: the start token alone, whatever is asked.
        assert_eq!(sot_sequence(&tok, false, "en", Task::Transcribe), vec![4]);
    }

    #[test]
    fn language_pick() {
        let langs = vec![("en".to_string(), 1), ("de".to_string(), 2), ("fr".to_string(), 3)];
        let (code, p) = pick_language(&langs, &[0.0, 2.0, 0.0]).unwrap();
        assert_eq!(code, "de");
        assert!((p - 0.7870).abs() < 1e-3);
    }
}
