//! The real CED-tiny and Silero VAD models, run through the engine actors, against outputs that
//! Python onnxruntime produced for the same inputs (`scripts/reference/ort_fixtures.py`).
//! Needs `scripts/fetch-runtime` and `scripts/fetch-models` (run by `make test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use timbre_engines::ced::{CedTagger, Windows};
use timbre_engines::manifest::Manifest;
use timbre_engines::tagging::Tagger;
use timbre_engines::tagging::floor::fill_digital_silence;
use timbre_engines::vad::{CHUNK, SileroVad, VadState};

mod common;

use common::{f32_file, fixture};

fn manifest(name: &str) -> Manifest {
    common::manifest(name, "`make setup` (scripts/fetch-models)")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn ced_tiny_matches_python_onnxruntime() {
    let tagger = CedTagger::load(&manifest("ced-tiny"), 1, 1, &|_| {}).unwrap();
    let input = f32_file("ced_input.f32");
    let expected = floats(&fixture("ced_logits.json")["values"]);
    let got = tagger.score_blocking(Windows { samples: input.clone(), batch: 1 }).unwrap().value;
    let diff = max_abs_diff(&got, &expected);
    assert!(diff <= 1e-4, "max abs diff {diff}");
    // Probabilities as the graph emits them (no second sigmoid): the top label is "Sine wave".
    let top = got.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert_eq!(tagger.labels[top], "Sine wave");
    assert!(got.iter().all(|p| (0.0..=1.0).contains(p)));
    // A batch of two identical windows gives the same scores twice.
    let mut two = input.clone();
    two.extend_from_slice(&input);
    let batched = tagger.score_blocking(Windows { samples: two, batch: 2 }).unwrap().value;
    assert!(max_abs_diff(&batched[..527], &expected) <= 1e-4);
    assert!(max_abs_diff(&batched[527..], &expected) <= 1e-4);
}

/// Exact zeros reach the model over the −90 dBFS floor (`tagging::floor`): CED-tiny hears a
/// quiet room where it would hear nothing it was trained on. Fails if the tagger stops applying
/// the floor, or applies it to the wrong samples.
#[test]
fn the_tagger_scores_digital_silence_over_a_noise_floor() {
    let engine = Arc::new(CedTagger::load(&manifest("ced-tiny"), 1, 1, &|_| {}).unwrap());
    let tagger = Tagger::new("ced-tiny", Arc::clone(&engine));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let silence = vec![0f32; 16_000 * 3];
    let got = runtime.block_on(tagger.mean_scores(&silence, 1)).unwrap().value;
    let mut floored = silence.clone();
    fill_digital_silence(&mut floored, 0);
    let want = engine.score_blocking(Windows { samples: floored, batch: 1 }).unwrap().value;
    assert!(max_abs_diff(&got, &want) <= 1e-6, "the tagger's window is not the floored one");
    let raw = engine.score_blocking(Windows { samples: silence, batch: 1 }).unwrap().value;
    let at = engine.labels.iter().position(|l| l == "Silence").unwrap();
    assert!(got[at] - raw[at] > 0.1, "Silence {} over the floor vs {} on exact zeros", got[at], raw[at]);
    // A signal without exact zeros is scored as received.
    let tone: Vec<f32> = (0..16_000 * 3).map(|i| 0.3 * (i as f32 * 0.2).sin() + 0.01).collect();
    let got = runtime.block_on(tagger.mean_scores(&tone, 1)).unwrap().value;
    let want = engine.score_blocking(Windows { samples: tone, batch: 1 }).unwrap().value;
    assert!(max_abs_diff(&got, &want) <= 1e-6);
}

#[test]
fn silero_vad_matches_python_onnxruntime_with_carried_state() {
    let vad = SileroVad::load(&manifest("silero-vad"), 1, &|_| {}).unwrap();
    let input = f32_file("vad_input.f32");
    let fx = fixture("vad_outputs.json");
    let expected = floats(&fx["probabilities"]);
    let expected_state = floats(&fx["final_state"]); // [2, 1, 128], flattened

    // All chunks in one call…
    let whole = vad.probabilities_blocking(input.clone(), VadState::default()).unwrap().value;
    assert!(max_abs_diff(&whole.probabilities, &expected) <= 1e-4, "{:?} vs {expected:?}", whole.probabilities);
    assert!(max_abs_diff(&whole.state.state, &expected_state) <= 1e-4);

    // …and chunk by chunk, carrying the state as a stream does: identical.
    let mut state = VadState::default();
    let mut streamed = Vec::new();
    for chunk in input.chunks(CHUNK) {
        let r = vad.probabilities_blocking(chunk.to_vec(), state).unwrap().value;
        streamed.extend(r.probabilities);
        state = r.state;
    }
    assert!(max_abs_diff(&streamed, &expected) <= 1e-4);
    assert!(expected[4] > 0.9 && expected[0] < 0.01, "fixture sanity: speech-like middle, silent start");

    let err = vad.probabilities_blocking(vec![0.0; 100], VadState::default()).unwrap_err().to_string();
    assert!(err.contains("multiple of 512"), "{err}");
}

/// Noise bursts every half second over a soft chord, at BeatNet's 22.05 kHz: features with
/// onsets and sustained stretches.
fn drum_and_chord(seconds: f32) -> Vec<f32> {
    let sr = 22_050.0;
    let mut seed = 0x2545_f491_u32;
    (0..(seconds * sr) as usize)
        .map(|i| {
            let t = i as f32 / sr;
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = seed as f32 / u32::MAX as f32 - 0.5;
            let since_hit = t % 0.5;
            let chord: f32 = [220.0f32, 277.2, 329.6].iter().map(|f| (std::f32::consts::TAU * f * t).sin()).sum();
            noise * (-since_hit * 30.0).exp() + 0.05 * chord
        })
        .collect()
}

#[test]
fn beatnet_in_rust_matches_onnx_runtime_frame_by_frame() {
    use ort::value::Tensor;
    use timbre_engines::music::beatnet::BeatNet;
    use timbre_engines::music::crnn::{Crnn, FEATURES};
    use timbre_engines::onnx::OnnxSession;

    let m = manifest("beatnet");
    let net = BeatNet::load(&m, &|_| {}).unwrap();
    let signal = drum_and_chord(6.0);
    let feats = net.features(&signal);
    let frames = feats.len() / FEATURES;
    let onnx: Vec<_> = m.files.iter().filter(|f| f.role.as_deref() == Some("onnx")).map(|f| m.path_of(f)).collect();
    assert_eq!(onnx.len(), 3);
    let mut mean_beat = vec![0f32; frames];
    for path in &onnx {
        let native = Crnn::from_onnx(&std::fs::read(path).unwrap()).unwrap().probabilities(&feats);
        let mut session = OnnxSession::open(path, 1).unwrap();
        let (mut hidden, mut cell) = (vec![0f32; 300], vec![0f32; 300]);
        let mut worst = 0f32;
        for t in 0..frames {
            let f =
                Tensor::from_array(([1usize, 1, FEATURES], feats[t * FEATURES..(t + 1) * FEATURES].to_vec())).unwrap();
            let h = Tensor::from_array(([2usize, 1, 150], hidden.clone())).unwrap();
            let c = Tensor::from_array(([2usize, 1, 150], cell.clone())).unwrap();
            let out = session.session.run(ort::inputs!["features" => f, "hidden" => h, "cell" => c]).unwrap();
            let (_, p) = out["probabilities"].try_extract_tensor::<f32>().unwrap();
            for k in 0..3 {
                worst = worst.max((p[k] - native[t][k]).abs());
            }
            hidden = out["hidden_out"].try_extract_tensor::<f32>().unwrap().1.to_vec();
            cell = out["cell_out"].try_extract_tensor::<f32>().unwrap().1.to_vec();
        }
        assert!(worst <= 1e-4, "{}: max abs diff {worst} over {frames} frames", path.display());
        for (m, p) in mean_beat.iter_mut().zip(&native) {
            *m += (p[0] + p[1]) / 3.0;
        }
    }
    // The ensemble average is what BeatNet::activations reports.
    let acts = net.activations(&signal).unwrap();
    assert!(max_abs_diff(&acts.beat, &mean_beat) <= 1e-6);
    // And it hears the half-second hits: the beat activation is higher on them than between.
    let hits: Vec<usize> = (50..frames - 13).step_by(25).collect();
    let on: f32 = hits.iter().map(|&t| acts.beat[t - 2..=t + 2].iter().copied().fold(0.0, f32::max)).sum();
    let off: f32 = hits.iter().map(|&t| acts.beat[t + 12]).sum();
    assert!(on > 3.0 * off, "beat activation on the hits {on} vs between {off}");
}

#[test]
fn another_graph_is_not_taken_for_beatnet() {
    use timbre_engines::music::crnn::Crnn;
    let m = manifest("silero-vad");
    let onnx = m.files.iter().find(|f| f.role.as_deref() == Some("onnx")).unwrap();
    let err = Crnn::from_onnx(&std::fs::read(m.path_of(onnx)).unwrap()).err().unwrap();
    assert!(err.contains("not BeatNet's graph"), "{err}");
}
