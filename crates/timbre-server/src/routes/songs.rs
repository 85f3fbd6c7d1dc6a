//! `/v1/songs`: upload a song for analysis (a durable `analyze_song` job), then read its
//! analysis, waveform overview and beat-aligned clip plan; SonoTag's `/upload_audio` is an alias
//! of the upload.

use std::time::Duration;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use timbre_engines::music::{self, Analysis, clips};
use timbre_jobs::{Job, JobStatus};
use timbre_store::{NewSong, Song, Store};
use utoipa::ToSchema;

use crate::error::{ApiError, jobs_error};
use crate::jobs::analyze_song::{self, Payload, song_prefix, waveform_key};
use crate::jobs::submit::{IdempotencyKey, submit};
use crate::jobs::view::ProgressView;
use crate::state::AppState;
use crate::upload::Form;

/// Formats `POST /v1/songs` accepts: (extension, MIME types).
const FORMATS: [(&str, &[&str]); 5] = [
    ("mp3", &["audio/mpeg", "audio/mp3"]),
    ("wav", &["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"]),
    ("m4a", &["audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac"]),
    ("flac", &["audio/flac", "audio/x-flac"]),
    ("ogg", &["audio/ogg", "audio/vorbis", "audio/opus", "application/ogg"]),
];
/// A page of `GET /v1/songs`.
const MAX_PAGE: i64 = 100;
const DEFAULT_PAGE: i64 = 20;

fn db_error(e: timbre_store::DbError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "storage_unavailable", format!("database: {e}"))
        .with_retry_after(Duration::from_secs(5))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("song `{id}` does not exist")).with_param("id")
}

/// The upload's format by file extension, else by MIME type; 415 when it is none of ours.
fn format_of(filename: Option<&str>, content_type: Option<&str>) -> Result<&'static str, ApiError> {
    let ext = filename.and_then(|f| f.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    let by_ext = ext.as_deref().and_then(|e| {
        FORMATS.iter().find(|(x, _)| *x == e || (e == "oga" && *x == "ogg") || (e == "mp4" && *x == "m4a"))
    });
    let mime = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let by_mime = mime.as_deref().and_then(|m| FORMATS.iter().find(|(_, ms)| ms.contains(&m)));
    by_ext.or(by_mime).map(|(x, _)| *x).ok_or_else(|| {
        ApiError::unsupported_media(format!(
            "songs must be mp3, wav, m4a, flac or ogg (got {}{})",
            ext.map(|e| format!("a .{e} file")).unwrap_or_else(|| "a file without extension".into()),
            mime.map(|m| format!(", {m}")).unwrap_or_default()
        ))
        .with_param("file")
    })
}

/// Song ids are 32 hex digits; anything else is a 404 without a database round trip.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) { Ok(()) } else { Err(not_found(id)) }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SongAccepted {
    pub song_id: String,
    pub job_id: String,
    /// The job's status now (a replayed Idempotency-Key may return a finished job).
    #[schema(example = "queued")]
    pub status: String,
    pub url: String,
    pub analysis_url: String,
    pub job_url: String,
    pub events_url: String,
    /// The uploaded file's name (SonoTag's `/upload_audio` clients read it).
    pub filename: Option<String>,
}

/// Uploads a song (multipart `file`: mp3, wav, m4a, flac or ogg) and starts its analysis.
/// 202 with the song and job ids; `Idempotency-Key` makes retries return the first upload.
#[utoipa::path(post, path = "/v1/songs", tag = "songs", security(("api_key" = [])),
    request_body(content_type = "multipart/form-data", description = "`file`: the song"),
    params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key return the first song")),
    responses((status = 202, body = SongAccepted), (status = 400, body = crate::error::ErrorEnvelope),
              (status = 413, body = crate::error::ErrorEnvelope), (status = 415, body = crate::error::ErrorEnvelope),
              (status = 422, body = crate::error::ErrorEnvelope), (status = 503, body = crate::error::ErrorEnvelope)))]
