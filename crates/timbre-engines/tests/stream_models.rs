//! The stream-classifier engine on the models `scripts/train-stream-demo` builds: Signify's
//! `[1,1,21,3] → [1,26]` interface against Python onnxruntime
//! (`scripts/reference/stream_fixtures.py`), the window and recurrent demo layouts, and a
//! model that cannot load. Needs `scripts/fetch-runtime` and `scripts/train-stream-demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use timbre_engines::manifest::Manifest;
use timbre_engines::stream::{HAND, Layout, StreamClassifier};

mod common;

fn manifest(name: &str) -> Manifest {
    common::manifest(name, "scripts/train-stream-demo")
}

fn fixture_frames() -> Vec<Vec<f32>> {
    common::f32_file("stream_letters_input.f32").chunks_exact(HAND).map(<[f32]>::to_vec).collect()
}

#[test]
fn signify_shaped_model_matches_python_onnxruntime() {
    let engine = StreamClassifier::load(&manifest("signify-letters-test"), 2, &|_| {}).unwrap();
    assert_eq!(engine.labels.len(), 26);
    assert_eq!(engine.spec.layout, Layout::Frame);
    let fx = common::fixture("stream_letters_outputs.json");
    let frames = fixture_frames();
    assert_eq!(frames.len(), fx["frames"].as_u64().unwrap() as usize);
    let mut worst = 0.0f32;
    let mut inference = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        // Each frame in a fresh session: the raw top label and probabilities, no smoothing.
        let mut session = engine.session();
        let input = session.push_frame(std::slice::from_ref(frame)).unwrap();
        let out = engine.infer_blocking(input).unwrap();
        inference.push(out.inference);
        let mut probabilities = out.value.scores.clone();
        timbre_engines::stream::softmax(&mut probabilities);
        let expected: Vec<f32> =
            fx["probabilities"][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let diff = probabilities.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        worst = worst.max(diff);
        let prediction = session.apply(out.value.scores, out.value.state);
        let (label, _) = prediction.raw.unwrap();
        assert_eq!(engine.labels[label], fx["top"][i].as_str().unwrap(), "frame {i}");
    }
    assert!(worst <= 1e-4, "max abs probability difference {worst}");
    // The 26 posed letters come back in order (their poses were moved, resized and tilted).
    let letters: String = fx["top"].as_array().unwrap()[..26].iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(letters, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    inference.sort();
    let p99 = inference[inference.len() * 99 / 100];
    assert!(p99.as_secs_f64() < 0.05, "inference p99 {p99:?} (debug build, shared machine: generous bound)");
}

/// Signify's model answers in microseconds, so frames run on the caller's thread; that path
/// must give exactly what the worker threads give.
#[test]
fn fast_model_runs_inline_with_the_same_answers_as_the_actor() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let engine = StreamClassifier::load(&manifest("signify-letters-test"), 1, &|_| {}).unwrap();
    assert!(engine.runs_inline(), "a microsecond model should run inline");
    for frame in fixture_frames().iter().take(30) {
        let input = engine.session().push_frame(std::slice::from_ref(frame)).unwrap();
        let inline = runtime.block_on(engine.infer(input.clone())).unwrap();
        assert_eq!(inline.queued, std::time::Duration::ZERO, "no queue on the inline path");
        assert_eq!(engine.queue_depth(), 0);
        let actor = engine.infer_blocking(input).unwrap();
        assert_eq!(inline.value.scores, actor.value.scores);
    }
}

#[test]
fn window_and_recurrent_demo_models_load_and_carry_state() {
    let window = StreamClassifier::load(&manifest("gesture-demo"), 1, &|_| {}).unwrap();
    assert_eq!((window.spec.layout, window.spec.window), (Layout::Window, 16));
    let frames = fixture_frames();
    let mut session = window.session();
    let mut sent = 0;
    for (i, frame) in frames.iter().cycle().take(24).enumerate() {
        if let Some(input) = session.push_frame(std::slice::from_ref(frame)) {
            assert_eq!(input.keypoints.len(), 16 * HAND);
            let out = window.infer_blocking(input).unwrap().value;
            assert_eq!(out.scores.len(), window.labels.len());
            assert!((out.scores.iter().sum::<f32>() - 1.0).abs() < 1e-4, "probabilities");
            sent += 1;
            assert!(i == 15 || (i > 15 && (i - 15) % window.spec.stride == 0), "inference at frame {i}");
        }
    }
    assert_eq!(sent, 1 + (24 - 16) / window.spec.stride);

    let rnn = StreamClassifier::load(&manifest("gesture-demo-rnn"), 1, &|_| {}).unwrap();
    let mut session = rnn.session();
    let first = session.push_frame(std::slice::from_ref(&frames[0])).unwrap();
    assert_eq!(first.state, vec![vec![0.0; 126]]);
    let out = rnn.infer_blocking(first).unwrap().value;
    assert!(out.state[0].iter().any(|v| *v != 0.0), "the state moved");
    session.apply(out.scores, out.state.clone());
    assert_eq!(session.push_frame(std::slice::from_ref(&frames[0])).unwrap().state, out.state);
}

#[test]
fn a_broken_stream_model_fails_with_the_reason() {
    let good = manifest("signify-letters-test");
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.onnx", "labels.txt"] {
        std::fs::copy(good.dir.join(f), dir.path().join(f)).unwrap();
    }
    let mut m = good.clone();
    m.dir = dir.path().to_path_buf();
    // 25 labels for 26 scores: the warm-up catches it.
    let labels: String = (b'A'..=b'Y').map(|c| format!("{}\n", c as char)).collect();
    std::fs::write(dir.path().join("labels.txt"), labels).unwrap();
    let err = StreamClassifier::load(&m, 1, &|_| {}).err().unwrap();
    assert!(err.contains("26 scores") && err.contains("25 labels"), "{err}");
    // A wrong input name names the inputs the model has.
    let mut wrong = m.clone();
    wrong.stream.as_mut().unwrap().insert("input".into(), toml::Value::String("keypoints".into()));
    let err = StreamClassifier::load(&wrong, 1, &|_| {}).err().unwrap();
    assert!(err.contains("no input `keypoints`") && err.contains("input"), "{err}");
    // Not an ONNX file at all.
    std::fs::write(dir.path().join("model.onnx"), b"not onnx").unwrap();
    assert!(StreamClassifier::load(&m, 1, &|_| {}).is_err());
}
