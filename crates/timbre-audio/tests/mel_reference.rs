//! The log-mel spectrogram against `scripts/reference/mel_reference.py` (a numpy
//! re-implementation of Whisper's `log_mel_spectrogram`).
#![allow(clippy::unwrap_used)]

mod common;

use timbre_audio::log_mel_spectrogram;

fn read_f32(name: &str) -> Vec<f32> {
    common::fixture(name).chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn check(n_mels: usize) {
    let input = read_f32("mel_input_16k.f32");
    let expected = read_f32(&format!("mel_expected_{n_mels}.f32"));
    assert_eq!(input.len(), 16_000);
    let (mel, frames) = log_mel_spectrogram(&input, n_mels).unwrap();
    assert_eq!(frames, 100);
    assert_eq!(mel.len(), expected.len());
    let max_diff = mel.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("n_mels={n_mels}: max |rust - python| = {max_diff:e}");
    assert!(max_diff <= 1e-4, "max abs diff {max_diff} > 1e-4");
    // The fixture includes digital silence, so the (max - 8) floor must be hit somewhere.
    let floor = expected.iter().copied().fold(f32::INFINITY, f32::min);
    assert!(mel.iter().any(|&v| (v - floor).abs() < 1e-6));
}

#[test]
fn whisper_log_mel_80_matches_reference() {
    check(80);
}

#[test]
fn whisper_log_mel_128_matches_reference() {
    check(128);
}