pub async fn upload(
    State(state): State<AppState>,
    key: IdempotencyKey,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let mut form = Form::read(multipart, "file").await?;
    let file = form.require_file("file")?;
    let ext = format_of(file.filename.as_deref(), file.content_type.as_deref())?;
    let store = state.store.get()?;
    let (filename, content_type) = (file.filename.clone(), file.content_type.clone());
    let created = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let submitted = {
        let (store, created, filename, content_type) = (store.clone(), created.clone(), filename.clone(), content_type);
        submit(&state, &key, analyze_song::KIND, |job_id| async move {
            let song_id = timbre_jobs::new_job_id();
            let input = format!("{}original.{ext}", song_prefix(&song_id));
            let bytes = file.bytes;
            let size = bytes.len() as i64;
            store
                .blobs
                .put(&input, bytes, content_type.as_deref().unwrap_or("application/octet-stream"))
                .await
                .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
            let new = NewSong {
                id: song_id.clone(),
                filename,
                content_type,
                bytes: size,
                original_key: input.clone(),
                job_id,
            };
            store.db.song_insert(&new).await.map_err(db_error)?;
            if let Ok(mut c) = created.lock() {
                *c = Some(song_id.clone());
            }
            serde_json::to_value(Payload { song_id, input, hint: Some(ext.to_string()) })
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?
    };
    let song_id = submitted
        .job
        .payload
        .get("song_id")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| ApiError::internal("the job has no song_id"))?;
    // A concurrent duplicate (same key) won the race: drop what this request stored.
    let ours = created.lock().ok().and_then(|c| c.clone());
    if let Some(ours) = ours.filter(|o| *o != song_id) {
        remove_song(&store, &ours).await;
    }
    let body = SongAccepted {
        url: format!("/v1/songs/{song_id}"),
        analysis_url: format!("/v1/songs/{song_id}/analysis"),
        job_url: format!("/v1/jobs/{}", submitted.job.id),
        events_url: format!("/v1/jobs/{}/events", submitted.job.id),
        status: submitted.job.status.as_str().to_string(),
        job_id: submitted.job.id.clone(),
        song_id,
        filename,
    };
    Ok(submitted.respond(body))
}

/// Deletes a song's blobs and row (best effort for the blobs: a missing one is fine).
async fn remove_song(store: &Store, id: &str) -> bool {
    let keys: Vec<String> =
        store.blobs.list(&song_prefix(id)).map_ok(|e| e.key).try_collect().await.unwrap_or_default();
    for k in keys {
        let _ = store.blobs.delete(&k).await;
    }
    store.db.song_delete(id).await.unwrap_or(false)
}

/// A song and where its analysis stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct SongView {
    pub id: String,
    #[schema(example = "song")]
    pub object: &'static str,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: i64,
    /// queued | running | analyzed | failed | cancelled
    #[schema(example = "analyzed")]
    pub status: String,
    pub job_id: Option<String>,
    pub progress: Option<ProgressView>,
    /// Why the analysis failed.
    pub error: Option<String>,
    pub duration: Option<f64>,
    pub bpm: Option<f64>,
    /// Unix seconds.
    pub created_at: f64,
    pub analyzed_at: Option<f64>,
    pub analysis_url: String,
    pub waveform_url: String,
}

async fn job_of(state: &AppState, song: &Song) -> Option<Job> {
    let id = song.job_id.as_deref()?;
    state.jobs.queue().ok()?.get(id).await.ok().flatten()
}

