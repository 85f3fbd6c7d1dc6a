//! Where the parameters come from. The model is built from CTranslate2's variable names
//! (`encoder/layer_0/self_attention/linear_0/weight`, with Q/K/V fused); each checkpoint format
//! answers those names: [`Ct2Source`] directly, the safetensors source by translating them to
//! Hugging Face names and fusing the separate projections.

use super::ct2::{Ct2Model, DType, RawTensor};
use super::ops::{bf16_to_f32, f16_to_f32};

/// A parameter as f32 with its shape.
pub struct Param {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub trait Source {
    /// The parameter under its CTranslate2 name, converted to f32.
    fn param(&self, name: &str) -> Result<Param, String>;
    /// Number of encoder and decoder layers.
    fn layers(&self) -> (usize, usize);
}

pub fn to_f32(name: &str, dtype: DType, bytes: &[u8]) -> Result<Vec<f32>, String> {
    let halves = || bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    Ok(match dtype {
        DType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        DType::F16 => halves().map(f16_to_f32).collect(),
        DType::BF16 => halves().map(bf16_to_f32).collect(),
        other => return Err(format!("{name}: {other:?} weights are not supported (quantised model?)")),
    })
}

pub struct Ct2Source<'a> {
    pub model: &'a Ct2Model,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
}

impl Source for Ct2Source<'_> {
    fn param(&self, name: &str) -> Result<Param, String> {
        let RawTensor { shape, dtype, data } =
            self.model.get(name).ok_or_else(|| format!("model.bin lacks `{name}`"))?;
        Ok(Param { shape: shape.clone(), data: to_f32(name, *dtype, data)? })
    }

    fn layers(&self) -> (usize, usize) {
        (self.encoder_layers, self.decoder_layers)
    }
}
