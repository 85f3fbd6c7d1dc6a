//! BeatNet's network run in Rust, with the weights read from its ONNX file: a 1-D convolution
//! over each frame's 272 features (2 channels, kernel 10) → ReLU → max-pool 2 → dense 262→150 →
//! two LSTM layers of 150 → dense 150→3 → softmax (beat, downbeat, none).
//!
//! Why not ONNX Runtime: the graph is exported for one frame at a time, so a song was one runtime
//! call per 20 ms frame and model (~200 µs each, almost all dispatch). Here everything but the
//! recurrence runs as whole-sequence matrix products, and a recurrent step is two 600×150
//! matrix-vector products streamed from cache — a few microseconds — so the three models can
//! listen to the whole song instead of two excerpts. `tests/onnx_reference.rs` checks the
//! probabilities against ONNX Runtime running the same file frame by frame.

use ndarray::{Array1, Array2, ArrayView2};

use crate::onnx::graph::{Graph, Node};
use crate::whisper::ops::{Linear, exp, simd};

pub const FEATURES: usize = 272;
const HIDDEN: usize = 150;
const GATES: usize = 4 * HIDDEN;
const KERNEL: usize = 10;
const CHANNELS: usize = 2;
const CONV_OUT: usize = FEATURES - KERNEL + 1;
const POOLED: usize = CONV_OUT / 2;
const FLAT: usize = CHANNELS * POOLED;
/// Gate units per block of the step product: 64 sums (eight AVX2 registers) stay in registers
/// while the block's weights stream past.
const BLOCK: usize = 64;
const PADDED_GATES: usize = GATES.div_ceil(BLOCK) * BLOCK;
/// Frames per pass through the layers: the intermediate activations of a chunk (~1 MB) stay in
/// cache and are reused, where whole-song buffers (tens of MB per model) would be page-faulted in.
const CHUNK: usize = 256;
/// The graph's computing nodes, in order (layout nodes — reshapes, slices — left out).
const OPS: [&str; 9] = ["Conv", "Relu", "MaxPool", "Gemm", "LSTM", "LSTM", "MatMul", "Add", "Softmax"];

/// One LSTM layer (ONNX gate order i, o, f, c; sigmoid and tanh; no peepholes).
struct Lstm {
    /// Input weights `W` [600, in] with both biases (`Wb + Rb`): applied to a whole sequence.
    input: Linear,
    /// Recurrent weights `R` [600, 150] regrouped for the step product: blocks of [`BLOCK`] gate
    /// units, each stored hidden-unit-major (`[k][unit]`), zero-padded to [`PADDED_GATES`].
    recurrent: Vec<f32>,
}

pub struct Crnn {
    conv_w: [[f32; KERNEL]; CHANNELS],
    conv_b: [f32; CHANNELS],
    dense: Linear,
    layers: [Lstm; 2],
    /// The output layer as `[3, 150]` (the graph's MatMul weight transposed) with its bias.
    output: Linear,
}

fn ints<'a>(node: &'a Node, name: &str) -> &'a [i64] {
    node.ints.get(name).map_or(&[], Vec::as_slice)
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("not BeatNet's graph: {what}")) }
}

fn input(node: &Node, i: usize) -> Result<&str, String> {
    node.inputs.get(i).map(String::as_str).ok_or_else(|| format!("{} node lacks input {i}", node.op))
}

impl Lstm {
    fn from_node(graph: &Graph, node: &Node, input_size: usize) -> Result<Self, String> {
        check(ints(node, "hidden_size") == [HIDDEN as i64], "LSTM hidden size")?;
        // Any other attribute (direction, activations, clip, input_forget) changes the cell.
        check(node.attributes == ["hidden_size"], "LSTM options")?;
        check(node.inputs.len() <= 7 || node.inputs[7].is_empty(), "LSTM peepholes")?;
        check(node.inputs.get(4).is_none_or(String::is_empty), "LSTM sequence lengths")?;
        let w = graph.tensor(input(node, 1)?, &[1, GATES, input_size])?;
        let r = graph.tensor(input(node, 2)?, &[1, GATES, HIDDEN])?;
        let b = graph.tensor(input(node, 3)?, &[1, 2 * GATES])?;
        let bias: Array1<f32> = (0..GATES).map(|j| b.data[j] + b.data[GATES + j]).collect();
        let weight = Array2::from_shape_vec((GATES, input_size), w.data.clone()).map_err(|e| e.to_string())?;
        let mut recurrent = vec![0f32; PADDED_GATES * HIDDEN];
        for j in 0..GATES {
            let (block, lane) = (j / BLOCK, j % BLOCK);
            for k in 0..HIDDEN {
                recurrent[(block * HIDDEN + k) * BLOCK + lane] = r.data[j * HIDDEN + k];
            }
        }
        Ok(Self { input: Linear::new(weight, Some(bias)), recurrent })
    }