fn view(song: Song, job: Option<&Job>) -> SongView {
    let (status, progress, error) = if song.analyzed_at.is_some() {
        ("analyzed".to_string(), None, None)
    } else {
        match job {
            // Succeeded but the row has no analysis: the song was re-created or the write raced.
            Some(j) if j.status == JobStatus::Succeeded => ("running".into(), None, None),
            Some(j) => (
                j.status.as_str().to_string(),
                j.progress.clone().map(|p| ProgressView { stage: p.stage, fraction: p.fraction, message: p.message }),
                j.error.clone(),
            ),
            None => ("failed".into(), None, Some("the analysis job no longer exists".into())),
        }
    };
    SongView {
        analysis_url: format!("/v1/songs/{}/analysis", song.id),
        waveform_url: format!("/v1/songs/{}/waveform", song.id),
        object: "song",
        status,
        progress,
        error,
        filename: song.filename,
        content_type: song.content_type,
        bytes: song.bytes,
        job_id: song.job_id,
        duration: song.duration,
        bpm: song.bpm,
        created_at: song.created_at as f64 / 1000.0,
        analyzed_at: song.analyzed_at.map(|t| t as f64 / 1000.0),
        id: song.id,
    }
}

async fn load(state: &AppState, id: &str) -> Result<(Store, Song), ApiError> {
    check_id(id)?;
    let store = state.store.get()?;
    let song = store.db.song_get(id).await.map_err(db_error)?.ok_or_else(|| not_found(id))?;
    Ok(((*store).clone(), song))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SongList {
    #[schema(example = "list")]
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<SongView>,
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Songs, newest first, `limit` (1–100, default 20) per page; follow `next_cursor`.
#[utoipa::path(get, path = "/v1/songs", tag = "songs", security(("api_key" = [])),
    params(("limit" = Option<i64>, Query, description = "1–100, default 20"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = SongList), (status = 422, body = crate::error::ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>, Query(p): Query<ListParams>) -> Result<Json<SongList>, ApiError> {
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 100"));
    }
    let store = state.store.get()?;
    let before = match p.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => {
            let bad = || ApiError::invalid_field("cursor", "not a cursor this API returned");
            check_id(c).map_err(|_| bad())?;
            let s = store.db.song_get(c).await.map_err(db_error)?.ok_or_else(bad)?;
            Some((s.created_at, s.id))
        }
        None => None,
    };
    let mut songs = store.db.song_list(limit + 1, before).await.map_err(db_error)?;
    let has_more = songs.len() as i64 > limit;
    songs.truncate(limit as usize);
    let next_cursor = if has_more { songs.last().map(|s| s.id.clone()) } else { None };
    let mut data = Vec::with_capacity(songs.len());
    for s in songs {
        let job = if s.analyzed_at.is_none() { job_of(&state, &s).await } else { None };
        data.push(view(s, job.as_ref()));
    }
    Ok(Json(SongList { object: "list", data, has_more, next_cursor }))
}

/// One song: file, status (with the job's progress while it runs), tempo once analysed.
#[utoipa::path(get, path = "/v1/songs/{id}", tag = "songs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = SongView), (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<SongView>, ApiError> {
    let (_, song) = load(&state, &id).await?;
    let job = job_of(&state, &song).await;
    Ok(Json(view(song, job.as_ref())))
}

/// While the analysis is not there: 202 with the job's progress (queued/running), 422 when it
/// failed (the reason), 409 when it was cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pending {
    pub song_id: String,
    #[schema(example = "running")]
    pub status: String,
    pub job_id: Option<String>,
    pub progress: Option<ProgressView>,
    pub job_url: Option<String>,
}

