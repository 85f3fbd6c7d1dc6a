//! Live dictation, the part both streaming protocols share: utterances from the turn detector
//! (or from manual commits), partial re-decodes of the utterance in progress, and finals — as
//! plain events, with the transcription jobs they need asked for rather than run. The protocol
//! modules turn the events into their own messages; the socket driver runs the jobs.
//!
//! Finals are decoded speculatively: when the speaker pauses (`speculate_after_ms`), the
//! utterance so far is sent to the engine at once. If the pause becomes the end of the
//! utterance, that result is the final (nothing but silence followed), so the final arrives
//! about when the silence is confirmed instead of one decode later. If speech resumes, the
//! result serves as a partial.

use std::collections::BTreeMap;

use timbre_engines::whisper::api::{TranscribeOptions, Transcript};

use super::turns::{RATE, Turn, TurnConfig, TurnDetector, seconds};

/// Why a job failed, for the client (`code` is machine-readable).
#[derive(Clone, Debug, PartialEq)]
pub struct JobError {
    pub code: &'static str,
    pub message: String,
}

/// A transcription the driver must run; its result comes back through
/// [`Dictation::on_result`] with the same `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: u64,
    pub audio: Vec<f32>,
    pub options: TranscribeOptions,
}

/// A finished utterance's place in the stream (seconds since the stream began).
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    pub id: u64,
    /// First speech (VAD), or the start of the committed buffer.
    pub start: f64,
    /// End of the last speech chunk.
    pub end: f64,
    /// Where the utterance's audio begins (start minus the prefix padding).
    pub padded_start: f64,
    /// Where its audio ends (after the silence that ended it).
    pub stop: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Started {
        utterance: u64,
        start: f64,
        padded_start: f64,
    },
    /// The utterance's audio is complete; `detected`: by the VAD (not a commit or end of stream).
    Stopped {
        utterance: Utterance,
        detected: bool,
    },
    Transcribe(Job),
    Partial {
        utterance: u64,
        text: String,
    },
    /// Times in `transcript` (segments, words) are absolute stream times.
    Final {
        utterance: Utterance,
        transcript: Transcript,
    },
    Failed {
        utterance: Utterance,
        error: JobError,
    },
}

#[derive(Clone, Debug)]
pub struct DictationConfig {
    /// `None`: no turn detection; audio accumulates until [`Dictation::commit`].
    pub turns: Option<TurnConfig>,
    /// Re-decode the utterance in progress after this much new audio (`None`: no partials).
    pub partial_every_ms: Option<u32>,
    pub partial_options: TranscribeOptions,
    pub final_options: TranscribeOptions,
}

/// The shortest buffer a commit accepts (OpenAI's rule: 100 ms).
pub const MIN_COMMIT_SAMPLES: usize = RATE / 10;

enum JobKind {
    Partial { utterance: u64 },
    Speculative { utterance: u64 },
    Final { utterance: Utterance },
}

struct Current {
    id: u64,
    last_partial_at: usize,
    partial_text: String,
    partials_in_flight: usize,
    speculative: Option<u64>,
    speculative_result: Option<Result<Transcript, JobError>>,
}

pub struct Dictation {
    config: DictationConfig,
    detector: Option<TurnDetector>,
    /// Manual mode: audio since the last commit, and where it began.
    buffer: Vec<f32>,
    buffer_start: usize,
    clock: usize,
    current: Option<Current>,
    jobs: BTreeMap<u64, JobKind>,
    next_job: u64,
    next_utterance: u64,
    /// The last utterance whose final (or failure) went out: later partials of it are stale.
    last_final: Option<u64>,
}

/// `t` with every time moved by `offset` seconds.
fn shifted(mut t: Transcript, offset: f64) -> Transcript {
    for s in &mut t.segments {
        s.start += offset;
        s.end += offset;
        for w in &mut s.words {
            w.start += offset;
            w.end += offset;
        }
    }
    t
}

impl Dictation {
    pub fn new(config: DictationConfig) -> Self {
        Self {
            detector: config.turns.map(TurnDetector::new),
            config,
            buffer: Vec::new(),
            buffer_start: 0,
            clock: 0,
            current: None,
            jobs: BTreeMap::new(),
            next_job: 0,
            next_utterance: 0,
            last_final: None,
        }
    }

