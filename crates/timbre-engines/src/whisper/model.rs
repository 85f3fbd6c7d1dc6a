//! The Whisper transformer: a convolutional front end and pre-norm encoder over 30 s of log-mel
//! frames, and a pre-norm decoder with a key/value cache for its own tokens and the encoder
//! output's keys/values computed once per window. The decoder can also hand back the raw
//! (pre-softmax) cross-attention scores of chosen heads, which word timestamps align on.

use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::gemm;
use super::int8::{QuantMatrix, vnni_available};
use super::ops::{LayerNorm, Linear, gelu_inplace, matmul_t_into, small_matmul, small_matmul_t, softmax_rows};
use super::screen::VocabScreen;
use super::weights::{Param, Source};

/// Frames the encoder takes (30 s at 100 frames/s) and positions it outputs.
pub const N_FRAMES: usize = 3000;
pub const N_AUDIO_CTX: usize = 1500;
const HEAD_DIM: usize = 64;
/// Query rows per block of the encoder's self-attention (see `full_attention`).
const ATTN_BLOCK: usize = 96;

/// How the linear layers (and the vocabulary projection) multiply. Attention, convolutions,
/// layer norms and the embeddings stay f32 in both, as in CTranslate2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compute {
    /// f32 weights: the default, because it is what matches faster-whisper float32's
    /// transcripts (the fidelity bar of `tests/whisper_fidelity.rs`).
    Float32,
    /// 8-bit weights and activations ([`super::int8`]), faster-whisper's `compute_type=int8`:
    /// faster, but like CTranslate2's int8 it changes some greedy transcripts (see
    /// docs/benchmarks.md), so it is opt-in.
    Int8,
}

impl Compute {
    /// `TIMBRE_STT_COMPUTE`: `float32` (default) or `int8`. int8 needs AVX-512 VNNI to be fast;
    /// without it the request falls back to float32 with a warning (the scalar int8 path is
    /// correct but several times slower than f32).
    pub fn from_env() -> Result<Self, String> {
        Self::from_var("TIMBRE_STT_COMPUTE", Self::Float32)
    }

    /// `TIMBRE_STT_LIVE_COMPUTE`: how live decodes (fitted windows: partials and live finals)
    /// compute. Default `int8` where AVX-512 VNNI makes it fast — a live final then comes within
    /// the 0.4 s target (docs/benchmarks.md) — else `float32`; `float32` makes live decodes use
    /// the file model.
    pub fn live_from_env() -> Result<Self, String> {
        Self::from_var("TIMBRE_STT_LIVE_COMPUTE", Self::Int8)
    }

