//! Hugging Face `model.safetensors` Whisper checkpoints: an 8-byte header length, a JSON
//! header of `name → {dtype, shape, data_offsets}`, then the raw tensors. Answers the model's
//! CTranslate2-style parameter names by translating them (and fusing Q/K/V, whose key
//! projection has no bias in Hugging Face's layout).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ct2::DType;
use super::weights::{Param, Source, to_f32};

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

pub struct SafetensorsSource {
    bytes: Vec<u8>,
    data_start: usize,
    entries: BTreeMap<String, Entry>,
    prefix: &'static str,
}

impl SafetensorsSource {
    pub fn open(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        let len_bytes: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or("shorter than its header")?;
        let header_len = usize::try_from(u64::from_le_bytes(len_bytes)).map_err(|_| "header length overflows")?;
        let data_start = 8usize.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or("header is truncated")?;
        let header: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..data_start]).map_err(|e| format!("header: {e}"))?;
        let mut entries = BTreeMap::new();
        for (name, value) in header {
            if name == "__metadata__" {
                continue;
            }
            let e: Entry = serde_json::from_value(value).map_err(|e| format!("{name}: {e}"))?;
            let [a, b] = e.data_offsets;
            if a > b || data_start.checked_add(b).is_none_or(|end| end > bytes.len()) {
                return Err(format!("{name}: data offsets {a}..{b} outside the file"));
            }
            entries.insert(name, e);
        }
        let prefix = if entries.keys().any(|k| k.starts_with("model.encoder.")) { "model." } else { "" };
        if !entries.contains_key(&format!("{prefix}encoder.conv1.weight")) {
            return Err("no encoder.conv1.weight: not a Whisper checkpoint".into());
        }
        Ok(Self { bytes, data_start, entries, prefix })
    }

    fn raw(&self, name: &str) -> Result<Param, String> {
        let full = format!("{}{name}", self.prefix);
        let e = self.entries.get(&full).ok_or_else(|| format!("checkpoint lacks `{full}`"))?;
        let dtype = match e.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            other => return Err(format!("{full}: dtype {other} is not supported")),
        };
        let elements: usize = e.shape.iter().product();
        let [a, b] = e.data_offsets;
        if elements * dtype.size() != b - a {
            return Err(format!("{full}: {} bytes for shape {:?}", b - a, e.shape));
        }
        let data = to_f32(&full, dtype, &self.bytes[self.data_start + a..self.data_start + b])?;
        Ok(Param { shape: e.shape.clone(), data })
    }

    /// Rows of several `[n, d]` matrices (or vectors) stacked; `None` entries are zero vectors
    /// of length `zero_len` (the missing key bias).
    fn stacked(&self, parts: &[Option<String>], zero_len: usize) -> Result<Param, String> {
        let mut shape: Option<Vec<usize>> = None;
        let mut data = Vec::new();
        for part in parts {
            match part {
                Some(name) => {
                    let p = self.raw(name)?;
                    match &mut shape {
                        None => shape = Some(p.shape.clone()),
                        Some(s) => s[0] += p.shape[0],
                    }
                    data.extend(p.data);
                }
                None => {
                    data.extend(std::iter::repeat_n(0.0, zero_len));
                    if let Some(s) = &mut shape {
                        s[0] += zero_len;
                    } else {
                        shape = Some(vec![zero_len]);
                    }
                }
            }
        }
        Ok(Param { shape: shape.unwrap_or_default(), data })
    }

    fn count(&self, stack: &str) -> usize {
        (0..)
            .take_while(|i| self.entries.contains_key(&format!("{}{stack}.layers.{i}.fc1.weight", self.prefix)))
            .count()
    }
}

impl Source for SafetensorsSource {
    fn layers(&self) -> (usize, usize) {
        (self.count("encoder"), self.count("decoder"))
    }

    fn param(&self, name: &str) -> Result<Param, String> {
        let parts: Vec<&str> = name.split('/').collect();
        let norm = |p: &str, leaf: &str| -> Result<Param, String> {
            let suffix = if leaf == "gamma" { "weight" } else { "bias" };
            self.raw(&format!("{p}.{suffix}"))
        };
        match parts.as_slice() {
            [stack, "conv1" | "conv2", leaf] => self.raw(&format!("{stack}.{}.{leaf}", parts[1])),
            [stack, "position_encodings", "encodings"] => self.raw(&format!("{stack}.embed_positions.weight")),
            ["decoder", "embeddings", "weight"] => self.raw("decoder.embed_tokens.weight"),
            [stack, "layer_norm", leaf] => norm(&format!("{stack}.layer_norm"), leaf),
            [stack, layer, block, part @ ..] => {
                let i = layer.strip_prefix("layer_").ok_or_else(|| format!("unknown parameter `{name}`"))?;
                let base = format!("{stack}.layers.{i}");
                let d = self.raw(&format!("{base}.fc1.weight"))?.shape.get(1).copied().unwrap_or(0);
                match (*block, part) {
                    ("self_attention", ["layer_norm", leaf]) => norm(&format!("{base}.self_attn_layer_norm"), leaf),
                    ("attention", ["layer_norm", leaf]) => norm(&format!("{base}.encoder_attn_layer_norm"), leaf),
                    ("ffn", ["layer_norm", leaf]) => norm(&format!("{base}.final_layer_norm"), leaf),
                    ("ffn", ["linear_0", leaf]) => self.raw(&format!("{base}.fc1.{leaf}")),
                    ("ffn", ["linear_1", leaf]) => self.raw(&format!("{base}.fc2.{leaf}")),
                    ("self_attention", ["linear_0", leaf]) => {
                        let a = format!("{base}.self_attn");
                        let k = (*leaf == "weight").then(|| format!("{a}.k_proj.weight"));
                        self.stacked(&[Some(format!("{a}.q_proj.{leaf}")), k, Some(format!("{a}.v_proj.{leaf}"))], d)
                    }
                    ("self_attention", ["linear_1", leaf]) => self.raw(&format!("{base}.self_attn.out_proj.{leaf}")),
                    ("attention", ["linear_0", leaf]) => self.raw(&format!("{base}.encoder_attn.q_proj.{leaf}")),
                    ("attention", ["linear_1", leaf]) => {
                        let a = format!("{base}.encoder_attn");
                        let k = (*leaf == "weight").then(|| format!("{a}.k_proj.weight"));
                        self.stacked(&[k, Some(format!("{a}.v_proj.{leaf}"))], d)
                    }
                    ("attention", ["linear_2", leaf]) => self.raw(&format!("{base}.encoder_attn.out_proj.{leaf}")),
                    _ => Err(format!("unknown parameter `{name}`")),
                }
            }
            _ => Err(format!("unknown parameter `{name}`")),
        }
    }
}