    /// Change settings mid-stream. Changing turn detection drops audio not yet committed;
    /// transcriptions already running still report.
    pub fn reconfigure(&mut self, config: DictationConfig) {
        if config.turns != self.config.turns {
            let clock = self.position();
            self.detector = config.turns.map(|t| TurnDetector::starting_at(t, clock));
            self.current = None;
            self.buffer.clear();
            self.clock = clock;
            self.buffer_start = clock;
        }
        self.config = config;
    }

    pub fn uses_vad(&self) -> bool {
        self.detector.is_some()
    }

    /// Samples seen since the stream began.
    pub fn position(&self) -> usize {
        self.detector.as_ref().map_or(self.clock, TurnDetector::position)
    }

    /// Transcriptions asked for and not yet reported.
    pub fn outstanding(&self) -> usize {
        self.jobs.len()
    }

    fn job(&mut self, kind: JobKind, audio: Vec<f32>, options: TranscribeOptions) -> Event {
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(id, kind);
        Event::Transcribe(Job { id, audio, options })
    }

    /// Manual mode: append audio to the buffer a commit will transcribe.
    pub fn append(&mut self, samples: &[f32]) {
        if self.buffer.is_empty() {
            self.buffer_start = self.clock;
        }
        self.buffer.extend_from_slice(samples);
        self.clock += samples.len();
    }

    /// VAD mode: whole chunks and one speech probability per chunk.
    pub fn push(&mut self, samples: &[f32], probabilities: &[f32]) -> Vec<Event> {
        let mut out = Vec::new();
        let Some(chunk) = self.detector.as_ref().map(|_| super::turns::CHUNK) else {
            self.append(samples);
            return out;
        };
        for (piece, &p) in samples.chunks(chunk).zip(probabilities) {
            let turns = self.detector.as_mut().map(|d| d.push(piece, p)).unwrap_or_default();
            for turn in turns {
                self.on_turn(turn, &mut out);
            }
            self.maybe_partial(&mut out);
        }
        out
    }