    /// `var`'s value, `default` when unset or empty; int8 falls back to float32 without AVX-512
    /// VNNI, with a warning when it was asked for explicitly.
    fn from_var(var: &str, default: Self) -> Result<Self, String> {
        let value = std::env::var(var).unwrap_or_default();
        let wanted = match value.trim() {
            "" => default,
            v => Self::parse(v).map_err(|e| format!("{var}={e}"))?,
        };
        if wanted == Self::Int8 && !vnni_available() {
            if !value.trim().is_empty() {
                tracing::warn!("{var}=int8 needs AVX-512 VNNI, which this CPU lacks: using float32");
            }
            return Ok(Self::Float32);
        }
        Ok(wanted)
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "int8" => Ok(Self::Int8),
            "" | "float32" | "f32" => Ok(Self::Float32),
            other => Err(format!("{other}: expected float32 or int8")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dims {
    pub n_mels: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_vocab: usize,
    pub n_text_ctx: usize,
}

#[derive(Clone)]
struct EncoderLayer {
    attn_ln: LayerNorm,
    qkv: Linear,
    out: Linear,
    mlp_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[derive(Clone)]
struct DecoderLayer {
    attn_ln: LayerNorm,
    qkv: Linear,
    out: Linear,
    cross_ln: LayerNorm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    mlp_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct WhisperModel {
    pub dims: Dims,
    conv1: Linear,
    conv2: Linear,
    enc_pos: Array2<f32>,
    enc_layers: Vec<EncoderLayer>,
    enc_ln: LayerNorm,
    /// Shared with the model's int8 copy for live decodes ([`WhisperModel::int8_copy`]).
    tok_emb: Arc<Array2<f32>>,
    dec_pos: Array2<f32>,
    dec_layers: Vec<DecoderLayer>,
    dec_ln: LayerNorm,
    /// The tied output projection in 8 bits (int8 compute); `tok_emb` still embeds tokens.
    vocab_int8: Option<Arc<QuantMatrix>>,
    /// float32 compute: the 8-bit first pass of greedy steps ([`VocabScreen`]).
    screen: Option<VocabScreen>,
    pub compute: Compute,
}

/// The encoder output's keys and values for every decoder layer: computed once per window and
/// shared by every hypothesis decoded against it. Both are stored transposed, `[d, positions]`:
/// a decoder step then reads, per head, 64 contiguous rows of 1500 values (scores as row
/// updates, outputs as long dot products) instead of 1500 short 64-value pieces.
pub struct CrossKv {
    kt: Vec<Array2<f32>>,
    vt: Vec<Array2<f32>>,
}

/// One hypothesis' self-attention cache: per layer, the keys/values of every token so far,
/// row-major `[len, d]` in growable vectors (cloning a beam copies only what is used).
#[derive(Clone)]
pub struct SelfCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl SelfCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn array2(name: &str, p: Param) -> Result<Array2<f32>, String> {
    let shape = match p.shape.as_slice() {
        [a, b] => (*a, *b),
        // Convolutions [out, in, k] flatten to [out, in·k], the im2col layout used below.
        [a, b, c] => (*a, b * c),
        other => return Err(format!("{name}: expected a matrix, got shape {other:?}")),
    };
    Array2::from_shape_vec(shape, p.data).map_err(|e| format!("{name}: {e}"))
}

fn array1(name: &str, p: Param) -> Result<Array1<f32>, String> {
    if p.shape.len() != 1 {
        return Err(format!("{name}: expected a vector, got shape {:?}", p.shape));
    }
    Ok(Array1::from_vec(p.data))
}

fn matrix(src: &dyn Source, name: &str) -> Result<Array2<f32>, String> {
    array2(name, src.param(name)?)
}

fn linear(src: &dyn Source, prefix: &str, out: usize, inp: usize) -> Result<Linear, String> {
    let weight = matrix(src, &format!("{prefix}/weight"))?;
    if weight.dim() != (out, inp) {
        return Err(format!("{prefix}/weight: shape {:?}, expected [{out}, {inp}]", weight.dim()));
    }
    let name = format!("{prefix}/bias");
    let bias = match src.param(&name) {
        Ok(p) => Some(array1(&name, p)?),
        Err(_) => None,
    };
    if bias.as_ref().is_some_and(|b| b.len() != out) {
        return Err(format!("{name}: length does not match {out} outputs"));
    }
    Ok(Linear::new(weight, bias))
}

fn layer_norm(src: &dyn Source, prefix: &str, d: usize) -> Result<LayerNorm, String> {
    let gamma = array1(prefix, src.param(&format!("{prefix}/gamma"))?)?;
    let beta = array1(prefix, src.param(&format!("{prefix}/beta"))?)?;
    if gamma.len() != d || beta.len() != d {
        return Err(format!("{prefix}: layer norm of width {} for model width {d}", gamma.len()));
    }
    Ok(LayerNorm { gamma, beta })
}

impl WhisperModel {
    pub fn load(src: &dyn Source, compute: Compute) -> Result<Self, String> {
        let (n_enc, n_dec) = src.layers();
        let conv1 = src.param("encoder/conv1/weight")?;
        let (d, n_mels) = match conv1.shape.as_slice() {
            [d, m, 3] => (*d, *m),
            other => return Err(format!("encoder/conv1/weight: unexpected shape {other:?}")),
        };
        if !d.is_multiple_of(HEAD_DIM) {
            return Err(format!("model width {d} is not a multiple of {HEAD_DIM}"));
        }
        let conv1 = Linear::new(
            array2("encoder/conv1/weight", conv1)?,
            Some(array1("encoder/conv1/bias", src.param("encoder/conv1/bias")?)?),
        );
        let conv2 = linear(src, "encoder/conv2", d, d * 3)?;
        let enc_pos = matrix(src, "encoder/position_encodings/encodings")?;
        if enc_pos.dim() != (N_AUDIO_CTX, d) {
            return Err(format!("encoder positions {:?}, expected [{N_AUDIO_CTX}, {d}]", enc_pos.dim()));
        }
        let mut enc_layers = Vec::with_capacity(n_enc);
        for i in 0..n_enc {
            let p = format!("encoder/layer_{i}");
            enc_layers.push(EncoderLayer {
                attn_ln: layer_norm(src, &format!("{p}/self_attention/layer_norm"), d)?,
                qkv: linear(src, &format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                out: linear(src, &format!("{p}/self_attention/linear_1"), d, d)?,
                mlp_ln: layer_norm(src, &format!("{p}/ffn/layer_norm"), d)?,
                fc1: linear(src, &format!("{p}/ffn/linear_0"), 4 * d, d)?,
                fc2: linear(src, &format!("{p}/ffn/linear_1"), d, 4 * d)?,
            });
        }
        let enc_ln = layer_norm(src, "encoder/layer_norm", d)?;
        let tok_emb = matrix(src, "decoder/embeddings/weight")?;
        if tok_emb.ncols() != d {
            return Err(format!("token embeddings of width {} for model width {d}", tok_emb.ncols()));
        }
        let dec_pos = matrix(src, "decoder/position_encodings/encodings")?;
        if dec_pos.ncols() != d {
            return Err(format!("decoder positions of width {} for model width {d}", dec_pos.ncols()));
        }
        let mut dec_layers = Vec::with_capacity(n_dec);
        for i in 0..n_dec {
            let p = format!("decoder/layer_{i}");
            dec_layers.push(DecoderLayer {
                attn_ln: layer_norm(src, &format!("{p}/self_attention/layer_norm"), d)?,
                qkv: linear(src, &format!("{p}/self_attention/linear_0"), 3 * d, d)?,
                out: linear(src, &format!("{p}/self_attention/linear_1"), d, d)?,
                cross_ln: layer_norm(src, &format!("{p}/attention/layer_norm"), d)?,
                cross_q: linear(src, &format!("{p}/attention/linear_0"), d, d)?,
                cross_kv: linear(src, &format!("{p}/attention/linear_1"), 2 * d, d)?,
                cross_out: linear(src, &format!("{p}/attention/linear_2"), d, d)?,
                mlp_ln: layer_norm(src, &format!("{p}/ffn/layer_norm"), d)?,
                fc1: linear(src, &format!("{p}/ffn/linear_0"), 4 * d, d)?,
                fc2: linear(src, &format!("{p}/ffn/linear_1"), d, 4 * d)?,
            });
        }
        let dec_ln = layer_norm(src, "decoder/layer_norm", d)?;
        let dims =
            Dims { n_mels, d_model: d, n_heads: d / HEAD_DIM, n_vocab: tok_emb.nrows(), n_text_ctx: dec_pos.nrows() };
        let mut model = Self {
            dims,
            conv1,
            conv2,
            enc_pos,
            enc_layers,
            enc_ln,
            tok_emb: Arc::new(tok_emb),
            dec_pos,
            dec_layers,
            dec_ln,
            vocab_int8: None,
            screen: None,
            compute,
        };
        if compute == Compute::Int8 {
            model.quantize(None);
        }
        model.set_screen(vnni_available());
        Ok(model)
    }

    /// The same model computing in 8 bits (what `Compute::Int8` loads), sharing the token
    /// embedding: about 30 MB for tiny instead of a second load. Live decodes use it
    /// ([`super::checkpoint::Checkpoint::live`]).
    pub fn int8_copy(&self) -> WhisperModel {
        let mut copy = WhisperModel {
            dims: self.dims,
            conv1: self.conv1.clone(),
            conv2: self.conv2.clone(),
            enc_pos: self.enc_pos.clone(),
            enc_layers: self.enc_layers.clone(),
            enc_ln: self.enc_ln.clone(),
            tok_emb: Arc::clone(&self.tok_emb),
            dec_pos: self.dec_pos.clone(),
            dec_layers: self.dec_layers.clone(),
            dec_ln: self.dec_ln.clone(),
            vocab_int8: None,
            screen: None,
            compute: Compute::Int8,
        };
        // The screen already holds the projection in 8 bits, quantized the same way.
        let vocab = self.screen.as_ref().map(VocabScreen::matrix);
        copy.quantize(vocab);
        copy
    }

    /// Every linear layer of both stacks and the output projection (`vocab` when it is already
    /// quantized) to 8 bits.
    fn quantize(&mut self, vocab: Option<Arc<QuantMatrix>>) {
        for l in &mut self.enc_layers {
            for lin in [&mut l.qkv, &mut l.out, &mut l.fc1, &mut l.fc2] {
                lin.quantize();
            }
        }
        for l in &mut self.dec_layers {
            for lin in
                [&mut l.qkv, &mut l.out, &mut l.cross_q, &mut l.cross_kv, &mut l.cross_out, &mut l.fc1, &mut l.fc2]
            {
                lin.quantize();
            }
        }
        self.vocab_int8 = Some(vocab.unwrap_or_else(|| Arc::new(QuantMatrix::new(self.tok_emb.view(), None))));
    }

    pub fn decoder_layers(&self) -> usize {
        self.dec_layers.len()
    }

    /// Encodes one window: `mel` is `[n_mels, frames]` mel-major, `frames` even and at most
    /// 3000 (30 s, what Whisper was trained on and what file transcription always gives it).
    /// Returns `[frames / 2, d]`. Shorter windows are the live-streaming trade (see
    /// `TranscribeOptions::fit_window`): the attention cost falls with the square of the length.
    pub fn encode(&self, mel: ArrayView2<f32>, threads: usize) -> Result<Array2<f32>, String> {
        let n_mels = self.dims.n_mels;
        let frames = mel.ncols();
        if mel.nrows() != n_mels || frames == 0 || frames > N_FRAMES || !frames.is_multiple_of(2) {
            return Err(format!("encoder input {:?}, expected [{n_mels}, an even count ≤ {N_FRAMES}]", mel.dim()));
        }
        let ctx = frames / 2;
        // conv1 (kernel 3, padding 1) as im2col + GEMM: column c·3+k holds x[c, t+k-1].
        let mut cols = Array2::<f32>::zeros((frames, n_mels * 3));
        for c in 0..n_mels {
            let row = mel.row(c);
            for t in 0..frames {
                for k in 0..3 {
                    let src = t + k;
                    if (1..=frames).contains(&src) {
                        cols[[t, c * 3 + k]] = row[src - 1];
                    }
                }
            }
        }
        let mut h = self.conv1.forward(cols.view(), threads);
        gelu_inplace(&mut h);
        // conv2 (kernel 3, stride 2, padding 1): output t sees h[2t-1 .. 2t+1].
        let d = self.dims.d_model;
        let mut cols = Array2::<f32>::zeros((ctx, d * 3));
        for t in 0..ctx {
            for k in 0..3 {
                let src = 2 * t + k;
                if (1..=frames).contains(&src) {
                    let from = h.row(src - 1);
                    for c in 0..d {
                        cols[[t, c * 3 + k]] = from[c];
                    }
                }
            }
        }
        let mut x = self.conv2.forward(cols.view(), threads);
        gelu_inplace(&mut x);
        x += &self.enc_pos.slice(s![..ctx, ..]);
        for layer in &self.enc_layers {
            let h = layer.attn_ln.forward(x.view());
            let qkv = layer.qkv.forward(h.view(), threads);
            let attn = self.full_attention(qkv.view(), threads);
            x += &layer.out.forward(attn.view(), threads);
            let h = layer.mlp_ln.forward(x.view());
            let mut h = layer.fc1.forward(h.view(), threads);
            gelu_inplace(&mut h);
            x += &layer.fc2.forward(h.view(), threads);
        }
        Ok(self.enc_ln.forward(x.view()))
    }

    /// Unmasked multi-head self-attention over fused `[n, 3d]` Q/K/V rows, heads spread over
    /// `threads`. Each head goes through its queries [`ATTN_BLOCK`] rows at a time, so the
    /// scores of a block (`[block, n]`, under 1 MB) stay in the cache between the product, the
    /// softmax and the product with V, and no `[n, n]` matrix (9 MB at 1500 positions) is
    /// allocated, faulted in and streamed through memory three times per head.
    fn full_attention(&self, qkv: ArrayView2<f32>, threads: usize) -> Array2<f32> {
        let (n, d, heads) = (qkv.nrows(), self.dims.d_model, self.dims.n_heads);
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let mut out = Array2::<f32>::zeros((n, d));
        let one_head = |h: usize, mut dst: ndarray::ArrayViewMut2<f32>, scores: &mut Array2<f32>| {
            let q = qkv.slice(s![.., h * HEAD_DIM..(h + 1) * HEAD_DIM]);
            let k = qkv.slice(s![.., d + h * HEAD_DIM..d + (h + 1) * HEAD_DIM]);
            let v = qkv.slice(s![.., 2 * d + h * HEAD_DIM..2 * d + (h + 1) * HEAD_DIM]);
            for r0 in (0..n).step_by(ATTN_BLOCK) {
                let r1 = (r0 + ATTN_BLOCK).min(n);
                let mut block = scores.slice_mut(s![..r1 - r0, ..]);
                gemm::matmul(q.slice(s![r0..r1, ..]), k.t(), block.view_mut(), scale, 1);
                softmax_rows(&mut block);
                gemm::matmul(block.view(), v, dst.slice_mut(s![r0..r1, ..]), 1.0, 1);
            }
        };
        let mut chunks: Vec<(usize, ndarray::ArrayViewMut2<f32>)> =
            out.axis_chunks_iter_mut(Axis(1), HEAD_DIM).enumerate().collect();
        let threads = threads.clamp(1, heads);
        let block_rows = ATTN_BLOCK.min(n);
        if threads == 1 {
            let mut scores = Array2::<f32>::zeros((block_rows, n));
            for (h, dst) in chunks {
                one_head(h, dst, &mut scores);
            }
            return out;
        }
        let per = heads.div_ceil(threads);
        std::thread::scope(|scope| {
            while !chunks.is_empty() {
                let take = per.min(chunks.len());
                let group: Vec<_> = chunks.drain(..take).collect();
                let one_head = &one_head;
                scope.spawn(move || {
                    let mut scores = Array2::<f32>::zeros((block_rows, n));
                    for (h, dst) in group {
                        one_head(h, dst, &mut scores);
                    }
                });
            }
        });
        out
    }

    /// Keys and values of the encoder output for every decoder layer.
    pub fn cross_kv(&self, encoded: ArrayView2<f32>, threads: usize) -> CrossKv {
        let d = self.dims.d_model;
        let (mut kt, mut vt) = (Vec::new(), Vec::new());
        for layer in &self.dec_layers {
            let kv = layer.cross_kv.forward(encoded, threads);
            kt.push(kv.slice(s![.., ..d]).t().as_standard_layout().into_owned());
            vt.push(kv.slice(s![.., d..]).t().as_standard_layout().into_owned());
        }
        CrossKv { kt, vt }
    }

    pub fn new_cache(&self) -> SelfCache {
        let d = self.dims.d_model;
        let n = self.dec_layers.len();
        let cap = 64 * d;
        SelfCache { k: vec![Vec::with_capacity(cap); n], v: vec![Vec::with_capacity(cap); n], len: 0 }
    }

    /// Runs `tokens` (one row of new tokens per hypothesis, all of the same length) through the
    /// decoder, extending each hypothesis' cache. Returns logits for the last new token of each
    /// hypothesis (`[batch, vocab]`), or for every new token when `all_logits`.
    ///
    /// `heads` (layer, head) asks for the raw cross-attention scores of those heads for the
    /// first hypothesis: one `[new tokens, 1500]` matrix per head.
    pub fn decode(
        &self,
        tokens: &[Vec<u32>],
        caches: &mut [SelfCache],
        cross: &CrossKv,
        all_logits: bool,
        heads: &[(usize, usize)],
        threads: usize,
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>), String> {
        let (h, attention) = self.decode_hidden(tokens, caches, cross, all_logits, heads, threads)?;
        let logits = match &self.vocab_int8 {
            Some(q) => q.forward(h.view(), threads),
            None => {
                let mut logits = Array2::<f32>::zeros((h.nrows(), self.dims.n_vocab));
                matmul_t_into(h.view(), self.tok_emb.view(), logits.view_mut(), threads);
                logits
            }
        };
        Ok((logits, attention))
    }

    /// One greedy step of one hypothesis: the next token's logits, exact for every token at or
    /// above `exact_from` and for every token below it that could be the largest one not in
    /// `excluded` — the token greedy decoding picks is always the full f32 projection's pick
    /// ([`VocabScreen`]; without a screen this is the full projection).
    pub fn decode_greedy(
        &self,
        token: u32,
        cache: &mut SelfCache,
        cross: &CrossKv,
        exact_from: usize,
        excluded: &[u32],
        threads: usize,
    ) -> Result<Vec<f32>, String> {
        let Some(screen) = &self.screen else {
            let (logits, _) = self.decode(&[vec![token]], std::slice::from_mut(cache), cross, false, &[], threads)?;
            return Ok(logits.into_raw_vec_and_offset().0);
        };
        let (h, _) = self.decode_hidden(&[vec![token]], std::slice::from_mut(cache), cross, false, &[], threads)?;
        Ok(screen.logits(h.row(0), self.tok_emb.view(), exact_from, excluded, threads))
    }

    /// Turns the 8-bit screen of greedy steps on or off (on by default with float32 compute on
    /// CPUs with AVX-512 VNNI).
    pub fn set_screen(&mut self, on: bool) {
        self.screen = (on && self.compute == Compute::Float32).then(|| VocabScreen::new(self.tok_emb.view()));
    }

    pub fn screened(&self) -> bool {
        self.screen.is_some()
    }

    /// The decoder up to its final layer norm: one row per hypothesis (its last new token), or
    /// per new token when `all_logits`; with the cross-attention rows `heads` asks for.
    fn decode_hidden(
        &self,
        tokens: &[Vec<u32>],
        caches: &mut [SelfCache],
        cross: &CrossKv,
        all_logits: bool,
        heads: &[(usize, usize)],
        threads: usize,
    ) -> Result<(Array2<f32>, Vec<Array2<f32>>), String> {
        let batch = tokens.len();
        let n = tokens.first().map_or(0, Vec::len);
        if batch == 0 || n == 0 || caches.len() != batch || tokens.iter().any(|t| t.len() != n) {
            return Err("decoder called with no tokens or ragged batches".into());
        }
        let offset = caches[0].len();
        if caches.iter().any(|c| c.len() != offset) {
            return Err("decoder caches of different lengths".into());
        }
        if offset + n > self.dims.n_text_ctx {
            return Err(format!("{} tokens exceed the decoder context of {}", offset + n, self.dims.n_text_ctx));
        }
        let d = self.dims.d_model;
        let mut x = Array2::<f32>::zeros((batch * n, d));
        for (b, row_tokens) in tokens.iter().enumerate() {
            for (i, &t) in row_tokens.iter().enumerate() {
                let t = t as usize;
                if t >= self.dims.n_vocab {
                    return Err(format!("token {t} outside the vocabulary"));
                }
                let mut row = x.row_mut(b * n + i);
                row.assign(&self.tok_emb.row(t));
                row += &self.dec_pos.row(offset + i);
            }
        }
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let mut attention = Vec::new();
        for (l, layer) in self.dec_layers.iter().enumerate() {
            // Masked self-attention over the cache plus the new tokens.
            let h = layer.attn_ln.forward(x.view());
            let qkv = layer.qkv.forward(h.view(), threads);
            let mut attn = Array2::<f32>::zeros((batch * n, d));
            for (b, cache) in caches.iter_mut().enumerate() {
                let rows = b * n..(b + 1) * n;
                let new = qkv.slice(s![rows.clone(), ..]);
                for row in new.rows() {
                    cache.k[l].extend(row.slice(s![d..2 * d]).iter());
                    cache.v[l].extend(row.slice(s![2 * d..]).iter());
                }
                let total = offset + n;
                let keys = ArrayView2::from_shape((total, d), &cache.k[l][..total * d]).map_err(|e| e.to_string())?;
                let values = ArrayView2::from_shape((total, d), &cache.v[l][..total * d]).map_err(|e| e.to_string())?;
                for hd in 0..self.dims.n_heads {
                    let cols = hd * HEAD_DIM..(hd + 1) * HEAD_DIM;
                    let q = new.slice(s![.., cols.clone()]);
                    let k = keys.slice(s![.., cols.clone()]);
                    let v = values.slice(s![.., cols.clone()]);
                    let mut scores = Array2::<f32>::zeros((n, total));
                    if n <= 16 {
                        small_matmul_t(q, k, scores.view_mut(), scale);
                    } else {
                        gemm::matmul(q, k.t(), scores.view_mut(), scale, 1);
                    }
                    for i in 0..n {
                        for j in offset + i + 1..total {
                            scores[[i, j]] = f32::NEG_INFINITY;
                        }
                    }
                    softmax_rows(&mut scores.view_mut());
                    let dst = attn.slice_mut(s![rows.clone(), cols]);
                    if n <= 16 {
                        small_matmul(scores.view(), v, dst);
                    } else {
                        gemm::matmul(scores.view(), v, dst, 1.0, 1);
                    }
                }
            }
            x += &layer.out.forward(attn.view(), threads);
            if l + 1 == self.dec_layers.len() {
                for cache in caches.iter_mut() {
                    cache.len = offset + n;
                }
            }
            // Cross-attention: every hypothesis shares the encoder keys/values.
            let h = layer.cross_ln.forward(x.view());
            let q = layer.cross_q.forward(h.view(), threads);
            let mut attn = Array2::<f32>::zeros((batch * n, d));
            for hd in 0..self.dims.n_heads {
                let cols = hd * HEAD_DIM..(hd + 1) * HEAD_DIM;
                let qh = q.slice(s![.., cols.clone()]);
                let kt = cross.kt[l].slice(s![cols.clone(), ..]);
                let vt = cross.vt[l].slice(s![cols.clone(), ..]);
                let mut scores = Array2::<f32>::zeros((batch * n, kt.ncols()));
                let small = batch * n <= 16;
                if small {
                    small_matmul(qh, kt, scores.view_mut());
                    scores *= scale;
                } else {
                    gemm::matmul(qh, kt, scores.view_mut(), scale, threads);
                }
                if heads.contains(&(l, hd)) {
                    attention.push(scores.slice(s![..n, ..]).to_owned());
                }
                softmax_rows(&mut scores.view_mut());
                let dst = attn.slice_mut(s![.., cols]);
                if small {
                    small_matmul_t(scores.view(), vt, dst, 1.0);
                } else {
                    gemm::matmul(scores.view(), vt.t(), dst, 1.0, threads);
                }
            }
            x += &layer.cross_out.forward(attn.view(), threads);
            let h = layer.mlp_ln.forward(x.view());
            let mut h = layer.fc1.forward(h.view(), threads);
            gelu_inplace(&mut h);
            x += &layer.fc2.forward(h.view(), threads);
        }
        // Logits from the tied embedding matrix, only for the rows asked for.
        let picked = if all_logits {
            x
        } else {
            let rows: Vec<usize> = (0..batch).map(|b| b * n + n - 1).collect();
            x.select(Axis(0), &rows)
        };
        let h = self.dec_ln.forward(picked.view());
        // Order the attention matrices as `heads` lists them.
        let mut found: Vec<(usize, usize)> = Vec::new();
        for l in 0..self.dec_layers.len() {
            for hd in 0..self.dims.n_heads {
                if heads.contains(&(l, hd)) {
                    found.push((l, hd));
                }
            }
        }
        let ordered = heads
            .iter()
            .filter_map(|h| found.iter().position(|f| f == h))
            .filter_map(|i| attention.get(i).cloned())
            .collect();
        Ok((h, ordered))
    }

    /// Reorders/duplicates caches after a beam step: `from[i]` is the old hypothesis that the
    /// new hypothesis `i` extends.
    pub fn reorder(caches: &[SelfCache], from: &[usize]) -> Vec<SelfCache> {
        from.iter().filter_map(|&i| caches.get(i).cloned()).collect()
    }
}
