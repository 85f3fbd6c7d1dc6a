//! Accuracy of the music analysis on the short test songs (`scripts/testdata/music short`:
//! chord charts rendered with mma + fluidsynth, truth from the charts): beat F-measure (mir_eval's
//! definition), tempo within 2 %, downbeat F-measure and meter, against the targets and
//! against librosa's `beat_track` on the same songs (`tests/data/music_librosa.json`, written by
//! `scripts/reference/music_reference.py --songs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use timbre_engines::Manifest;
use timbre_engines::music::beatnet::BeatNet;
use timbre_engines::music::{self, Hooks, metrics};

fn repo_models() -> PathBuf {
    std::env::var("TIMBRE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn songs_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TIMBRE_MUSIC_TESTDATA") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("TIMBRE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/timbre"));
    cache.join("testdata/music/short")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn short_songs_meet_the_accuracy_targets() {
    let dir = songs_dir();
    let index = std::fs::read_to_string(dir.join("index.json"))
        .unwrap_or_else(|e| panic!("{}: {e}; render the songs with `scripts/testdata/music short`", dir.display()));
    let index: Value = serde_json::from_str(&index).unwrap();
    let librosa: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/music_librosa.json")).unwrap(),
    )
    .unwrap();
    let manifest =
        Manifest::from_file(&repo_models().join("beatnet/model.toml")).expect("models/beatnet (scripts/fetch-models)");
    let beatnet = BeatNet::load(&manifest, &|_| {}).unwrap();
    let (mut beat_fs, mut down_fs, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for id in index["songs"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()) {
        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{id}.json"))).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join(format!("{id}.wav"))).unwrap();
        let decoded = timbre_audio::decode(&bytes, Some("wav")).unwrap();
        let report = music::analyze_decoded(&decoded, Some(&beatnet), &Hooks::default()).unwrap();
        let a = &report.analysis;
        let beat_f = metrics::f_measure(&floats(&truth["beats"]), &a.beats);
        let down_f = metrics::f_measure(&floats(&truth["downbeats"]), &a.downbeats);
        let tempi = floats(&truth["tempi"]);
        let bpm_ok = tempi.iter().any(|t| (a.bpm / t - 1.0).abs() <= 0.02);
        let meter = format!("{}/4", truth["meter"].as_u64().unwrap());
        eprintln!(
            "{id:28} beat F {beat_f:.3}  downbeat F {down_f:.3}  bpm {:.1} (truth {tempi:?})  {} (truth {meter})",
            a.bpm, a.time_signature
        );
        if !bpm_ok {
            failures.push(format!("{id}: {:.1} BPM, truth {tempi:?}", a.bpm));
        }
        if a.time_signature != meter {
            failures.push(format!("{id}: meter {} vs {meter}", a.time_signature));
        }
        if std::env::var("MUSIC_DEBUG").is_ok() {
            eprintln!(
                "  est beats {:?}\n  true beats {:?}\n  est down {:?}\n  true down {:?}",
                a.beats, truth["beats"], a.downbeats, truth["downbeats"]
            );
        }
        if down_f < 0.9 {
            failures.push(format!("{id}: downbeat F {down_f:.3} < 0.90"));
        }
        assert!(a.loudness_lufs < -5.0 && a.loudness_lufs > -40.0, "{id}: {} LUFS", a.loudness_lufs);
        assert_eq!(a.energy.len(), a.beats.len());
        beat_fs.push(beat_f);
        down_fs.push(down_f);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let librosa_mean = librosa["mean_f"].as_f64().unwrap();
    eprintln!("mean beat F {:.3} (librosa {librosa_mean:.3}), mean downbeat F {:.3}", mean(&beat_fs), mean(&down_fs));
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(mean(&beat_fs) >= 0.95, "mean beat F {:.3} < 0.95", mean(&beat_fs));
    assert!(mean(&beat_fs) > librosa_mean, "mean beat F {:.3} not above librosa's {librosa_mean:.3}", mean(&beat_fs));
}
