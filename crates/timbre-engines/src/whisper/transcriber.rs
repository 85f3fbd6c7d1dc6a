//! The Whisper service the registry hands to capabilities: shared weights, N decoding workers
//! behind a bounded queue, segments streamed out as they are decoded.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::actor::{Actor, Timed, Worker};
use crate::manifest::Manifest;
use crate::state::ModelState;
use crate::vad::{CHUNK, SileroVad, VadState};
use crate::whisper::api::{ModelInfo, Segment, Task, TranscribeError, TranscribeOptions, Transcript};
use crate::whisper::checkpoint::Checkpoint;
use crate::whisper::pipeline::{Pipeline, SAMPLE_RATE};
use crate::whisper::speech::{self, TimeMap, VadParams};

/// Requests that may wait for a worker; beyond this callers get `Overloaded` (HTTP 503).
const QUEUE_CAPACITY: usize = 64;
const MAX_BEAM: usize = 16;

struct Job {
    audio: Vec<f32>,
    opts: TranscribeOptions,
    segments: Option<mpsc::Sender<Segment>>,
}

struct DecodeWorker {
    ckpt: Arc<Checkpoint>,
    vad: Option<Arc<SileroVad>>,
    threads: usize,
}

impl Worker for DecodeWorker {
    type Request = Job;
    type Response = Transcript;

    fn handle(&mut self, job: Job) -> Result<Transcript, String> {
        transcribe_blocking(&self.ckpt, self.vad.as_deref(), self.threads, &job.audio, &job.opts, job.segments)
    }
}

/// Speech regions by Silero VAD, or `None` when the signal should be decoded whole.
fn speech_spans(vad: &SileroVad, audio: &[f32]) -> Result<Vec<speech::Span>, String> {
    // faster-whisper pads to a whole number of windows (always adding at least one sample).
    let mut padded = audio.to_vec();
    padded.resize(audio.len() + (CHUNK - audio.len() % CHUNK), 0.0);
    let probs = vad.probabilities_blocking(padded, VadState::default()).map_err(|e| e.to_string())?.value.probabilities;
    Ok(speech::speech_timestamps(&probs, audio.len(), &VadParams::default()))
}

/// One request on the calling thread: VAD (when asked for and available), decoding, time
/// restoration. Segments go to `segments` as they are finished; a closed receiver stops the
/// work (the client has gone).
pub fn transcribe_blocking(
    ckpt: &Checkpoint,
    vad: Option<&SileroVad>,
    threads: usize,
    audio: &[f32],
    opts: &TranscribeOptions,
    segments: Option<mpsc::Sender<Segment>>,
) -> Result<Transcript, String> {
    let duration = audio.len() as f64 / SAMPLE_RATE as f64;
    let (speech_audio, map) = match (opts.vad_filter, vad) {
        (true, Some(vad)) => {
            let spans = speech_spans(vad, audio)?;
            (speech::collect(audio, &spans), Some(TimeMap::new(&spans)))
        }
        _ => (audio.to_vec(), None),
    };
    let pipeline = Pipeline { ckpt, model: ckpt.model_for(opts.fit_window), threads };
    let mut out: Vec<Segment> = Vec::new();
    let mut gone = false;
    let language = {
        let mut emit = |mut seg: Segment| {
            if let Some(map) = &map {
                map.restore(&mut seg);
            }
            if let Some(tx) = &segments
                && tx.blocking_send(seg.clone()).is_err()
            {
                gone = true;
            }
            out.push(seg);
            !gone
        };
        if speech_audio.is_empty() {
            opts.language.clone().unwrap_or_else(|| "en".into())
        } else {
            pipeline.run(&speech_audio, opts, &mut emit)?
        }
    };
    if gone {
        return Err("the segment receiver was closed before the transcript was finished".into());
    }
    let text = out.iter().map(|s| s.text.as_str()).collect::<String>().trim().to_string();
    Ok(Transcript { text, language, duration, segments: out })
}

pub struct Transcriber {
    name: String,
    info: ModelInfo,
    actor: Actor<Job, Transcript>,
}

