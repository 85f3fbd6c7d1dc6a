//! `timbre transcribe` without a server: the real binary, the real Whisper model, speech
//! synthesised by espeak-ng (so the expected words are the sentence that was spoken).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog.";

fn models_dir() -> tempfile::TempDir {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let dir = tempfile::tempdir().unwrap();
    for name in ["whisper-tiny.en", "silero-vad"] {
        std::os::unix::fs::symlink(models.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn speak(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng is needed (apt-get install espeak-ng)")
        .success();
    assert!(ok);
    path
}

fn heard(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["quick", "brown", "fox", "lazy", "dog"].iter().filter(|w| lower.contains(*w)).count() >= 4
}

#[test]
fn transcribes_files_in_every_format_without_a_server() {
    let models = models_dir();
    let work = tempfile::tempdir().unwrap();
    let wav = speak(work.path(), "fox.wav", SENTENCE);
    let run = |args: &[&str]| {
        let mut c = timbre();
        c.arg("transcribe").arg("--models-dir").arg(models.path()).args(args);
        stdout_of(&mut c)
    };

    let (code, out, err) = run(&["--beam-size", "5", "--language", "en", wav.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(heard(&out) && out.ends_with('\n') && out.lines().count() == 1, "{out}");

    let (code, out, err) = run(&["--format", "srt", wav.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("1\n00:00:00,") && out.contains(" --> ") && heard(&out), "{out}");

    let (code, out, err) = run(&["--format", "verbose_json", "--word-timestamps", wav.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["language"], "english");
    let words: Vec<&str> = v["words"].as_array().unwrap().iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert!(heard(&words.join(" ")), "{words:?}");

    // Several files into a directory; a missing one fails alone (exit 1), the other is written.
    let out_dir = work.path().join("out");
    let (code, _, err) = run(&[
        "--format",
        "vtt",
        "--output-dir",
        out_dir.to_str().unwrap(),
        wav.to_str().unwrap(),
        work.path().join("missing.wav").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.wav"), "{err}");
    let vtt = std::fs::read_to_string(out_dir.join("fox.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:00.") && heard(&vtt), "{vtt}");

    let (code, _, err) = run(&["--language", "klingon", wav.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--language"), "{err}");
    let (code, _, err) = run(&["--translate", wav.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("English-only"), "{err}");
    let (code, _, err) = run(&["--model", "nope", wav.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no speech-to-text model named `nope`"), "{err}");
}
