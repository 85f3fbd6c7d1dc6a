//! Resampling accuracy: level, pitch, phase and length of a tone through rate changes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{middle, rms, tone, zero_crossing_frequency};
use timbre_audio::resample;

fn check(freq: f64, from: u32, to: u32, freq_tolerance: f64) {
    let input = tone(freq, from, 1.0, 0.5);
    let out = resample(&input, from, to).unwrap();
    let expected_len = (input.len() as f64 * f64::from(to) / f64::from(from)).round() as i64;
    assert!((out.len() as i64 - expected_len).abs() <= 1, "{from}->{to}: {} samples", out.len());

    let body = middle(&out, to, 0.05);
    let level = rms(body) / (0.5 / 2f64.sqrt());
    assert!((level - 1.0).abs() < 0.01, "{from}->{to}: relative RMS {level}");
    let measured = zero_crossing_frequency(body, to);
    assert!((measured - freq).abs() < freq_tolerance, "{from}->{to}: frequency {measured}");

    // Phase: the output must be the same tone sampled at the new rate, not a delayed copy.
    let ideal = tone(freq, to, 1.0, 0.5);
    let margin = (f64::from(to) * 0.05) as usize;
    let worst = (margin..out.len().min(ideal.len()) - margin).map(|i| (out[i] - ideal[i]).abs()).fold(0f32, f32::max);
    assert!(worst < 0.005, "{from}->{to}: max deviation from the ideal tone {worst}");
}

#[test]
fn one_khz_44k1_to_16k() {
    check(1000.0, 44_100, 16_000, 0.01);
}

#[test]
fn one_khz_16k_to_48k() {
    check(1000.0, 16_000, 48_000, 0.01);
}

#[test]
fn odd_ratios_keep_level_and_pitch() {
    check(440.0, 20_000, 22_050, 0.01);
    check(440.0, 22_050, 24_000, 0.01);
    // 3 kHz is 75 % of the 4 kHz band: the level check proves the filter's passband reaches
    // that far. Zero crossings of 2.7 samples per period are measured less precisely.
    check(3000.0, 48_000, 8000, 0.1);
}

#[test]
fn same_rate_is_identity_and_lengths_add_up() {
    let x = tone(100.0, 8000, 0.5, 0.3);
    assert_eq!(resample(&x, 8000, 8000).unwrap(), x);
    // Piecewise resampling must not drift: lengths round to nearest.
    for len in [1usize, 2, 3, 147, 441, 1000, 4095, 4096, 4097] {
        let out = resample(&vec![0.1; len], 44_100, 16_000).unwrap();
        let expected = ((len as f64) * 16_000.0 / 44_100.0).round().max(1.0) as usize;
        assert_eq!(out.len(), expected, "len {len}");
    }
}