async fn analysis_or_status(
    state: &AppState,
    store: &Store,
    song: &Song,
) -> Result<Result<Analysis, Response>, ApiError> {
    if song.analyzed_at.is_some()
        && let Some(text) = store.db.song_analysis(&song.id).await.map_err(db_error)?
    {
        let a: Analysis =
            serde_json::from_str(&text).map_err(|e| ApiError::internal(format!("stored analysis: {e}")))?;
        return Ok(Ok(a));
    }
    let job = job_of(state, song).await;
    let v = view(song.clone(), job.as_ref());
    match v.status.as_str() {
        "failed" => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_error",
            "analysis_failed",
            format!("the analysis of song `{}` failed: {}", song.id, v.error.unwrap_or_default()),
        )),
        "cancelled" => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "analysis_cancelled",
            format!("the analysis of song `{}` was cancelled; upload the song again", song.id),
        )),
        _ => {
            let body = Pending {
                song_id: song.id.clone(),
                status: v.status,
                job_url: v.job_id.as_ref().map(|j| format!("/v1/jobs/{j}")),
                job_id: v.job_id,
                progress: v.progress,
            };
            let mut r = (StatusCode::ACCEPTED, Json(body)).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            Ok(Err(r))
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaveformLink {
    pub url: String,
    pub peaks_per_second: u32,
}

/// The analysis with the waveform's link, as `GET /v1/songs/{id}/analysis` returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisView {
    pub duration: f64,
    pub sample_rate: u32,
    pub bpm: f64,
    pub bpm_confidence: f64,
    pub beats: Vec<f64>,
    pub downbeats: Vec<f64>,
    #[schema(example = "4/4")]
    pub time_signature: String,
    #[schema(value_type = Vec<Object>)]
    pub sections: Vec<music::Section>,
    pub energy: Vec<f32>,
    pub loudness_lufs: f64,
    pub waveform: WaveformLink,
    #[schema(value_type = Vec<Object>)]
    pub genre: Vec<music::Label>,
    #[schema(value_type = Vec<Object>)]
    pub mood: Vec<music::Label>,
}

/// Tempo, beats, downbeats, meter, sections, energy per beat, loudness, waveform link, genre and
/// mood. 202 while the analysis runs (poll, or follow the job's events).
#[utoipa::path(get, path = "/v1/songs/{id}/analysis", tag = "songs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AnalysisView), (status = 202, body = Pending, description = "still analysing"),
              (status = 404, body = crate::error::ErrorEnvelope),
              (status = 409, body = crate::error::ErrorEnvelope, description = "analysis cancelled"),
              (status = 422, body = crate::error::ErrorEnvelope, description = "analysis failed (corrupt or silent audio)")))]
pub async fn analysis(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (store, song) = load(&state, &id).await?;
    let a = match analysis_or_status(&state, &store, &song).await? {
        Ok(a) => a,
        Err(pending) => return Ok(pending),
    };
    let body = AnalysisView {
        waveform: WaveformLink { url: format!("/v1/songs/{id}/waveform"), peaks_per_second: music::PEAKS_PER_SECOND },
        duration: a.duration,
        sample_rate: a.sample_rate,
        bpm: a.bpm,
        bpm_confidence: a.bpm_confidence,
        beats: a.beats,
        downbeats: a.downbeats,
        time_signature: a.time_signature,
        sections: a.sections,
        energy: a.energy,
        loudness_lufs: a.loudness_lufs,
        genre: a.genre,
        mood: a.mood,
    };
    Ok(Json(body).into_response())
}

/// Min/max peaks in BBC audiowaveform's JSON format (version 2, 8-bit), for waveform UIs
/// (peaks.js, wavesurfer). 202 while the analysis runs.
#[utoipa::path(get, path = "/v1/songs/{id}/waveform", tag = "songs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "audiowaveform JSON: version, channels, sample_rate, samples_per_pixel, bits, length, data"),
              (status = 202, body = Pending), (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn waveform(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (store, song) = load(&state, &id).await?;
    if let Err(pending) = analysis_or_status(&state, &store, &song).await? {
        return Ok(pending);
    }
    let (_, bytes): (_, Bytes) = store
        .blobs
        .get_bytes(&waveform_key(&id))
        .await
        .map_err(|e| ApiError::internal(format!("the waveform of song `{id}` cannot be read: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ClipParams {
    pub min_sec: Option<String>,
    pub max_sec: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClipPlan {
    pub song_id: String,
    pub duration: f64,
    pub min_sec: f64,
    pub max_sec: f64,
    #[schema(value_type = Vec<Object>)]
    pub clips: Vec<clips::Clip>,
}

fn seconds(raw: Option<&str>, name: &str, default: f64) -> Result<f64, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(r) => r
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| ApiError::invalid_field(name, format!("`{r}` is not a number of seconds"))),
    }
}

/// Cuts the song into clips of `min_sec`–`max_sec` (defaults 3 and 6) covering it end to end,
/// every cut on a beat (downbeats preferred) and on section starts.
#[utoipa::path(get, path = "/v1/songs/{id}/clips", tag = "songs", security(("api_key" = [])),
    params(("id" = String, Path), ("min_sec" = Option<f64>, Query, description = "shortest clip, > 0 and ≤ 60 (default 3)"),
           ("max_sec" = Option<f64>, Query, description = "longest clip, ≥ min_sec and ≤ 120 (default 6)")),
    responses((status = 200, body = ClipPlan), (status = 202, body = Pending), (status = 404, body = crate::error::ErrorEnvelope),
              (status = 422, body = crate::error::ErrorEnvelope)))]
