//! The music DSP against librosa, pyloudnorm and mir_eval: `testdata/reference.json`, written
//! by `scripts/reference/music_reference.py`, describes each signal by formula and holds the
//! reference tools' outputs for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use super::{harmony, loudness, metrics, onset};

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/music/testdata/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference.json")).expect("valid JSON")
}

/// Interleaved float32 samples of a signal description (see the script's docstring).
fn synth(sig: &Value) -> (Vec<f32>, usize, u32) {
    let rate = sig["rate"].as_u64().unwrap() as u32;
    let ch = sig["channels"].as_u64().unwrap() as usize;
    let n = (sig["seconds"].as_f64().unwrap() * f64::from(rate)) as usize;
    let mut x = vec![vec![0f64; n]; ch];
    for p in sig["parts"].as_array().unwrap() {
        let f = |k: &str| p[k].as_f64().unwrap();
        let n0 = (f("start") * f64::from(rate)).floor() as usize;
        let n1 = ((f("end") * f64::from(rate)).floor() as usize).min(n);
        let decay = p.get("decay").and_then(Value::as_f64);
        let channels: Vec<usize> = match p.get("channel").and_then(Value::as_u64) {
            Some(c) => vec![c as usize],
            None => (0..ch).collect(),
        };
        for &c in &channels {
            for (k, slot) in x[c][n0..n1].iter_mut().enumerate() {
                let k = k as f64;
                let mut v = f("amp") * (2.0 * std::f64::consts::PI * f("freq") * k / f64::from(rate)).sin();
                if let Some(d) = decay {
                    v *= (-k / (d * f64::from(rate))).exp();
                }
                *slot += v;
            }
        }
    }
    let mut out = Vec::with_capacity(n * ch);
    for i in 0..n {
        for c in &x {
            out.push(c[i] as f32);
        }
    }
    (out, ch, rate)
}

#[test]
fn integrated_loudness_matches_pyloudnorm_and_ffmpeg() {
    for case in reference()["loudness"].as_array().unwrap() {
        let (x, ch, rate) = synth(&case["signal"]);
        let ours = loudness::integrated(&x, ch, rate).unwrap();
        let name = case["signal"]["name"].as_str().unwrap();
        let py = case["pyloudnorm"].as_f64().unwrap();
        assert!((ours - py).abs() < 0.01, "{name}: {ours:.3} LUFS vs pyloudnorm {py:.3}");
        if let Some(ff) = case["ffmpeg"].as_f64() {
            assert!((ours - ff).abs() < 0.15, "{name}: {ours:.3} LUFS vs ffmpeg ebur128 {ff:.1}");
        }
    }
    assert_eq!(loudness::integrated(&[0.0; 48_000], 1, 48_000), None, "silence has no loudness");
}

#[test]
fn onset_strength_matches_librosa() {
    let r = reference();
    let (y, _, _) = synth(&r["onset"]["signal"]);
    let lag = r["onset"]["lag_frames"].as_u64().unwrap() as usize;
    let want: Vec<f64> = r["onset"]["librosa"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let ours = onset::onsets(&y).unwrap().flux;
    let peak = want.iter().copied().fold(0.0, f64::max);
    // librosa shifts its envelope `lag` frames later ("center" compensation); ours is unshifted.
    let mut compared = 0;
    for (t, &w) in want.iter().enumerate().skip(lag) {
        let Some(&o) = ours.get(t - lag) else { break };
        assert!((f64::from(o) - w).abs() <= 1e-3 * peak, "frame {t}: ours {o} vs librosa {w}");
        compared += 1;
    }
    assert!(compared + lag + 2 >= want.len(), "compared {compared} of {} frames", want.len());
}

#[test]
fn mfcc_matches_librosa() {
    let r = reference();
    let (y, _, _) = synth(&r["mfcc"]["signal"]);
    let (power, frames) = timbre_audio::power_spectrogram(&y, harmony::N_FFT, harmony::HOP).unwrap();
    let ours = harmony::mfcc(&power, frames);
    let want = r["mfcc"]["librosa"].as_array().unwrap();
    assert_eq!(ours.len(), want.len());
    for (t, (o, w)) in ours.iter().zip(want).enumerate() {
        for (k, (a, b)) in o.iter().zip(w.as_array().unwrap()).enumerate() {
            let b = b.as_f64().unwrap();
            assert!((f64::from(*a) - b).abs() <= 0.05 + 1e-3 * b.abs(), "frame {t} coefficient {k}: {a} vs {b}");
        }
    }
}

#[test]
fn beat_f_measure_matches_mir_eval() {
    for case in reference()["beat_f"].as_array().unwrap() {
        let list = |k: &str| -> Vec<f64> { case[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
        let ours = metrics::f_measure(&list("reference"), &list("estimated"));
        let want = case["f"].as_f64().unwrap();
        assert!((ours - want).abs() < 1e-9, "{}: {ours} vs mir_eval {want}", case["name"]);
    }
}
