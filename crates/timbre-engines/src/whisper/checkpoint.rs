//! A loaded Whisper checkpoint: model, tokenizer and the decoding constants that come with it
//! (alignment heads, suppressed tokens, language tokens), from either a CTranslate2 directory or
//! a Hugging Face safetensors directory.

use std::path::Path;

use super::ct2;
use super::model::{Compute, WhisperModel};
use super::safetensors::SafetensorsSource;
use super::tokenizer::Tokenizer;
use super::weights::Ct2Source;

pub struct Checkpoint {
    pub model: WhisperModel,
    /// The model live decodes (fitted windows) run on when they compute differently from files:
    /// the int8 copy of a float32 model (`TIMBRE_STT_LIVE_COMPUTE`, [`Checkpoint::with_live`]).
    pub live: Option<WhisperModel>,
    pub tokenizer: Tokenizer,
    /// (decoder layer, head) pairs whose cross-attention follows the audio.
    pub alignment_heads: Vec<(usize, usize)>,
    pub multilingual: bool,
    /// faster-whisper's `suppress_tokens=[-1]`: non-speech symbols plus the task/special tokens.
    pub suppress: Vec<u32>,
    /// `suppress_blank`: tokens not allowed first (the space and end-of-text).
    pub suppress_begin: Vec<u32>,
}

fn heads_from(value: Option<&serde_json::Value>) -> Vec<(usize, usize)> {
    value
        .and_then(|v| v.as_array())
        .map(|pairs| {
            pairs
                .iter()
                .filter_map(|p| {
                    let p = p.as_array()?;
                    Some((p.first()?.as_u64()? as usize, p.get(1)?.as_u64()? as usize))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Checkpoint {
    /// Loads a CTranslate2 directory (`model.bin`) or a safetensors one (`model.safetensors`),
    /// computing as `TIMBRE_STT_COMPUTE` says ([`Compute::from_env`]).
    /// Live decodes compute as `TIMBRE_STT_LIVE_COMPUTE` says ([`Compute::live_from_env`]).
    pub fn load(dir: &Path) -> Result<Self, String> {
        Ok(Self::load_with(dir, Compute::from_env()?)?.with_live(Compute::live_from_env()?))
    }

    /// Live decodes (fitted windows) in `live` compute: an int8 copy of a float32 model (files
    /// keep float32, whose transcripts match faster-whisper's); otherwise they share the model.
    pub fn with_live(mut self, live: Compute) -> Self {
        self.live = (live == Compute::Int8 && self.model.compute == Compute::Float32).then(|| self.model.int8_copy());
        self
    }

    /// The model a decode runs on: the live one for fitted windows, when there is one.
    pub fn model_for(&self, fit_window: bool) -> &WhisperModel {
        match &self.live {
            Some(live) if fit_window => live,
            _ => &self.model,
        }
    }

    pub fn load_with(dir: &Path, compute: Compute) -> Result<Self, String> {
        if dir.join("model.bin").exists() {
            Self::load_ct2(dir, compute)
        } else if dir.join("model.safetensors").exists() {
            Self::load_safetensors(dir, compute)
        } else {
            Err(format!("{} holds neither model.bin (CTranslate2) nor model.safetensors", dir.display()))
        }
    }

    fn load_ct2(dir: &Path, compute: Compute) -> Result<Self, String> {
        let weights = ct2::load_dir(dir)?;
        let src = Ct2Source {
            model: &weights.model,
            encoder_layers: weights.encoder_layers,
            decoder_layers: weights.decoder_layers,
        };
        let model = WhisperModel::load(&src, compute)?;
        let tokenizer = Tokenizer::load(&dir.join("tokenizer.json"))?;
        let heads = heads_from(weights.config.get("alignment_heads"));
        let begin: Vec<u32> = weights
            .config
            .get("suppress_ids_begin")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect())
            .unwrap_or_default();
        Self::assemble(model, tokenizer, heads, begin)
    }

    fn load_safetensors(dir: &Path, compute: Compute) -> Result<Self, String> {
        let src = SafetensorsSource::open(&dir.join("model.safetensors"))?;
        let model = WhisperModel::load(&src, compute)?;
        drop(src);
        let tokenizer = Tokenizer::load(&dir.join("tokenizer.json"))?;
        // Hugging Face keeps the alignment heads in generation_config.json.
        let read = |name: &str| -> Option<serde_json::Value> {
            std::fs::read_to_string(dir.join(name)).ok().and_then(|t| serde_json::from_str(&t).ok())
        };
        let generation = read("generation_config.json");
        let heads = heads_from(generation.as_ref().and_then(|g| g.get("alignment_heads")));
        let begin = generation
            .as_ref()
            .and_then(|g| g.get("begin_suppress_tokens"))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect())
            .unwrap_or_default();
        Self::assemble(model, tokenizer, heads, begin)
    }

    fn assemble(
        model: WhisperModel,
        tokenizer: Tokenizer,
        mut alignment_heads: Vec<(usize, usize)>,
        mut suppress_begin: Vec<u32>,
    ) -> Result<Self, String> {
        let n_vocab = model.dims.n_vocab;
        if (tokenizer.special.timestamp_begin as usize) >= n_vocab {
            return Err(format!("tokenizer's timestamps start past the model's {n_vocab} tokens"));
        }
        let multilingual = n_vocab >= 51865;
        if alignment_heads.is_empty() {
            // Whisper's default when a checkpoint lists none: every head of the upper half.
            let layers = model.decoder_layers();
            for l in layers / 2..layers {
                for h in 0..model.dims.n_heads {
                    alignment_heads.push((l, h));
                }
            }
        }
        alignment_heads.retain(|&(l, h)| l < model.decoder_layers() && h < model.dims.n_heads);
        if suppress_begin.is_empty() {
            suppress_begin = tokenizer.encode(" ");
            suppress_begin.push(tokenizer.special.eot);
        }
        let suppress = suppressed_tokens(&tokenizer);
        Ok(Self { model, live: None, tokenizer, alignment_heads, multilingual, suppress, suppress_begin })
    }

    pub fn languages(&self) -> Vec<String> {
        if self.multilingual {
            self.tokenizer.languages.iter().map(|(c, _)| c.clone()).collect()
        } else {
            vec!["en".to_string()]
        }
    }
}

/// faster-whisper's `get_suppressed_tokens(tokenizer, [-1])`: the tokenizer's non-speech tokens
/// (speaker tags, music symbols, brackets…) plus transcribe/translate/sot/sot_prev/sot_lm/
/// no_speech, sorted and unique.
pub fn suppressed_tokens(tok: &Tokenizer) -> Vec<u32> {
    let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』".chars().map(String::from).collect();
    symbols.extend("<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split(' ').map(String::from));
    let miscellaneous: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
    let mut out = Vec::new();
    for s in [" -", " '"] {
        if let Some(&t) = tok.encode(s).first() {
            out.push(t);
        }
    }
    for symbol in symbols.iter().chain(&miscellaneous) {
        let misc = miscellaneous.contains(symbol);
        for ids in [tok.encode(symbol), tok.encode(&format!(" {symbol}"))] {
            if let Some(&first) = ids.first()
                && (ids.len() == 1 || misc)
            {
                out.push(first);
            }
        }
    }
    let s = &tok.special;
    out.extend([s.transcribe, s.translate, s.sot, s.sot_prev, s.sot_lm, s.no_speech]);
    out.sort_unstable();
    out.dedup();
    out
}
