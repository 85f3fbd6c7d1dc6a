//! `analyze_audio`: sound tagging of a long file as a job — the same report as
//! `POST /v1/audio/classification`, off the request path, with progress per batch of windows.
//!
//! The endpoint (`/v1/audio/classification` with `async=true`) stores the upload at
//! `jobs/<id>/input` and enqueues; the handler fetches, decodes and tags it in whichever worker
//! claims it. Input that no attempt can fix (not audio, silence, a bad payload) fails the job
//! at once with a clear error; a model still loading or a storage blip is retried.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use timbre_engines::Registry;
use timbre_engines::actor::EngineError;
use timbre_engines::tagging::{TagOptions, Tagger};
use timbre_jobs::async_trait;
use timbre_jobs::{JobContext, JobError, JobHandler, blob_prefix};
use timbre_store::BlobError;

use super::submit::{IdempotencyKey, Submitted, submit};
use crate::capabilities::engine_in;
use crate::error::ApiError;
use crate::routes::tags::CAPABILITY;
use crate::state::AppState;

pub const KIND: &str = "analyze_audio";

/// Tagging runs at the model's rate.
const RATE: u32 = 16_000;

/// Peak level below which a file counts as silent (-80 dBFS): tagging it would only report
/// "Silence" and waste a worker.
const SILENCE_PEAK: f32 = 1e-4;

/// How long an attempt waits for a model that is still loading before giving the job back.
const MODEL_WAIT: Duration = Duration::from_secs(120);

/// [`TagOptions`] as stored in the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub window: f32,
    pub hop: f32,
    pub top_k: usize,
    pub threshold: f32,
    pub min_event: f32,
    #[serde(default)]
    pub prompts: Vec<String>,
}

impl From<&TagOptions> for Options {
    fn from(o: &TagOptions) -> Self {
        Self {
            window: o.window,
            hop: o.hop,
            top_k: o.top_k,
            threshold: o.threshold,
            min_event: o.min_event,
            prompts: o.prompts.clone(),
        }
    }
}