impl Transcriber {
    /// Loads the checkpoint in `manifest.dir` once and starts `workers` decoding threads that
    /// share it, each using `threads` threads inside the model. `vad` enables `vad_filter`.
    pub fn load(
        manifest: &Manifest,
        workers: usize,
        threads: usize,
        vad: Option<Arc<SileroVad>>,
        progress: &dyn Fn(ModelState),
    ) -> Result<Self, String> {
        let ckpt = Arc::new(Checkpoint::load(&manifest.dir)?);
        let info =
            ModelInfo { multilingual: ckpt.multilingual, n_mels: ckpt.model.dims.n_mels, languages: ckpt.languages() };
        progress(ModelState::Warming);
        // One real window end to end: a checkpoint that loads but cannot run fails here.
        let warm = transcribe_blocking(
            &ckpt,
            None,
            threads.max(1),
            &vec![0.0; SAMPLE_RATE / 2],
            &TranscribeOptions { temperatures: vec![0.0], beam_size: 1, vad_filter: false, ..Default::default() },
            None,
        )?;
        tracing::debug!(model = %manifest.name, segments = warm.segments.len(), "whisper warm-up done");
        let pool = (0..workers.max(1))
            .map(|_| DecodeWorker { ckpt: Arc::clone(&ckpt), vad: vad.clone(), threads: threads.max(1) })
            .collect();
        let actor = Actor::spawn(&manifest.name, pool, QUEUE_CAPACITY)?;
        Ok(Self { name: manifest.name.clone(), info, actor })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Queue depth right now (for `x-queue-time` decisions and metrics).
    pub fn queue_depth(&self) -> usize {
        self.actor.queue_depth()
    }

    pub fn workers(&self) -> usize {
        self.actor.workers()
    }

    /// Checks options against this checkpoint before anything is queued.
    pub fn validate(&self, opts: &TranscribeOptions) -> Result<(), TranscribeError> {
        validate(&self.info, opts)
    }

    /// Transcribes mono 16 kHz samples. Each finished segment is also sent on `segments` (when
    /// given) as soon as it is decoded, so SSE and WebSocket clients see text before the end.
    /// Option errors come back before anything is queued.
    pub async fn transcribe(
        &self,
        audio: Vec<f32>,
        opts: TranscribeOptions,
        segments: Option<mpsc::Sender<Segment>>,
    ) -> Result<Timed<Transcript>, TranscribeError> {
        self.validate(&opts)?;
        if audio.iter().any(|s| !s.is_finite()) {
            return Err(invalid("file", "audio contains NaN or infinite samples"));
        }
        let opts = normalise(opts);
        self.actor.call(Job { audio, opts, segments }).await.map_err(TranscribeError::Engine)
    }

    /// Blocking variant for synchronous callers (CLI, benchmarks).
    pub fn transcribe_sync(
        &self,
        audio: Vec<f32>,
        opts: TranscribeOptions,
    ) -> Result<Timed<Transcript>, TranscribeError> {
        self.validate(&opts)?;
        if audio.iter().any(|s| !s.is_finite()) {
            return Err(invalid("file", "audio contains NaN or infinite samples"));
        }
        let opts = normalise(opts);
        self.actor.call_blocking(Job { audio, opts, segments: None }).map_err(TranscribeError::Engine)
    }
}

fn invalid(param: &'static str, message: impl Into<String>) -> TranscribeError {
    TranscribeError::InvalidOption { param, message: message.into() }
}

/// Lower-cases the language code so `EN` and `en` mean the same.
fn normalise(mut opts: TranscribeOptions) -> TranscribeOptions {
    opts.language = opts.language.map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty());
    opts
}

/// Option checks that depend only on what the checkpoint can do.
pub fn validate(info: &ModelInfo, opts: &TranscribeOptions) -> Result<(), TranscribeError> {
    if opts.task == Task::Translate && !info.multilingual {
        return Err(invalid("model", "this model is English-only and cannot translate; use a multilingual model"));
    }
    if let Some(lang) = opts.language.as_deref().map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty()) {
        if !info.multilingual && lang != "en" {
            return Err(invalid("language", format!("this model is English-only; `{lang}` is not supported")));
        }
        if !info.languages.contains(&lang) {
            return Err(invalid("language", format!("unknown language code `{lang}`")));
        }
    }
    if opts.temperatures.iter().any(|t| !(0.0..=1.0).contains(t)) {
        return Err(invalid("temperature", "temperatures must be between 0 and 1"));
    }
    if !(1..=MAX_BEAM).contains(&opts.beam_size) {
        return Err(invalid("beam_size", format!("must be between 1 and {MAX_BEAM}")));
    }
    if !(1..=MAX_BEAM).contains(&opts.best_of) {
        return Err(invalid("best_of", format!("must be between 1 and {MAX_BEAM}")));
    }
    for (param, value) in [
        ("compression_ratio_threshold", opts.compression_ratio_threshold),
        ("log_prob_threshold", opts.log_prob_threshold),
        ("no_speech_threshold", opts.no_speech_threshold),
    ] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(invalid(param, "must be a finite number"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn english() -> ModelInfo {
        ModelInfo { multilingual: false, n_mels: 80, languages: vec!["en".into()] }
    }

    #[test]
    fn english_only_models_refuse_translate_and_other_languages() {
        let translate = TranscribeOptions { task: Task::Translate, ..Default::default() };
        assert!(matches!(validate(&english(), &translate), Err(TranscribeError::InvalidOption { param: "model", .. })));
        let german = TranscribeOptions { language: Some("de".into()), ..Default::default() };
        assert!(matches!(validate(&english(), &german), Err(TranscribeError::InvalidOption { param: "language", .. })));
        let en = TranscribeOptions { language: Some("EN".into()), ..Default::default() };
        assert!(validate(&english(), &en).is_ok());
        let multi = ModelInfo { multilingual: true, n_mels: 80, languages: vec!["en".into(), "de".into()] };
        assert!(validate(&multi, &german).is_ok());
        assert!(validate(&multi, &translate).is_ok());
        let klingon = TranscribeOptions { language: Some("tlh".into()), ..Default::default() };
        assert!(matches!(validate(&multi, &klingon), Err(TranscribeError::InvalidOption { param: "language", .. })));
    }

    #[test]
    fn numeric_option_bounds() {
        let hot = TranscribeOptions { temperatures: vec![0.0, 1.5], ..Default::default() };
        assert!(matches!(validate(&english(), &hot), Err(TranscribeError::InvalidOption { param: "temperature", .. })));
        let wide = TranscribeOptions { beam_size: 0, ..Default::default() };
        assert!(matches!(validate(&english(), &wide), Err(TranscribeError::InvalidOption { param: "beam_size", .. })));
    }
}
