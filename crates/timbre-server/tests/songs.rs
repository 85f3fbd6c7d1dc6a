//! The songs API through the real server stack: upload (with `Idempotency-Key`), the
//! `analyze_song` job on the real BeatNet and CED-tiny models, the analysis, waveform and clip
//! plan, listing, deletion (blobs gone), and clear failures for corrupt, silent and unsupported
//! uploads. SQLite and local blobs in a temporary directory, in-process workers. The song is a
//! rendered test song (`scripts/testdata/music short`) with its chart truth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::TryStreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use timbre_engines::ModelState;
use timbre_server::Config;

fn songs_dir() -> PathBuf {
    let cache = std::env::var("TIMBRE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/timbre"));
    std::env::var("TIMBRE_MUSIC_TESTDATA").map(PathBuf::from).unwrap_or_else(|_| cache.join("testdata/music/short"))
}

/// A server with storage, workers, and the real `beatnet` and `ced-tiny` from `models/`.
async fn songs_server(dir: &Path) -> TestServer {
    let config = Config { workers: 2, job_poll_interval: 0.05, job_heartbeat: 0.3, ..base_config() };
    let server = start(config).await;
    attach_store(&server, dir).await;
    let store = server.state.store.get().unwrap();
    timbre_server::jobs::attach(&server.state, &store).await.unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let mdir = tempfile::tempdir().unwrap();
    for m in ["beatnet", "ced-tiny"] {
        std::os::unix::fs::symlink(models.join(m), mdir.path().join(m)).unwrap();
    }
    let plan = server.registry.discover(mdir.path());
    assert_eq!(plan.len(), 2, "run `make setup` first");
    let loader = timbre_engines::loaders::default_loader(&timbre_engines::loaders::Settings {
        threads: 1,
        ..Default::default()
    });
    Arc::clone(&server.registry).load_all(plan, loader, 1).await;
    for m in ["beatnet", "ced-tiny"] {
        assert_eq!(server.registry.snapshot().models[m].state, ModelState::Ready, "{m}");
    }
    server
}

