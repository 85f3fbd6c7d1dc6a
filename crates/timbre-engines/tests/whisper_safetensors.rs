//! Hugging Face safetensors checkpoints run through the same model code as CTranslate2 ones:
//! the CT2 weights of whisper-tiny.en are rewritten here under Hugging Face's names and layout
//! (separate Q/K/V projections, no key bias, `model.` prefix, alignment heads in
//! generation_config.json), and both checkpoints must transcribe a clip identically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use timbre_engines::whisper::api::TranscribeOptions;
use timbre_engines::whisper::checkpoint::Checkpoint;
use timbre_engines::whisper::ct2::{self, DType, RawTensor};
use timbre_engines::whisper::transcriber::transcribe_blocking;

/// A tensor to write: HF name, dtype tag, shape, bytes.
type Out = (String, &'static str, Vec<usize>, Vec<u8>);

fn dtype_tag(d: DType) -> &'static str {
    match d {
        DType::F16 => "F16",
        DType::F32 => "F32",
        DType::BF16 => "BF16",
        other => panic!("unexpected {other:?}"),
    }
}

/// Rows `[from, to)` of a row-major tensor (first axis).
fn rows(t: &RawTensor, from: usize, to: usize) -> (Vec<usize>, Vec<u8>) {
    let row_bytes = t.data.len() / t.shape[0];
    let mut shape = t.shape.clone();
    shape[0] = to - from;
    (shape, t.data[from * row_bytes..to * row_bytes].to_vec())
}

fn hf_tensors(ct2: &BTreeMap<String, RawTensor>) -> Vec<Out> {
    let mut out = Vec::new();
    for (name, t) in ct2 {
        if t.shape.is_empty() {
            continue; // scalars (activation, head count…)
        }
        let tag = dtype_tag(t.dtype);
        let parts: Vec<&str> = name.split('/').collect();
        let leaf = |l: &str| {
            if l == "gamma" {
                "weight"
            } else if l == "beta" {
                "bias"
            } else {
                l
            }
            .to_string()
        };
        let mut push =
            |n: String, (shape, data): (Vec<usize>, Vec<u8>)| out.push((format!("model.{n}"), tag, shape, data));
        let whole = || (t.shape.clone(), t.data.clone());
        match parts.as_slice() {
            [s, c @ ("conv1" | "conv2"), l] => push(format!("{s}.{c}.{l}"), whole()),
            [s, "position_encodings", _] => push(format!("{s}.embed_positions.weight"), whole()),
            ["decoder", "embeddings", _] => push("decoder.embed_tokens.weight".into(), whole()),
            [s, "layer_norm", l] => push(format!("{s}.layer_norm.{}", leaf(l)), whole()),
            [s, layer, block, rest @ ..] => {
                let i = layer.strip_prefix("layer_").unwrap();
                let base = format!("{s}.layers.{i}");
                let d = t.shape[0] / if rest[0] == "linear_0" && *block == "self_attention" { 3 } else { 1 };
                match (*block, rest) {
                    ("self_attention", ["layer_norm", l]) => {
                        push(format!("{base}.self_attn_layer_norm.{}", leaf(l)), whole())
                    }
                    ("attention", ["layer_norm", l]) => {
                        push(format!("{base}.encoder_attn_layer_norm.{}", leaf(l)), whole())
                    }
                    ("ffn", ["layer_norm", l]) => push(format!("{base}.final_layer_norm.{}", leaf(l)), whole()),
                    ("ffn", ["linear_0", l]) => push(format!("{base}.fc1.{l}"), whole()),
                    ("ffn", ["linear_1", l]) => push(format!("{base}.fc2.{l}"), whole()),
                    ("self_attention", ["linear_1", l]) => push(format!("{base}.self_attn.out_proj.{l}"), whole()),
                    ("attention", ["linear_0", l]) => push(format!("{base}.encoder_attn.q_proj.{l}"), whole()),
                    ("attention", ["linear_2", l]) => push(format!("{base}.encoder_attn.out_proj.{l}"), whole()),
                    ("self_attention", ["linear_0", l]) => {
                        let a = format!("{base}.self_attn");
                        push(format!("{a}.q_proj.{l}"), rows(t, 0, d));
                        if *l == "weight" {
                            push(format!("{a}.k_proj.weight"), rows(t, d, 2 * d));
                        } else {
                            assert!(rows(t, d, 2 * d).1.iter().all(|&b| b == 0), "key bias is zero in CT2");
                        }
                        push(format!("{a}.v_proj.{l}"), rows(t, 2 * d, 3 * d));
                    }
                    ("attention", ["linear_1", l]) => {
                        let a = format!("{base}.encoder_attn");
                        let d = t.shape[0] / 2;
                        if *l == "weight" {
                            push(format!("{a}.k_proj.weight"), rows(t, 0, d));
                        }
                        push(format!("{a}.v_proj.{l}"), rows(t, d, 2 * d));
                    }
                    other => panic!("unmapped {name}: {other:?}"),
                }
            }
            _ => panic!("unmapped {name}"),
        }
    }
    out
}

fn write_safetensors(path: &Path, tensors: &[Out]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, tag, shape, data) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": tag, "shape": shape, "data_offsets": [offset, offset + data.len()]}),
        );
        offset += data.len();
    }
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    for (_, _, _, data) in tensors {
        bytes.extend(data);
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn safetensors_checkpoint_transcribes_identically() {
    let ct2_dir = common::root().join("models/whisper-tiny.en");
    let weights = ct2::load_dir(&ct2_dir).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(&dir.path().join("model.safetensors"), &hf_tensors(&weights.model.tensors));
    std::fs::copy(ct2_dir.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let generation = serde_json::json!({
        "alignment_heads": weights.config["alignment_heads"],
        "begin_suppress_tokens": weights.config["suppress_ids_begin"],
    });
    std::fs::write(dir.path().join("generation_config.json"), generation.to_string()).unwrap();
    drop(weights);

    let hf = Checkpoint::load(dir.path()).unwrap();
    let native = Checkpoint::load(&ct2_dir).unwrap();
    assert_eq!(hf.model.dims, native.model.dims);
    assert_eq!(hf.alignment_heads, native.alignment_heads);
    assert_eq!(hf.suppress_begin, native.suppress_begin);

    let wav = std::fs::read(common::root().join("target/testdata/speech/goforward.wav"))
        .expect("run scripts/testdata/speech");
    let audio = timbre_audio::decode_mono(&wav, Some("wav"), 16_000).unwrap();
    let opts = TranscribeOptions {
        temperatures: vec![0.0],
        beam_size: 1,
        word_timestamps: true,
        vad_filter: false,
        ..Default::default()
    };
    let a = transcribe_blocking(&hf, None, 2, &audio, &opts, None).unwrap();
    let b = transcribe_blocking(&native, None, 2, &audio, &opts, None).unwrap();
    assert_eq!(a, b);
    assert!(a.text.to_lowercase().contains("forward"), "{}", a.text);
    assert!(!a.segments[0].words.is_empty());

    // A directory with neither format, and a safetensors file that is not Whisper, fail clearly.
    let empty = tempfile::tempdir().unwrap();
    let err = Checkpoint::load(empty.path()).err().unwrap();
    assert!(err.contains("neither model.bin"), "{err}");
    write_safetensors(&empty.path().join("model.safetensors"), &[("x".into(), "F32", vec![1], vec![0; 4])]);
    let err = Checkpoint::load(empty.path()).err().unwrap();
    assert!(err.contains("not a Whisper checkpoint"), "{err}");
}
