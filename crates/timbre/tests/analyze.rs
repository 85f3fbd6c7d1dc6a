//! `timbre analyze` as a user runs it: a rendered test song (scripts/testdata/music short) in, the
//! analysis out (text and JSON), clear errors for files that are not songs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{stdout_of, timbre};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn song(id: &str) -> (PathBuf, serde_json::Value) {
    let dir = std::env::var("TIMBRE_MUSIC_TESTDATA").map(PathBuf::from).unwrap_or_else(|_| {
        let cache = std::env::var("TIMBRE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/timbre"));
        cache.join("testdata/music/short")
    });
    let truth = std::fs::read_to_string(dir.join(format!("{id}.json")))
        .unwrap_or_else(|e| panic!("{}: {e}; render the songs with `scripts/testdata/music short`", dir.display()));
    (dir.join(format!("{id}.wav")), serde_json::from_str(&truth).unwrap())
}

/// A 16-bit mono WAV, through the project's own encoder.
fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    timbre_audio::encode(samples, rate, timbre_audio::OutputFormat::Wav).unwrap()
}

#[test]
fn analyze_reports_tempo_beats_meter_loudness_genre_and_mood() {
    let (path, truth) = song("waltz-96");
    let models = repo().join("models");
    let (code, out, err) = stdout_of(timbre().arg("analyze").arg(&path).arg("--json").arg("--models-dir").arg(&models));
    assert_eq!(code, 0, "{err}");
    let a: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let bpm = a["bpm"].as_f64().unwrap();
    assert!((bpm / truth["bpm"].as_f64().unwrap() - 1.0).abs() <= 0.02, "{bpm} BPM");
    assert_eq!(a["time_signature"], "3/4");
    let beats = a["beats"].as_array().unwrap().len();
    let true_beats = truth["beats"].as_array().unwrap().len();
    assert!(beats.abs_diff(true_beats) <= 2, "{beats} beats vs {true_beats}");
    assert_eq!(a["energy"].as_array().unwrap().len(), beats);
    let lufs = a["loudness_lufs"].as_f64().unwrap();
    assert!((-40.0..-5.0).contains(&lufs), "{lufs}");
    assert_eq!(a["sample_rate"], 44100);
    // Genre and mood come from the AudioSet tagger (models/ced-tiny), ranked.
    let genre = a["genre"].as_array().unwrap();
    assert!(!genre.is_empty() && !a["mood"].as_array().unwrap().is_empty(), "{a}");
    let scores: Vec<f64> = genre.iter().map(|g| g["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(a["sections"].as_array().unwrap().first().unwrap()["start"].as_f64().unwrap() == 0.0);

    let (code, text, _) =
        stdout_of(timbre().arg("analyze").arg(&path).arg("--no-tags").arg("--models-dir").arg(&models));
    assert_eq!(code, 0);
    assert!(text.contains("BPM") && text.contains("3/4") && text.contains("LUFS"), "{text}");
    assert!(!text.contains("genre"), "--no-tags skips genre: {text}");
}

#[test]
fn analyze_rejects_silence_noise_files_and_garbage_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.wav");
    std::fs::write(&silent, wav(&vec![0.0; 16_000 * 6], 16_000)).unwrap();
    let garbage = dir.path().join("song.mp3");
    std::fs::write(&garbage, b"this is not an mp3 at all, just text pretending").unwrap();
    let short = dir.path().join("short.wav");
    std::fs::write(&short, wav(&vec![1000.0 / 32768.0; 16_000], 16_000)).unwrap();
    for (file, expect) in [(&silent, "silent"), (&garbage, "song.mp3"), (&short, "at least")] {
        let (code, _, err) = stdout_of(timbre().arg("analyze").arg(file).arg("--no-tags"));
        assert_eq!(code, 1, "{}: {err}", file.display());
        assert!(err.contains(expect), "{}: {err}", file.display());
    }
}
