//! `analyze_song`: the music analysis of an uploaded song (`POST /v1/songs`) — tempo, beats,
//! downbeats, meter, sections, energy, loudness, genre and mood, and the waveform overview.
//!
//! The endpoint stores the original at `songs/<id>/original.<ext>` and the song row, then
//! enqueues. The handler reads the original, analyses it with whatever rhythm and tagging models
//! are ready (waiting for ones still loading), writes `songs/<id>/waveform.json` and the analysis
//! into the song row, and returns a summary. Audio no attempt can fix (corrupt, silent, too
//! short, no pulse) fails the job at once with that reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use timbre_engines::Registry;
use timbre_engines::actor::EngineError;
use timbre_engines::music::beatnet::BeatNet;
use timbre_engines::music::{self, Hooks, MusicAnalyzer};
use timbre_engines::tagging::Tagger;
use timbre_jobs::async_trait;
use timbre_jobs::{JobContext, JobError, JobHandler};
use timbre_store::BlobError;

use crate::capabilities::engine_in;
use crate::storage::StoreHandle;

pub const KIND: &str = "analyze_song";
/// Capabilities (model.toml `capability`) the analysis uses; both optional.
pub const BEATS: &str = "beats";
pub const TAGGING: &str = "tagging";
/// How long an attempt waits for models that are still loading.
const MODEL_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub song_id: String,
    /// Blob key of the original upload.
    pub input: String,
    /// Extension or MIME type for the decoder's probe.
    pub hint: Option<String>,
}

/// Where a song's files live in the blob store.
pub fn song_prefix(song_id: &str) -> String {
    format!("songs/{song_id}/")
}

pub fn waveform_key(song_id: &str) -> String {
    format!("{}waveform.json", song_prefix(song_id))
}

pub struct AnalyzeSong {
    registry: Arc<Registry>,
    store: StoreHandle,
}

impl AnalyzeSong {
    pub fn new(registry: Arc<Registry>, store: StoreHandle) -> Self {
        Self { registry, store }
    }

    /// The ready rhythm and tagging engines, after waiting (within [`MODEL_WAIT`]) for any that
    /// are still loading. Either may be absent: beats then come from spectral flux alone, genre
    /// and mood stay empty, and the job log says so.
    async fn models(&self, ctx: &JobContext) -> Result<(Option<Arc<BeatNet>>, Option<Arc<Tagger>>), JobError> {
        let deadline = Instant::now() + MODEL_WAIT;
        let mut models = self.registry.subscribe();
        loop {
            let snapshot = models.borrow_and_update().clone();
            let loading = snapshot
                .models
                .values()
                .any(|m| [BEATS, TAGGING].contains(&m.capability.as_str()) && m.state.in_progress());
            let left = deadline.saturating_duration_since(Instant::now());
            if !loading || left.is_zero() {
                let net = engine_in::<BeatNet>(&self.registry, &snapshot, BEATS, None).ok().map(|(_, e)| e);
                let tagger = engine_in::<Tagger>(&self.registry, &snapshot, TAGGING, None).ok().map(|(_, e)| e);
                if net.is_none() {
                    ctx.warn("no beat model (BeatNet) is ready: beats from spectral flux alone");
                }
                if tagger.is_none() {
                    ctx.warn("no tagging model is ready: genre and mood are left empty");
                }
                return Ok((net, tagger));
            }
            ctx.progress_with("load", 0.0, Some("waiting for the analysis models to load".into()));
            tokio::select! {
                () = ctx.cancelled() => return Err(JobError::Cancelled),
                _ = tokio::time::timeout(left, models.changed()) => {}
            }
        }
    }
}

/// Which analysis failures another attempt could fix.
fn failure(e: music::Error) -> JobError {
    match e {
        music::Error::Cancelled => JobError::Cancelled,
        music::Error::Audio(a) => JobError::permanent(format!("the upload is not usable audio: {a}")),
        music::Error::Silent | music::Error::TooShort { .. } | music::Error::NoPulse => {
            JobError::permanent(e.to_string())
        }
        music::Error::Engine(EngineError::Overloaded { .. } | EngineError::Stopped { .. }) => {
            JobError::retryable(e.to_string())
        }
        music::Error::Engine(EngineError::Inference { .. }) => JobError::permanent(e.to_string()),
        music::Error::Internal(_) => JobError::retryable(e.to_string()),
    }
}