pub async fn clip_plan(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<ClipParams>,
) -> Result<Response, ApiError> {
    let min_sec = seconds(p.min_sec.as_deref(), "min_sec", 3.0)?;
    let max_sec = seconds(p.max_sec.as_deref(), "max_sec", 6.0)?;
    // Validate before touching storage: a bad request is a 422 whatever the song's state.
    let probe = Analysis {
        duration: 1.0,
        sample_rate: 1,
        bpm: 0.0,
        bpm_confidence: 0.0,
        beats: Vec::new(),
        downbeats: Vec::new(),
        time_signature: String::new(),
        sections: Vec::new(),
        energy: Vec::new(),
        loudness_lufs: 0.0,
        genre: Vec::new(),
        mood: Vec::new(),
    };
    if let Err(e) = clips::plan(&probe, min_sec, max_sec) {
        let field = match e {
            clips::PlanError::Min => "min_sec",
            clips::PlanError::Max => "max_sec",
        };
        return Err(ApiError::invalid_field(field, e.to_string()));
    }
    let (store, song) = load(&state, &id).await?;
    let a = match analysis_or_status(&state, &store, &song).await? {
        Ok(a) => a,
        Err(pending) => return Ok(pending),
    };
    let planned = clips::plan(&a, min_sec, max_sec).map_err(|e| ApiError::invalid_field("min_sec", e.to_string()))?;
    Ok(Json(ClipPlan { song_id: id, duration: a.duration, min_sec, max_sec, clips: planned }).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    #[schema(example = "song")]
    pub object: &'static str,
    pub deleted: bool,
}

/// Deletes a song: its original, waveform and analysis; a running analysis is cancelled.
#[utoipa::path(delete, path = "/v1/songs/{id}", tag = "songs", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = crate::error::ErrorEnvelope)))]
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Deleted>, ApiError> {
    let (store, song) = load(&state, &id).await?;
    if song.analyzed_at.is_none()
        && let (Some(job_id), Ok(queue)) = (song.job_id.as_deref(), state.jobs.queue())
    {
        queue.cancel(job_id).await.map_err(jobs_error)?;
    }
    if !remove_song(&store, &id).await {
        return Err(not_found(&id));
    }
    Ok(Json(Deleted { id, object: "song", deleted: true }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension_then_mime() {
        assert_eq!(format_of(Some("a.MP3"), None).unwrap(), "mp3");
        assert_eq!(format_of(Some("song"), Some("audio/x-wav")).unwrap(), "wav");
        assert_eq!(format_of(Some("x.oga"), None).unwrap(), "ogg");
        assert_eq!(format_of(Some("x.m4a"), Some("application/octet-stream")).unwrap(), "m4a");
        let e = format_of(Some("notes.txt"), Some("text/plain")).unwrap_err();
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (415, Some("file")));
        assert!(e.message.contains(".txt"), "{}", e.message);
    }
}