    fn on_turn(&mut self, turn: Turn, out: &mut Vec<Event>) {
        match turn {
            Turn::Started { start, padded_start } => {
                let id = self.next_utterance;
                self.next_utterance += 1;
                self.current = Some(Current {
                    id,
                    last_partial_at: start,
                    partial_text: String::new(),
                    partials_in_flight: 0,
                    speculative: None,
                    speculative_result: None,
                });
                out.push(Event::Started { utterance: id, start: seconds(start), padded_start: seconds(padded_start) });
            }
            Turn::Paused { audio } => {
                let Some(id) = self.current.as_ref().filter(|c| c.speculative.is_none()).map(|c| c.id) else { return };
                let options = self.config.final_options.clone();
                let event = self.job(JobKind::Speculative { utterance: id }, audio, options);
                if let (Some(c), Event::Transcribe(job)) = (self.current.as_mut(), &event) {
                    c.speculative = Some(job.id);
                }
                out.push(event);
            }
            Turn::Resumed => {
                if let Some(c) = self.current.as_mut() {
                    c.speculative_result = None;
                    if let Some(job) = c.speculative.take() {
                        // Its result is still news about this utterance: show it as a partial.
                        self.jobs.insert(job, JobKind::Partial { utterance: c.id });
                        c.partials_in_flight += 1;
                    }
                }
            }
            Turn::Stopped { start, padded_start, end, stop, audio } => {
                self.finish_utterance(start, padded_start, end, stop, audio, true, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_utterance(
        &mut self,
        start: usize,
        padded_start: usize,
        end: usize,
        stop: usize,
        audio: Vec<f32>,
        detected: bool,
        out: &mut Vec<Event>,
    ) {
        let current = self.current.take();
        let id = current.as_ref().map(|c| c.id).unwrap_or_else(|| {
            let id = self.next_utterance;
            self.next_utterance += 1;
            id
        });
        let utterance = Utterance {
            id,
            start: seconds(start),
            end: seconds(end),
            padded_start: seconds(padded_start),
            stop: seconds(stop),
        };
        out.push(Event::Stopped { utterance: utterance.clone(), detected });
        match current.and_then(|c| c.speculative.map(|job| (job, c.speculative_result))) {
            // The speculative decode saw everything but trailing silence: it is the final.
            Some((_, Some(result))) => out.push(self.final_event(utterance, result)),
            Some((job, None)) => {
                self.jobs.insert(job, JobKind::Final { utterance });
            }
            None => {
                let options = self.config.final_options.clone();
                out.push(self.job(JobKind::Final { utterance }, audio, options));
            }
        }
    }

    fn final_event(&mut self, utterance: Utterance, result: Result<Transcript, JobError>) -> Event {
        self.last_final = Some(utterance.id);
        match result {
            Ok(t) => {
                let transcript = shifted(t, utterance.padded_start);
                Event::Final { utterance, transcript }
            }
            Err(error) => Event::Failed { utterance, error },
        }
    }

    fn maybe_partial(&mut self, out: &mut Vec<Event>) {
        let Some(every) = self.config.partial_every_ms else { return };
        let every = every as usize * RATE / 1000;
        let position = self.position();
        let Some(c) = self.current.as_ref() else { return };
        if c.partials_in_flight > 0 || c.speculative.is_some() || position < c.last_partial_at + every {
            return;
        }
        let Some(audio) = self.detector.as_ref().and_then(|d| d.current()).map(|(_, _, a)| a.to_vec()) else {
            return;
        };
        let id = c.id;
        let options = self.config.partial_options.clone();
        out.push(self.job(JobKind::Partial { utterance: id }, audio, options));
        if let Some(c) = self.current.as_mut() {
            c.last_partial_at = position;
            c.partials_in_flight += 1;
        }
    }

    /// A job's result.
    pub fn on_result(&mut self, job: u64, result: Result<Transcript, JobError>) -> Vec<Event> {
        let mut out = Vec::new();
        match self.jobs.remove(&job) {
            None => {}
            Some(JobKind::Partial { utterance }) => {
                // A failed partial is not worth a message: the final will be tried anyway.
                let text = result.map(|t| t.text.trim().to_string()).unwrap_or_default();
                if let Some(c) = self.current.as_mut().filter(|c| c.id == utterance) {
                    c.partials_in_flight = c.partials_in_flight.saturating_sub(1);
                    if !text.is_empty() && text != c.partial_text {
                        c.partial_text.clone_from(&text);
                        out.push(Event::Partial { utterance, text });
                    }
                } else if !text.is_empty() && self.last_final.is_none_or(|f| f < utterance) {
                    // The speaker stopped while this decode ran (a slow machine), but the final
                    // is not out yet: the partial still comes first, and shows progress.
                    out.push(Event::Partial { utterance, text });
                }
            }
            Some(JobKind::Speculative { utterance }) => {
                if let Some(c) = self.current.as_mut().filter(|c| c.id == utterance && c.speculative == Some(job)) {
                    c.speculative_result = Some(result);
                }
            }
            Some(JobKind::Final { utterance }) => out.push(self.final_event(utterance, result)),
        }
        out
    }

    /// End the utterance now: a manual commit, or the end of the stream. `Err(samples)` when
    /// there is less than [`MIN_COMMIT_SAMPLES`] of audio to commit.
    pub fn commit(&mut self) -> Result<Vec<Event>, usize> {
        let mut out = Vec::new();
        if let Some(detector) = self.detector.as_mut() {
            let Some(Turn::Stopped { start, padded_start, end, stop, audio }) = detector.stop() else {
                return Err(0);
            };
            self.finish_utterance(start, padded_start, end, stop, audio, false, &mut out);
            return Ok(out);
        }
        if self.buffer.len() < MIN_COMMIT_SAMPLES {
            return Err(self.buffer.len());
        }
        let audio = std::mem::take(&mut self.buffer);
        let start = self.buffer_start;
        let stop = start + audio.len();
        self.finish_utterance(start, start, stop, stop, audio, false, &mut out);
        Ok(out)
    }

    /// Forget audio not yet committed.
    pub fn clear(&mut self) {
        self.buffer.clear();
        if let Some(c) = self.current.take() {
            // Its partials and speculation report nothing now.
            self.jobs.retain(|_, kind| {
                !matches!(kind, JobKind::Partial { utterance } | JobKind::Speculative { utterance } if *utterance == c.id)
            });
        }
        if let Some(d) = self.detector.as_mut() {
            d.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use timbre_engines::whisper::api::{Segment, Word};

    use super::super::turns::CHUNK;
    use super::*;

    fn config(turns: Option<TurnConfig>, partial_every_ms: Option<u32>) -> DictationConfig {
        let final_options = TranscribeOptions { word_timestamps: true, ..TranscribeOptions::default() };
        DictationConfig { turns, partial_every_ms, partial_options: TranscribeOptions::default(), final_options }
    }

    fn turns(silence_ms: u32) -> TurnConfig {
        TurnConfig {
            prefix_padding_ms: 64,
            silence_duration_ms: silence_ms,
            speculate_after_ms: 96,
            ..TurnConfig::default()
        }
    }

    fn decoded(text: &str) -> Transcript {
        let word = Word { start: 0.1, end: 0.4, word: format!(" {text}"), probability: 0.9 };
        Transcript {
            text: format!(" {text}"),
            language: "en".into(),
            duration: 1.0,
            segments: vec![Segment {
                id: 0,
                seek: 0,
                start: 0.0,
                end: 0.5,
                text: format!(" {text}"),
                tokens: vec![],
                temperature: 0.0,
                avg_logprob: -0.1,
                compression_ratio: 1.0,
                no_speech_prob: 0.0,
                words: vec![word],
            }],
        }
    }

    /// Feed one chunk per probability; return the events.
    fn feed(d: &mut Dictation, probs: &[f32]) -> Vec<Event> {
        probs.iter().flat_map(|&p| d.push(&vec![p; CHUNK], &[p])).collect()
    }

    fn jobs(events: &[Event]) -> Vec<&Job> {
        events.iter().filter_map(|e| if let Event::Transcribe(j) = e { Some(j) } else { None }).collect()
    }

    #[test]
    fn partials_every_interval_one_at_a_time() {
        let mut d = Dictation::new(config(Some(turns(500)), Some(96)));
        let events = feed(&mut d, &[0.1, 0.1, 0.9, 0.9]);
        assert!(
            matches!(events[0], Event::Started { utterance: 0, start, padded_start } if start == seconds(2 * CHUNK) && padded_start == 0.0)
        );
        assert!(jobs(&events).is_empty(), "two chunks (64 ms) of speech: too early");
        let events = feed(&mut d, &[0.9]);
        let partial = jobs(&events)[0].clone();
        assert_eq!(partial.audio.len(), 5 * CHUNK, "padding + speech so far");
        assert!(jobs(&feed(&mut d, &[0.9; 6])).is_empty(), "no second partial while one is in flight");
        let shown = d.on_result(partial.id, Ok(decoded("hello")));
        assert_eq!(shown, vec![Event::Partial { utterance: 0, text: "hello".into() }]);
        let next = feed(&mut d, &[0.9]);
        assert_eq!(jobs(&next).len(), 1, "the next partial as soon as the last returned");
        assert!(d.on_result(jobs(&next)[0].id, Ok(decoded("hello"))).is_empty(), "same text is not resent");
    }

    #[test]
    fn a_partial_that_returns_after_the_end_of_speech_still_precedes_the_final() {
        let mut d = Dictation::new(config(Some(turns(64)), Some(64)));
        let events = feed(&mut d, &[0.9, 0.9, 0.9]);
        let partial = jobs(&events)[0].clone();
        let events = feed(&mut d, &[0.1, 0.1]);
        let last = jobs(&events).last().map(|j| j.id).unwrap();
        assert!(matches!(
            events.iter().rev().find(|e| !matches!(e, Event::Transcribe(_))),
            Some(Event::Stopped { .. })
        ));
        assert_eq!(
            d.on_result(partial.id, Ok(decoded("so far"))),
            vec![Event::Partial { utterance: 0, text: "so far".into() }]
        );
        assert!(matches!(d.on_result(last, Ok(decoded("all of it")))[0], Event::Final { .. }));
        // After the final, nothing about utterance 0 is news.
        let mut d2 = Dictation::new(config(Some(turns(64)), Some(64)));
        let p = jobs(&feed(&mut d2, &[0.9, 0.9, 0.9]))[0].clone();
        d2.clear();
        assert!(d2.on_result(p.id, Ok(decoded("gone"))).is_empty(), "cleared audio reports nothing");
    }

    #[test]
    fn the_speculative_decode_becomes_the_final() {
        // Silence ends the utterance after 5 chunks; speculation starts after 3.
        let mut d = Dictation::new(config(Some(turns(160)), None));
        feed(&mut d, &[0.1, 0.1, 0.9, 0.9]);
        let events = feed(&mut d, &[0.1, 0.1, 0.1]);
        let spec = jobs(&events)[0].clone();
        assert_eq!(spec.audio.len(), 7 * CHUNK);
        assert!(spec.options.word_timestamps, "decoded with the final's options");
        // Its result comes before the silence is confirmed: held back…
        assert!(d.on_result(spec.id, Ok(decoded("hi"))).is_empty());
        // …and sent the moment it is.
        let events = feed(&mut d, &[0.1, 0.1]);
        assert!(jobs(&events).is_empty(), "no second decode");
        let Event::Stopped { utterance, detected: true } = &events[0] else { panic!("{events:?}") };
        assert_eq!((utterance.start, utterance.end), (seconds(2 * CHUNK), seconds(4 * CHUNK)));
        let Event::Final { transcript, .. } = &events[1] else { panic!("{events:?}") };
        let word = &transcript.segments[0].words[0];
        assert!((word.start - (0.1 + 0.0)).abs() < 1e-9, "padded start is 0 here");
        assert_eq!(d.outstanding(), 0);

        // Second utterance: the final job is still running when the silence is confirmed.
        let events = feed(&mut d, &[0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]);
        let spec = jobs(&events)[0].clone();
        assert!(matches!(events.last(), Some(Event::Stopped { .. })));
        let events = d.on_result(spec.id, Ok(decoded("there")));
        let Event::Final { utterance, transcript } = &events[0] else { panic!("{events:?}") };
        assert_eq!(utterance.id, 1);
        let padded = utterance.padded_start;
        assert!(padded > 0.0);
        assert!((transcript.segments[0].words[0].start - (padded + 0.1)).abs() < 1e-9, "absolute times");
    }

    #[test]
    fn speech_after_the_pause_turns_the_speculation_into_a_partial() {
        let mut d = Dictation::new(config(Some(turns(160)), None));
        feed(&mut d, &[0.9, 0.9]);
        let spec = jobs(&feed(&mut d, &[0.1, 0.1, 0.1]))[0].clone();
        feed(&mut d, &[0.9]);
        let shown = d.on_result(spec.id, Ok(decoded("so far")));
        assert_eq!(shown, vec![Event::Partial { utterance: 0, text: "so far".into() }]);
        let events = feed(&mut d, &[0.1, 0.1, 0.1, 0.1, 0.1]);
        let finals = jobs(&events);
        assert_eq!(finals.len(), 1, "a fresh speculative decode of the whole utterance");
        assert_eq!(finals[0].audio.len(), 9 * CHUNK);
        let failed = d.on_result(finals[0].id, Err(JobError { code: "overloaded", message: "busy".into() }));
        assert!(matches!(&failed[0], Event::Failed { error, .. } if error.code == "overloaded"));
    }

    #[test]
    fn manual_commits_and_clear() {
        let mut d = Dictation::new(config(None, None));
        d.append(&[0.2; 800]);
        assert_eq!(d.commit().unwrap_err(), 800, "under 100 ms");
        d.append(&[0.2; 1600]);
        let events = d.commit().unwrap();
        let Event::Stopped { utterance, detected: false } = &events[0] else { panic!() };
        assert_eq!((utterance.start, utterance.stop), (0.0, 2400.0 / 16_000.0));
        assert_eq!(jobs(&events)[0].audio.len(), 2400);
        d.append(&[0.2; 3200]);
        d.clear();
        assert_eq!(d.commit().unwrap_err(), 0);
        d.append(&[0.2; 1600]);
        let Event::Stopped { utterance, .. } = &d.commit().unwrap()[0] else { panic!() };
        assert_eq!(utterance.start, 5600.0 / 16_000.0, "the clock counts cleared audio");

        let mut v = Dictation::new(config(Some(turns(500)), None));
        assert_eq!(v.commit().unwrap_err(), 0, "nobody speaking: nothing to commit");
        feed(&mut v, &[0.9, 0.9]);
        let events = v.commit().unwrap();
        assert!(matches!(&events[0], Event::Stopped { detected: false, .. }));
        assert_eq!(jobs(&events).len(), 1);
    }
}
