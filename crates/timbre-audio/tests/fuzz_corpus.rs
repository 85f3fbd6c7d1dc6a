//! Replays every fuzzing input (seeds, the minimised corpus and saved crash artifacts) through
//! `decode`: each must return Ok or a typed error within a time bound, and the valid seed
//! files must decode. This keeps fuzz findings fixed without running the fuzzer.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timbre_audio::{AudioError, DecodeLimits, DecodeOptions, decode_with};

/// Generous for a debug build on a loaded 2-core machine; the inputs are at most a few KB.
const PER_FILE: Duration = Duration::from_secs(2);

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != ".gitkeep" && n != "README.md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn options() -> DecodeOptions {
    // The same settings as the fuzz target, so a replay reproduces what the fuzzer saw.
    DecodeOptions {
        limits: DecodeLimits { max_seconds: 600.0, max_samples: 1 << 24 },
        ffmpeg_fallback: false,
        ..DecodeOptions::default()
    }
}

fn replay(path: &Path) -> Result<timbre_audio::Decoded, AudioError> {
    let bytes = std::fs::read(path).unwrap();
    let started = Instant::now();
    let result = decode_with(&bytes, None, &options());
    let took = started.elapsed();
    assert!(took < PER_FILE, "{} took {took:?}", path.display());
    if let Ok(d) = &result {
        assert!(d.samples.iter().all(|s| s.is_finite()), "{}: non-finite samples", path.display());
        assert_eq!(d.samples.len() % usize::from(d.channels), 0, "{}", path.display());
    }
    result
}

#[test]
fn seed_files_decode() {
    let seeds = files("seeds/decode");
    assert!(seeds.len() >= 20, "seed inputs missing: {}", seeds.len());
    for path in &seeds {
        let name = path.file_name().unwrap().to_string_lossy();
        let result = replay(path);
        if name.starts_with("seed-") {
            let d = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(d.duration_s > 0.02, "{name}: {} s", d.duration_s);
        }
    }
}

#[test]
fn corpus_and_crash_artifacts_return_ok_or_typed_errors() {
    let mut count = 0;
    for dir in ["corpus/decode", "artifacts/decode"] {
        for path in files(dir) {
            // Any AudioError variant is a typed answer; what matters is no panic, no hang.
            let _ = replay(&path);
            count += 1;
        }
    }
    assert!(count > 0, "no fuzz corpus committed");
}

#[test]
fn ms_adpcm_step_overflow_is_a_typed_error() {
    // Found by the fuzzer: symphonia's MS-ADPCM decoder multiplies its unclamped step size
    // until it overflows (a panic with overflow checks on). decode must contain it.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/artifacts/decode/crash-55ceb9ff21ee3cd1b01a06a068f715eea180bd8a");
    let result = replay(&path);
    if cfg!(debug_assertions) {
        assert!(matches!(result, Err(AudioError::Corrupt { .. })), "{result:?}");
    } else {
        // Without overflow checks the arithmetic wraps: garbage, but bounded and typed.
        assert!(!matches!(result, Err(AudioError::Internal { .. })), "{result:?}");
    }
}