    /// The layer's outputs for a stretch of the sequence, continuing from `state` (hidden, cell),
    /// which is left at the stretch's end.
    fn run(&self, x: ArrayView2<f32>, state: &mut ([f32; HIDDEN], [f32; HIDDEN])) -> Array2<f32> {
        let pre = self.input.forward(x, 1);
        let n = pre.nrows();
        let mut out = Array2::<f32>::zeros((n, HIDDEN));
        let (Some(pre), Some(hs)) = (pre.as_slice(), out.as_slice_mut()) else { return out };
        simd(
            #[inline(always)]
            || {
                let (h, c) = state;
                let mut g = [0f32; PADDED_GATES];
                for (pre, h_out) in pre.chunks_exact(GATES).zip(hs.chunks_exact_mut(HIDDEN)) {
                    step_product(&self.recurrent, h, &mut g);
                    for (gj, p) in g.iter_mut().zip(pre) {
                        *gj += p;
                    }
                    let (i, rest) = g.split_at(HIDDEN);
                    let (o, rest) = rest.split_at(HIDDEN);
                    let (f, cand) = rest.split_at(HIDDEN);
                    for k in 0..HIDDEN {
                        c[k] = sigmoid(f[k]) * c[k] + sigmoid(i[k]) * tanh(cand[k]);
                        h[k] = sigmoid(o[k]) * tanh(c[k]);
                    }
                    h_out.copy_from_slice(h);
                }
            },
        );
        out
    }
}

