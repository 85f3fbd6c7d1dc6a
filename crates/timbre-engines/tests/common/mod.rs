//! Shared by the tests that run real models against Python onnxruntime fixtures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use timbre_engines::manifest::Manifest;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fetched model's manifest (`TIMBRE_MODELS_DIR`, else `models/`); `how` says what makes it.
pub fn manifest(name: &str, how: &str) -> Manifest {
    let dir = std::env::var_os("TIMBRE_MODELS_DIR").map_or_else(|| root().join("models"), PathBuf::from);
    let path = dir.join(name).join("model.toml");
    Manifest::from_file(&path).unwrap_or_else(|e| panic!("{e}: run {how} first"))
}

/// Little-endian f32 samples from `tests/fixtures/onnx/<name>`.
pub fn f32_file(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(root().join("tests/fixtures/onnx").join(name)).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A JSON fixture from `tests/fixtures/onnx/<name>`.
pub fn fixture(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/onnx").join(name)).unwrap()).unwrap()
}