async fn upload(
    c: &reqwest::Client,
    server: &TestServer,
    path: &str,
    name: &str,
    bytes: Vec<u8>,
    key: Option<&str>,
) -> reqwest::Response {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    let mut req = c.post(server.url(path)).multipart(form);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

async fn wait_job(c: &reqwest::Client, server: &TestServer, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = json(c.get(server.url(&format!("/v1/jobs/{id}"))).send().await.unwrap()).await;
        if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} not finished within {within:?}: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A 16-bit mono WAV, through the project's own encoder.
fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    timbre_audio::encode(samples, rate, timbre_audio::OutputFormat::Wav).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_song_is_uploaded_analysed_planned_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = songs_server(dir.path()).await;
    let c = client();
    let songs = songs_dir();
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(songs.join("waltz-96.json")).unwrap_or_else(|e| {
            panic!("{}: {e}; render the songs with `scripts/testdata/music short`", songs.display())
        }))
        .unwrap();
    let bytes = std::fs::read(songs.join("waltz-96.wav")).unwrap();

    let resp = upload(&c, &server, "/v1/songs", "waltz.wav", bytes.clone(), Some("waltz-1")).await;
    assert_eq!(resp.status(), 202);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("/v1/jobs/"));
    let created = json(resp).await;
    let (song_id, job_id) =
        (created["song_id"].as_str().unwrap().to_string(), created["job_id"].as_str().unwrap().to_string());
    assert_eq!(created["url"], format!("/v1/songs/{song_id}"));
    // The same key again: the same song and job, nothing new stored.
    let again = upload(&c, &server, "/v1/songs", "waltz.wav", bytes.clone(), Some("waltz-1")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = json(again).await;
    assert_eq!((again["song_id"].as_str(), again["job_id"].as_str()), (Some(song_id.as_str()), Some(job_id.as_str())));

    // While it runs the analysis answers 202 with the job (or 200 if it is already done).
    let early = c.get(server.url(&format!("/v1/songs/{song_id}/analysis"))).send().await.unwrap();
    if early.status() == 202 {
        assert_eq!(early.headers()["retry-after"], "2");
        let p = json(early).await;
        assert_eq!(p["job_id"], job_id.as_str());
        assert!(["queued", "running"].contains(&p["status"].as_str().unwrap()), "{p}");
    } else {
        assert_eq!(early.status(), 200);
    }

    let job = wait_job(&c, &server, &job_id, Duration::from_secs(120)).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["song_id"], song_id.as_str());

    let song = json(c.get(server.url(&format!("/v1/songs/{song_id}"))).send().await.unwrap()).await;
    assert_eq!((song["status"].as_str(), song["filename"].as_str()), (Some("analyzed"), Some("waltz.wav")));
    assert_eq!(song["bytes"].as_i64().unwrap() as usize, bytes.len());

    let a = json(c.get(server.url(&format!("/v1/songs/{song_id}/analysis"))).send().await.unwrap()).await;
    let bpm = a["bpm"].as_f64().unwrap();
    assert!((bpm / 96.0 - 1.0).abs() <= 0.02, "{bpm}");
    assert_eq!(a["time_signature"], "3/4");
    let f = timbre_engines::music::metrics::f_measure(&floats(&truth["beats"]), &floats(&a["beats"]));
    assert!(f >= 0.95, "beat F {f}");
    let df = timbre_engines::music::metrics::f_measure(&floats(&truth["downbeats"]), &floats(&a["downbeats"]));
    assert!(df >= 0.9, "downbeat F {df}");
    assert_eq!(a["energy"].as_array().unwrap().len(), a["beats"].as_array().unwrap().len());
    assert_eq!(a["waveform"]["url"], format!("/v1/songs/{song_id}/waveform"));
    assert_eq!(a["waveform"]["peaks_per_second"], 50);
    assert!(!a["genre"].as_array().unwrap().is_empty() && !a["mood"].as_array().unwrap().is_empty(), "{a}");
    let duration = a["duration"].as_f64().unwrap();
    assert_eq!(a["sections"][0]["start"], 0.0);
    assert_eq!(a["sections"].as_array().unwrap().last().unwrap()["end"].as_f64().unwrap(), duration);
    for key in ["sample_rate", "bpm_confidence", "loudness_lufs"] {
        assert!(a[key].is_number(), "{key} in {a}");
    }

    // Waveform: audiowaveform's JSON, 50 min/max pairs a second.
    let w = json(c.get(server.url(&format!("/v1/songs/{song_id}/waveform"))).send().await.unwrap()).await;
    assert_eq!((w["version"].as_u64(), w["channels"].as_u64(), w["bits"].as_u64()), (Some(2), Some(1), Some(8)));
    let length = w["length"].as_u64().unwrap() as f64;
    assert!((length - duration * 50.0).abs() <= 2.0, "{length} pixels for {duration} s");
    assert_eq!(w["data"].as_array().unwrap().len() as f64, 2.0 * length);

    // Clip plan: covers the song, cuts on beats, lengths within bounds.
    let plan =
        json(c.get(server.url(&format!("/v1/songs/{song_id}/clips?min_sec=3&max_sec=6"))).send().await.unwrap()).await;
    let clips = plan["clips"].as_array().unwrap();
    assert_eq!(clips[0]["start"], 0.0);
    assert_eq!(clips.last().unwrap()["end"].as_f64().unwrap(), duration);
    let beats = floats(&a["beats"]);
    for (i, clip) in clips.iter().enumerate() {
        let (s, d) = (clip["start"].as_f64().unwrap(), clip["duration"].as_f64().unwrap());
        assert!((3.0 - 1e-6..=6.0 + 1e-6).contains(&d), "{clip}");
        if i > 0 {
            assert!(beats.iter().any(|b| (b - s).abs() < 0.002), "clip {i} starts off-beat: {clip}");
            assert_eq!(clips[i - 1]["end"], clip["start"]);
        }
    }
    for (q, param) in [("min_sec=abc", "min_sec"), ("min_sec=5&max_sec=4", "max_sec"), ("min_sec=0", "min_sec")] {
        let r = c.get(server.url(&format!("/v1/songs/{song_id}/clips?{q}"))).send().await.unwrap();
        let e = assert_envelope(r, 422, "invalid_value").await;
        assert_eq!(e["error"]["param"], param, "{q}");
    }

    let list = json(c.get(server.url("/v1/songs?limit=5")).send().await.unwrap()).await;
    assert_eq!(list["data"][0]["id"], song_id.as_str());
    assert_envelope(c.get(server.url("/v1/songs?limit=0")).send().await.unwrap(), 422, "invalid_value").await;

    // Delete: the row and every blob go; the id is then unknown.
    let store = server.state.store.get().unwrap();
    let prefix = format!("songs/{song_id}/");
    let before: Vec<_> = store.blobs.list(&prefix).try_collect().await.unwrap();
    assert_eq!(before.len(), 2, "original and waveform: {before:?}");
    let del = json(c.delete(server.url(&format!("/v1/songs/{song_id}"))).send().await.unwrap()).await;
    assert_eq!(del["deleted"], true);
    let after: Vec<_> = store.blobs.list(&prefix).try_collect().await.unwrap();
    assert!(after.is_empty(), "{after:?}");
    assert_envelope(c.get(server.url(&format!("/v1/songs/{song_id}"))).send().await.unwrap(), 404, "not_found").await;
    assert_envelope(c.delete(server.url(&format!("/v1/songs/{song_id}"))).send().await.unwrap(), 404, "not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_silent_and_unsupported_uploads_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = songs_server(dir.path()).await;
    let c = client();

    // Not audio, silence: accepted (the format is checked by name), then the job fails at once
    // with the reason, and the analysis says so; the queue goes on.
    let garbage = b"ID3 this is not an mp3 at all, only text pretending to be one".to_vec();
    let silent = wav(&vec![0.0; 16_000 * 8], 16_000);
    for (name, bytes, reason) in [("broken.mp3", garbage, "not usable audio"), ("quiet.wav", silent, "silent")] {
        let r = upload(&c, &server, "/v1/songs", name, bytes, None).await;
        assert_eq!(r.status(), 202, "{name}");
        let created = json(r).await;
        let job = wait_job(&c, &server, created["job_id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(job["status"], "failed", "{name}: {job}");
        assert_eq!(job["attempts"], 1, "{name}: no retries for bad input");
        assert!(job["error"].as_str().unwrap().contains(reason), "{name}: {job}");
        let a = c
            .get(server.url(&format!("/v1/songs/{}/analysis", created["song_id"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        let e = assert_envelope(a, 422, "analysis_failed").await;
        assert!(e["error"]["message"].as_str().unwrap().contains(reason), "{e}");
        let s = json(
            c.get(server.url(&format!("/v1/songs/{}", created["song_id"].as_str().unwrap()))).send().await.unwrap(),
        )
        .await;
        assert_eq!(s["status"], "failed");
    }

    // Wrong format, missing file: refused before anything is stored.
    let r = upload(&c, &server, "/v1/songs", "notes.txt", b"hello".to_vec(), None).await;
    let e = assert_envelope(r, 415, "unsupported_media_type").await;
    assert_eq!(e["error"]["param"], "file");
    let r = c.post(server.url("/v1/songs")).multipart(Form::new().text("x", "y")).send().await.unwrap();
    assert_envelope(r, 400, "missing_file").await;
    assert_envelope(c.get(server.url("/v1/songs/not-a-song")).send().await.unwrap(), 404, "not_found").await;

    // SonoTag's alias stores the song the same way and names the file.
    let r = upload(&c, &server, "/upload_audio", "quiet.wav", wav(&vec![0.0; 16_000 * 4], 16_000), None).await;
    assert_eq!(r.status(), 202);
    let body = json(r).await;
    assert_eq!(body["filename"], "quiet.wav");
    assert!(body["song_id"].as_str().unwrap().len() == 32);
}
