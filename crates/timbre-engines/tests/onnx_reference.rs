//! The real CED-tiny and Silero VAD models, run through the engine actors, against outputs that
//! Python onnxruntime produced for the same inputs (`scripts/reference/ort_fixtures.py`).
//! Needs `scripts/fetch-runtime` and `scripts/fetch-models` (run by `make test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use timbre_engines::ced::{CedTagger, Windows};
use timbre_engines::manifest::Manifest;
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
