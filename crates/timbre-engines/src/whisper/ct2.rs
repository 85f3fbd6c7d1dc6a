//! Reader for CTranslate2's `model.bin`.
//!
//! Layout (all little-endian; a string is a u16 byte length followed by the bytes, ending in
//! NUL): `u32 version`, `string spec`, `u32 revision`, `u32 count`, then per variable
//! `string name, u8 rank, u32 dims[rank], u8 dtype, u32 nbytes, bytes`; then `u32 aliases` and
//! pairs of strings (alias → target). Every length is checked against the bytes that remain, so
//! a truncated or hostile file is an error, never a huge allocation or a panic.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct Ct2Model {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    pub tensors: BTreeMap<String, RawTensor>,
    pub aliases: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Ct2Error {
    #[error("model.bin is truncated at byte {0}")]
    Truncated(usize),
    #[error("model.bin is malformed: {0}")]
    Malformed(String),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Ct2Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(Ct2Error::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Ct2Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Ct2Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Ct2Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, Ct2Error> {
        let n = usize::from(self.u16()?);
        let bytes = self.take(n)?;
        let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(trimmed.to_vec())
            .map_err(|_| Ct2Error::Malformed(format!("non-UTF-8 name at byte {}", self.pos)))
    }
}

impl Ct2Model {
    pub fn parse(buf: &[u8]) -> Result<Self, Ct2Error> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.u32()?;
        if !(5..=6).contains(&version) {
            return Err(Ct2Error::Malformed(format!("unsupported format version {version} (expected 5 or 6)")));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let count = r.u32()? as usize;
        let mut tensors = BTreeMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = usize::from(r.u8()?);
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u32()? as usize);
            }
            let code = r.u8()?;
            let dtype =
                DType::from_code(code).ok_or_else(|| Ct2Error::Malformed(format!("{name}: unknown dtype {code}")))?;
            let nbytes = r.u32()? as usize;
            let elements = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| Ct2Error::Malformed(format!("{name}: shape overflows")))?;
            if elements.checked_mul(dtype.size()) != Some(nbytes) {
                return Err(Ct2Error::Malformed(format!("{name}: {nbytes} bytes for shape {shape:?} of {dtype:?}")));
            }
            let data = r.take(nbytes)?.to_vec();
            tensors.insert(name, RawTensor { shape, dtype, data });
        }
        // Formats 5 and 6 always end with the alias table (possibly empty).
        let mut aliases = BTreeMap::new();
        for _ in 0..r.u32()? {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        if r.pos != buf.len() {
            return Err(Ct2Error::Malformed(format!("{} trailing bytes", buf.len() - r.pos)));
        }
        Ok(Self { version, spec, revision, tensors, aliases })
    }

    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.tensors.get(name).or_else(|| self.aliases.get(name).and_then(|t| self.tensors.get(t)))
    }
}

/// What the loader keeps for a CTranslate2 Whisper directory.
#[derive(Debug)]
pub struct WhisperWeights {
    pub model: Ct2Model,
    pub config: serde_json::Value,
    pub n_mels: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
}

pub fn load_dir(dir: &Path) -> Result<WhisperWeights, String> {
    let bin = dir.join("model.bin");
    let bytes = std::fs::read(&bin).map_err(|e| format!("cannot read {}: {e}", bin.display()))?;
    let model = Ct2Model::parse(&bytes).map_err(|e| format!("{}: {e}", bin.display()))?;
    if model.spec != "WhisperSpec" {
        return Err(format!("{} holds a `{}`, not a Whisper model", bin.display(), model.spec));
    }
    let cfg_path = dir.join("config.json");
    let config: serde_json::Value = std::fs::read_to_string(&cfg_path)
        .map_err(|e| format!("cannot read {}: {e}", cfg_path.display()))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{}: {e}", cfg_path.display())))?;
    let conv = model.get("encoder/conv1/weight").ok_or("model.bin lacks encoder/conv1/weight")?;
    let n_mels = *conv.shape.get(1).ok_or("encoder/conv1/weight has no input-channel dimension")?;
    let count = |prefix: &str| {
        (0..).take_while(|i| model.tensors.keys().any(|k| k.starts_with(&format!("{prefix}/layer_{i}/")))).count()
    };
    let encoder_layers = count("encoder");
    let decoder_layers = count("decoder");
    if encoder_layers == 0 || decoder_layers == 0 {
        return Err(format!("{}: found {encoder_layers} encoder and {decoder_layers} decoder layers", bin.display()));
    }
    model.get("decoder/embeddings/weight").ok_or("model.bin lacks decoder/embeddings/weight")?;
    Ok(WhisperWeights { model, config, n_mels, encoder_layers, decoder_layers })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&u16::try_from(s.len() + 1).unwrap().to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn tiny() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "w");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&12u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 12]);
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "alias");
        string(&mut b, "w");
        b
    }

    #[test]
    fn parses_and_resolves_aliases() {
        let m = Ct2Model::parse(&tiny()).unwrap();
        assert_eq!((m.version, m.spec.as_str(), m.revision), (6, "WhisperSpec", 3));
        assert_eq!(m.get("alias").unwrap().shape, vec![2, 3]);
        assert_eq!(m.get("w").unwrap().dtype, DType::F16);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = tiny();
        for cut in 0..full.len() {
            assert!(Ct2Model::parse(&full[..cut]).is_err(), "cut at {cut} parsed");
        }
        let mut lying = full.clone();
        lying[4 + 2 + 12 + 4 + 4 + 2 + 2 + 1 + 8 + 1] = 99; // nbytes no longer matches the shape
        assert!(matches!(Ct2Model::parse(&lying), Err(Ct2Error::Malformed(_))));
    }
}