/// `g[j] = Σ_k R[j][k]·h[k]` for every gate unit `j`, from the blocked layout.
#[inline(always)]
fn step_product(packed: &[f32], h: &[f32; HIDDEN], g: &mut [f32; PADDED_GATES]) {
    for (block, out) in packed.chunks_exact(HIDDEN * BLOCK).zip(g.chunks_exact_mut(BLOCK)) {
        let mut acc = [0f32; BLOCK];
        for (col, &hk) in block.chunks_exact(BLOCK).zip(h) {
            for (a, w) in acc.iter_mut().zip(col) {
                // Fused (one rounding): FMA instructions inside `simd`'s AVX2/AVX-512 builds.
                *a = w.mul_add(hk, *a);
            }
        }
        out.copy_from_slice(&acc);
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh` through `exp`, exact at both ends (±1) and vectorisable.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

impl Crnn {
    /// The network in an ONNX file exported as BeatNet's (checked node by node and shape by
    /// shape; anything else is refused with the reason).
    pub fn from_onnx(model: &[u8]) -> Result<Self, String> {
        let graph = Graph::read(model)?;
        check(graph.compute_ops() == OPS, "unexpected operators")?;
        let node = |op: &str, nth: usize| {
            graph.nodes.iter().filter(|n| n.op == op).nth(nth).ok_or_else(|| format!("no {op} node"))
        };
        let conv = node("Conv", 0)?;
        check(ints(conv, "kernel_shape") == [KERNEL as i64], "convolution kernel")?;
        for (attr, ok) in [("strides", [1].as_slice()), ("dilations", &[1]), ("pads", &[0, 0]), ("group", &[1])] {
            check(ints(conv, attr).is_empty() || ints(conv, attr) == ok, "convolution options")?;
        }
        check(conv.attributes.iter().all(|a| a == "kernel_shape" || conv.ints.contains_key(a)), "convolution options")?;
        let pool = node("MaxPool", 0)?;
        check(ints(pool, "kernel_shape") == [2] && ints(pool, "strides") == [2], "pooling")?;
        check(
            ["pads", "ceil_mode"].iter().all(|a| ints(pool, a).iter().all(|v| *v == 0))
                && ints(pool, "dilations").iter().all(|v| *v == 1)
                && pool.attributes.iter().all(|a| pool.ints.contains_key(a)),
            "pooling options",
        )?;
        let w = graph.tensor(input(conv, 1)?, &[CHANNELS, 1, KERNEL])?;
        let b = graph.tensor(input(conv, 2)?, &[CHANNELS])?;
        let mut conv_w = [[0f32; KERNEL]; CHANNELS];
        for (ch, row) in conv_w.iter_mut().enumerate() {
            row.copy_from_slice(&w.data[ch * KERNEL..(ch + 1) * KERNEL]);
        }
        let conv_b = [b.data[0], b.data[1]];

        let gemm = node("Gemm", 0)?;
        check(ints(gemm, "transB") == [1] && ints(gemm, "transA").iter().all(|v| *v == 0), "dense layout")?;
        check(gemm.floats.values().all(|v| *v == 1.0), "dense scaling")?;
        let w = graph.tensor(input(gemm, 1)?, &[HIDDEN, FLAT])?;
        let b = graph.tensor(input(gemm, 2)?, &[HIDDEN])?;
        let dense = Linear::new(
            Array2::from_shape_vec((HIDDEN, FLAT), w.data.clone()).map_err(|e| e.to_string())?,
            Some(Array1::from(b.data.clone())),
        );
        let layers =
            [Lstm::from_node(&graph, node("LSTM", 0)?, HIDDEN)?, Lstm::from_node(&graph, node("LSTM", 1)?, HIDDEN)?];

        let matmul = node("MatMul", 0)?;
        let w = graph.tensor(input(matmul, 1)?, &[HIDDEN, 3])?;
        let add = node("Add", 0)?;
        let bias_name = add.inputs.iter().find(|i| graph.initializers.contains_key(*i)).ok_or("no output bias")?;
        let b = graph.tensor(bias_name, &[3])?;
        let wt = Array2::from_shape_vec((HIDDEN, 3), w.data.clone()).map_err(|e| e.to_string())?.t().to_owned();
        let output = Linear::new(wt, Some(Array1::from(b.data.clone())));
        Ok(Self { conv_w, conv_b, dense, layers, output })
    }

    /// (beat, downbeat, none) probabilities of every frame of `features` (frame-major, 272 per
    /// frame), from a zero LSTM state.
    pub fn probabilities(&self, features: &[f32]) -> Vec<[f32; 3]> {
        let mut states = [([0f32; HIDDEN], [0f32; HIDDEN]); 2];
        let mut out = Vec::with_capacity(features.len() / FEATURES);
        for chunk in features.chunks(CHUNK * FEATURES) {
            let x = self.dense.forward(self.pooled(chunk).view(), 1);
            let [first, second] = &mut states;
            let h1 = self.layers[0].run(x.view(), first);
            let h2 = self.layers[1].run(h1.view(), second);
            let logits = self.output.forward(h2.view(), 1);
            out.extend(logits.rows().into_iter().map(|z| {
                let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e = [(z[0] - m).exp(), (z[1] - m).exp(), (z[2] - m).exp()];
                let s = e[0] + e[1] + e[2];
                [e[0] / s, e[1] / s, e[2] / s]
            }));
        }
        out
    }

    /// Convolution, ReLU and max-pooling of each frame: the dense layer's input.
    fn pooled(&self, features: &[f32]) -> Array2<f32> {
        let mut pooled = Array2::<f32>::zeros((features.len() / FEATURES, FLAT));
        for (f, row) in features.chunks_exact(FEATURES).zip(pooled.rows_mut()) {
            let Some(row) = row.into_slice() else { continue };
            for ch in 0..CHANNELS {
                let w = &self.conv_w[ch];
                let conv = |p: usize| self.conv_b[ch] + f[p..p + KERNEL].iter().zip(w).map(|(a, b)| a * b).sum::<f32>();
                for p in 0..POOLED {
                    // ReLU then max-pool: max(relu(a), relu(b)) = relu(max(a, b)).
                    row[ch * POOLED + p] = conv(2 * p).max(conv(2 * p + 1)).max(0.0);
                }
            }
        }
        pooled
    }
}