impl From<Options> for TagOptions {
    fn from(o: Options) -> Self {
        Self {
            window: o.window,
            hop: o.hop,
            top_k: o.top_k,
            threshold: o.threshold,
            min_event: o.min_event,
            prompts: o.prompts,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Blob key of the audio.
    pub input: String,
    /// Extension or MIME type for the decoder's probe.
    pub hint: Option<String>,
    /// `None`: the first ready tagging model.
    pub model: Option<String>,
    pub options: Options,
}

/// Stores the audio under the new job's prefix and enqueues it (or returns the job an earlier
/// request with the same `Idempotency-Key` created).
pub async fn enqueue(
    state: &AppState,
    key: &IdempotencyKey,
    audio: Bytes,
    hint: Option<String>,
    model: Option<String>,
    options: &TagOptions,
) -> Result<Submitted, ApiError> {
    let store = state.store.get()?;
    let options = Options::from(options);
    submit(state, key, KIND, |id| async move {
        let input = format!("{}input", blob_prefix(&id));
        store
            .blobs
            .put(&input, audio, "application/octet-stream")
            .await
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        serde_json::to_value(Payload { input, hint, model, options }).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
}

/// The handler; finds its tagging model in the registry of the process it runs in.
pub struct AnalyzeAudio {
    registry: Arc<Registry>,
}

impl AnalyzeAudio {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// The tagger to use, waiting (within [`MODEL_WAIT`]) for one that is still loading.
    async fn tagger(&self, ctx: &JobContext, model: Option<&str>) -> Result<Arc<Tagger>, JobError> {
        let deadline = Instant::now() + MODEL_WAIT;
        let mut models = self.registry.subscribe();
        loop {
            let snapshot = models.borrow_and_update().clone();
            let err = match engine_in::<Tagger>(&self.registry, &snapshot, CAPABILITY, model) {
                Ok((_, tagger)) => return Ok(tagger),
                Err(e) => e,
            };
            let loading = snapshot
                .models
                .values()
                .any(|m| m.capability == CAPABILITY && model.is_none_or(|n| n == m.name) && m.state.in_progress());
            if !loading {
                // Unknown model, none installed, or failed to load: another attempt won't help.
                return Err(JobError::permanent(err.message));
            }
            ctx.progress_with("load", 0.0, Some("waiting for the tagging model to load".into()));
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(JobError::retryable(format!(
                    "{} (still loading after {} s)",
                    err.message,
                    MODEL_WAIT.as_secs()
                )));
            }
            tokio::select! {
                () = ctx.cancelled() => return Err(JobError::Cancelled),
                _ = tokio::time::timeout(left, models.changed()) => {}
            }
        }
    }
}

#[async_trait]
impl JobHandler for AnalyzeAudio {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let p: Payload = serde_json::from_value(payload)
            .map_err(|e| JobError::permanent(format!("invalid analyze_audio payload: {e}")))?;
        let options = TagOptions::from(p.options);
        options.validate().map_err(|e| JobError::permanent(format!("invalid option {e}")))?;
        let tagger = self.tagger(&ctx, p.model.as_deref()).await?;

        ctx.progress("fetch", 0.0);
        let (_, bytes) = ctx.blobs().get_bytes(&p.input).await.map_err(|e| match e {
            BlobError::NotFound { .. } => JobError::permanent(format!("the uploaded audio is gone ({})", p.input)),
            other => JobError::retryable(format!("cannot read the uploaded audio: {other}")),
        })?;
        ctx.check_cancelled()?;

        ctx.progress("decode", 0.05);
        let hint = p.hint.clone();
        let samples = tokio::task::spawn_blocking(move || {
            timbre_audio::decode_mono_with(&bytes, hint.as_deref(), RATE, &timbre_audio::DecodeOptions::default())
        })
        .await
        .map_err(|e| JobError::retryable(format!("the decoder task failed: {e}")))?
        .map_err(|e| JobError::permanent(format!("the upload is not usable audio: {e}")))?;
        check_not_silent(&samples)?;
        ctx.check_cancelled()?;
        ctx.log(format!("decoded {:.1} s of audio", samples.len() as f64 / f64::from(RATE)));

        ctx.progress("tag", 0.1);
        let mut on_batch = |done: usize, total: usize| {
            if ctx.is_cancelled() {
                return ControlFlow::Break(());
            }
            let message = format!("{done} of {total} windows");
            ctx.progress_with("tag", 0.1 + 0.9 * done as f64 / total.max(1) as f64, Some(message));
            ControlFlow::Continue(())
        };
        let report = tagger.tag_with_progress(&samples, &options, &mut on_batch).await.map_err(engine_failure)?;
        let Some(report) = report else { return Err(JobError::Cancelled) };
        // Through text, not `to_value`: f32 scores then read back as the short decimals the inline
        // route prints (0.833), not their f64 widening (0.8330000042915344).
        let text = serde_json::to_string(&report.value)
            .map_err(|e| JobError::permanent(format!("cannot encode the report: {e}")))?;
        serde_json::from_str(&text).map_err(|e| JobError::permanent(format!("cannot encode the report: {e}")))
    }
}

fn check_not_silent(samples: &[f32]) -> Result<(), JobError> {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak < SILENCE_PEAK {
        return Err(JobError::permanent(format!(
            "the audio is silent ({:.1} s with a peak below -80 dBFS): nothing to tag",
            samples.len() as f64 / f64::from(RATE)
        )));
    }
    Ok(())
}

/// A busy or restarting engine is worth another attempt; an inference failure on this input is not.
fn engine_failure(e: EngineError) -> JobError {
    match e {
        EngineError::Overloaded { .. } | EngineError::Stopped { .. } => JobError::retryable(e.to_string()),
        EngineError::Inference { .. } => JobError::permanent(e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_refused_and_quiet_sound_is_not() {
        let err = check_not_silent(&vec![0.0; 16_000]).unwrap_err();
        assert!(matches!(&err, JobError::Permanent(m) if m.contains("silent") && m.contains("1.0 s")), "{err:?}");
        assert!(check_not_silent(&[]).is_err());
        assert!(check_not_silent(&[0.0, 0.001, -0.002]).is_ok());
    }

    #[test]
    fn options_round_trip_through_the_payload() {
        let o = TagOptions { top_k: 5, prompts: vec!["dog".into()], ..TagOptions::default() };
        let payload =
            Payload { input: "jobs/x/input".into(), hint: Some("wav".into()), model: None, options: (&o).into() };
        let back: Payload = serde_json::from_value(serde_json::to_value(&payload).unwrap()).unwrap();
        assert_eq!(TagOptions::from(back.options), o);
    }
}