#[async_trait]
impl JobHandler for AnalyzeSong {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, ctx: JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let p: Payload = serde_json::from_value(payload)
            .map_err(|e| JobError::permanent(format!("invalid analyze_song payload: {e}")))?;
        let (net, tagger) = self.models(&ctx).await?;
        ctx.progress("fetch", 0.0);
        let (_, bytes) = ctx.blobs().get_bytes(&p.input).await.map_err(|e| match e {
            BlobError::NotFound { .. } => JobError::permanent(format!("the uploaded song is gone ({})", p.input)),
            other => JobError::retryable(format!("cannot read the uploaded song: {other}")),
        })?;
        ctx.check_cancelled()?;

        // Stages report through a watch channel: the hooks run on blocking threads, the job's
        // progress is sent from here.
        let (tx, mut rx) = tokio::sync::watch::channel(None::<(String, f32)>);
        let token = ctx.cancellation_token();
        let hooks = Hooks {
            progress: Arc::new(move |stage, f| {
                tx.send_replace(Some((stage.to_string(), f)));
            }),
            cancelled: Arc::new(move || token.is_cancelled()),
        };
        let analyzer = MusicAnalyzer::new(net, tagger);
        let work = analyzer.analyze(Arc::new(bytes.to_vec()), p.hint.clone(), hooks);
        tokio::pin!(work);
        let report = loop {
            tokio::select! {
                r = &mut work => break r,
                Ok(()) = rx.changed() => {
                    let seen = rx.borrow_and_update().clone();
                    if let Some((stage, f)) = seen {
                        ctx.progress(&stage, 0.05 + 0.9 * f64::from(f));
                    }
                }
            }
        };
        let report = report.map_err(failure)?;
        ctx.check_cancelled()?;

        ctx.progress("store", 0.96);
        let a = &report.analysis;
        let store = self.store.get().map_err(|e| JobError::retryable(e.message))?;
        let waveform = waveform_key(&p.song_id);
        ctx.blobs()
            .put(&waveform, Bytes::from(report.peaks.to_json()), "application/json")
            .await
            .map_err(|e| JobError::retryable(format!("cannot store the waveform: {e}")))?;
        let json =
            serde_json::to_string(a).map_err(|e| JobError::permanent(format!("cannot encode the analysis: {e}")))?;
        let kept = store
            .db
            .song_set_analysis(&p.song_id, &json, a.duration, a.bpm)
            .await
            .map_err(|e| JobError::retryable(format!("cannot store the analysis: {e}")))?;
        if !kept {
            let _ = ctx.blobs().delete(&waveform).await;
            return Err(JobError::permanent(format!("song `{}` was deleted during its analysis", p.song_id)));
        }
        ctx.log(format!("{:.1} s, {:.1} BPM, {}, {} sections", a.duration, a.bpm, a.time_signature, a.sections.len()));
        Ok(serde_json::json!({
            "song_id": p.song_id,
            "duration": a.duration,
            "bpm": a.bpm,
            "time_signature": a.time_signature,
            "beats": a.beats.len(),
            "sections": a.sections.len(),
            "loudness_lufs": a.loudness_lufs,
            "analysis_url": format!("/v1/songs/{}/analysis", p.song_id),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_audio_fails_at_once_and_busy_engines_retry() {
        assert!(matches!(failure(music::Error::Silent), JobError::Permanent(m) if m.contains("silent")));
        assert!(matches!(failure(music::Error::TooShort { seconds: 1.0 }), JobError::Permanent(_)));
        assert!(matches!(
            failure(music::Error::Audio(timbre_audio::AudioError::Empty)),
            JobError::Permanent(m) if m.contains("not usable audio")
        ));
        assert!(matches!(
            failure(music::Error::Engine(EngineError::Overloaded { engine: "x".into(), depth: 3 })),
            JobError::Retryable(_)
        ));
        assert_eq!(failure(music::Error::Cancelled), JobError::Cancelled);
    }
}
