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

/// Where a reference fixture of `kind` (`onnx`, `tts`) is read from: `target/testdata/<kind>/`
/// when `make testdata` wrote it on this machine (`scripts/reference/ort_fixtures.py`,
/// `tts_fixtures.py`), else the committed `tests/fixtures/<kind>/`. ONNX Runtime's CPU kernels
/// differ by instruction set: CED-tiny's outputs move by ~3e-3 between an AVX-512 machine (where
/// the committed files were written) and an AVX2 one, thirty times the 1e-4 the comparison
/// allows, and hibari's int8 model gives audio only 0.75–0.95 correlated, while the peer and
/// timbre running the same library on the same machine agree.
pub fn fixture_path(kind: &str, name: &str) -> PathBuf {
    let local = root().join("target/testdata").join(kind).join(name);
    if local.is_file() { local } else { root().join("tests/fixtures").join(kind).join(name) }
}

/// Little-endian f32 samples of an ONNX reference fixture (see [`fixture_path`]).
pub fn f32_file(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture_path("onnx", name)).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A JSON ONNX reference fixture (see [`fixture_path`]).
pub fn fixture(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_path("onnx", name)).unwrap()).unwrap()
}
