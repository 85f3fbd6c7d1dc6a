//! The handful of tensor operations Whisper needs, on `ndarray`. Large products (the encoder's
//! 1500-row matrices) go to the `gemm` crate ([`super::gemm`]); decoder steps (a few rows) are
//! dot products over contiguous weight rows, split by output columns over scoped threads.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, s};

use super::int8::QuantMatrix;

/// A dense layer, `y = x · Wᵀ + b`, with `W` stored `[out, in]` as both checkpoint formats do;
/// or, once [`Linear::quantize`]d, as 8-bit rows ([`QuantMatrix`], which holds the bias too).
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Array2<f32>,
    pub bias: Option<Array1<f32>>,
    pub int8: Option<QuantMatrix>,
}

#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub gamma: Array1<f32>,
    pub beta: Array1<f32>,
}

/// Below this many output elements per thread a split costs more than it saves.
pub const MIN_WORK_PER_THREAD: usize = 64 * 1024;

impl Linear {
    pub fn new(weight: Array2<f32>, bias: Option<Array1<f32>>) -> Self {
        Self { weight, bias, int8: None }
    }

    /// Switches the layer to 8-bit weights and drops the f32 copy (a quarter of the memory).
    pub fn quantize(&mut self) {
        let q = QuantMatrix::new(self.weight.view(), self.bias.as_ref().and_then(|b| b.as_slice()));
        self.weight = Array2::zeros((0, 0));
        self.int8 = Some(q);
    }

    pub fn out_features(&self) -> usize {
        self.int8.as_ref().map_or(self.weight.nrows(), QuantMatrix::out_features)
    }

    pub fn forward(&self, x: ArrayView2<f32>, threads: usize) -> Array2<f32> {
        let (m, n) = (x.nrows(), self.out_features());
        let threads = threads.max(1).min((m * n / MIN_WORK_PER_THREAD).max(1));
        if let Some(q) = &self.int8 {
            return q.forward(x, threads);
        }
        let mut out = Array2::<f32>::zeros((m, n));
        matmul_t_into(x, self.weight.view(), out.view_mut(), threads);
        if let Some(b) = &self.bias {
            out += b;
        }
        out
    }
}

/// Below this many rows of `x`, products are computed as dot products of contiguous rows:
/// a GEMM would pack (copy) all of `w` for a handful of rows, which dominates decoder steps.
const SMALL_M: usize = 16;

/// Runs `f` compiled for the best vector instructions this CPU has (AVX-512 or AVX2, chosen at
/// run time): the crate itself is built for baseline x86-64 (SSE2), where the loops below would
/// run four lanes wide. Everything `f` calls here is `#[inline(always)]` so it is compiled
/// inside `f` with those instructions.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Dot product with eight independent accumulators so it vectorises.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `out = x · wᵀ` for a few rows of `x`, reading each row of `w` once.
pub fn small_matmul_t(x: ArrayView2<f32>, w: ArrayView2<f32>, out: ArrayViewMut2<f32>, scale: f32) {
    simd(
        #[inline(always)]
        || small_matmul_t_in(x, w, out, scale),
    );
}

#[inline(always)]
fn small_matmul_t_in(x: ArrayView2<f32>, w: ArrayView2<f32>, mut out: ArrayViewMut2<f32>, scale: f32) {
    let xs: Vec<std::borrow::Cow<[f32]>> = x
        .rows()
        .into_iter()
        .map(|r| r.to_slice().map_or_else(|| std::borrow::Cow::Owned(r.to_vec()), std::borrow::Cow::Borrowed))
        .collect();
    let mut wbuf = Vec::new();
    for (j, wr) in w.rows().into_iter().enumerate() {
        let wrow = contiguous(wr, &mut wbuf);
        for (i, xr) in xs.iter().enumerate() {
            out[[i, j]] = scale * dot(xr, wrow);
        }
    }
}

/// `row` as a slice: in place when it is contiguous, else copied into `buf` (a transposed view).
#[inline(always)]
fn contiguous<'a>(row: ArrayView1<'a, f32>, buf: &'a mut Vec<f32>) -> &'a [f32] {
    match row.to_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(row.iter());
            buf
        }
    }
}

/// `out = p · v` for a few rows of `p` (attention weights times values), as row updates.
pub fn small_matmul(p: ArrayView2<f32>, v: ArrayView2<f32>, out: ArrayViewMut2<f32>) {
    simd(
        #[inline(always)]
        || small_matmul_in(p, v, out),
    );
}

#[inline(always)]
fn small_matmul_in(p: ArrayView2<f32>, v: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
    let mut acc = vec![0f32; v.ncols()];
    let mut vbuf = Vec::new();
    for (i, prow) in p.rows().into_iter().enumerate() {
        acc.fill(0.0);
        for (j, &pij) in prow.iter().enumerate() {
            if pij != 0.0 {
                let vrow = contiguous(v.row(j), &mut vbuf);
                for (a, &x) in acc.iter_mut().zip(vrow) {
                    *a += pij * x;
                }
            }
        }
        out.row_mut(i).assign(&ndarray::ArrayView1::from(&acc[..]));
    }
}

/// `out = x · wᵀ`, split over `threads` by rows of `x` (tall inputs) or rows of `w`.
pub fn matmul_t_into(x: ArrayView2<f32>, w: ArrayView2<f32>, mut out: ArrayViewMut2<f32>, threads: usize) {
    let (m, n) = (x.nrows(), w.nrows());
    let threads = threads.max(1).min(n);
    if m <= SMALL_M {
        if threads == 1 {
            small_matmul_t(x, w, out, 1.0);
            return;
        }
        let cols = n.div_ceil(threads);
        std::thread::scope(|scope| {
            for (i, chunk) in out.axis_chunks_iter_mut(Axis(1), cols).enumerate() {
                let ws = w.slice(s![i * cols..i * cols + chunk.ncols(), ..]);
                scope.spawn(move || small_matmul_t(x, ws, chunk, 1.0));
            }
        });
        return;
    }
    super::gemm::matmul(x, w.t(), out, 1.0, threads);
}

impl LayerNorm {
    /// Layer norm over the last axis, eps 1e-5 (PyTorch's default, which Whisper uses).
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.as_standard_layout().into_owned();
        let d = x.ncols();
        let (Some(gamma), Some(beta), Some(data)) = (self.gamma.as_slice(), self.beta.as_slice(), out.as_slice_mut())
        else {
            return out;
        };
        if d == 0 {
            return out;
        }
        simd(
            #[inline(always)]
            || {
                for row in data.chunks_exact_mut(d) {
                    let mean = sum8(row) / d as f32;
                    let mut acc = [0f32; 8];
                    let chunks = row.chunks_exact(8);
                    let rest: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
                    for c in chunks {
                        for k in 0..8 {
                            acc[k] += (c[k] - mean) * (c[k] - mean);
                        }
                    }
                    let var = (acc.iter().sum::<f32>() + rest) / d as f32;
                    let inv = 1.0 / (var + 1e-5).sqrt();
                    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                        *v = (*v - mean) * inv * g + b;
                    }
                }
            },
        );
        out
    }
}

/// Exact GELU, `x · Φ(x)`, as PyTorch's default `nn.GELU()` (erf to within 1.5e-7).
pub fn gelu_inplace(x: &mut Array2<f32>) {
    if let Some(v) = x.as_slice_mut() {
        simd(
            #[inline(always)]
            || {
                for v in v.iter_mut() {
                    *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
                }
            },
        );
    } else {
        x.mapv_inplace(|v| 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2)));
    }
}

/// Error function, Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), branch-free so loops over it
/// vectorise.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// `e^x` in f32 to about 1 ulp (Cephes' polynomial after reduction by powers of two), written
/// without branches or calls so that loops over it vectorise; x below −87 gives 0 (−∞ too).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let g = xc - n * LN2_HI - n * LN2_LO;
    let p =
        ((((1.987_569_1e-4 * g + 1.398_2e-3) * g + 8.333_452e-3) * g + 4.166_579_6e-2) * g + 0.166_666_65) * g + 0.5;
    let y = p * g * g + g + 1.0;
    let bits = (t.to_bits().wrapping_sub(ROUND.to_bits()) as i32).wrapping_add(127) << 23;
    let r = y * f32::from_bits(bits as u32);
    if x < -87.0 { 0.0 } else { r }
}

/// Softmax over each row, in place (max-subtracted; rows of only -inf stay -inf-free zeros).
pub fn softmax_rows(x: &mut ArrayViewMut2<f32>) {
    simd(
        #[inline(always)]
        || {
            for mut row in x.rows_mut() {
                softmax_in(row.as_slice_mut().unwrap_or(&mut []));
            }
        },
    );
}

pub fn softmax_slice(row: &mut [f32]) {
    simd(
        #[inline(always)]
        || softmax_in(row),
    );
}

#[inline(always)]
fn softmax_in(row: &mut [f32]) {
    let max = max_of(row);
    if !max.is_finite() {
        return;
    }
    // Eight lanes so the exponentials and the sum vectorise.
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for k in 0..8 {
            let e = exp(c[k] - max);
            c[k] = e;
            acc[k] += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Sum with eight independent accumulators so it vectorises.
#[inline(always)]
fn sum8(row: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Largest value (−∞ for an empty slice), eight lanes at a time.
#[inline(always)]
pub fn max_of(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
        }
    }
    rest.iter().chain(acc.iter()).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `log_softmax` of one row into a new vector.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    simd(
        #[inline(always)]
        || {
            let max = max_of(row);
            let mut acc = [0f32; 8];
            let chunks = row.chunks_exact(8);
            let rest: f32 = chunks.remainder().iter().map(|v| exp(v - max)).sum();
            for c in chunks {
                for k in 0..8 {
                    acc[k] += exp(c[k] - max);
                }
            }
            let lse = max + (acc.iter().sum::<f32>() + rest).ln();
            row.iter().map(|v| v - lse).collect()
        },
    )
}

pub fn logsumexp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + row.iter().map(|v| exp(v - max)).sum::<f32>().ln()
}

/// IEEE 754 half → single precision (CTranslate2 and most safetensors checkpoints store fp16).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 → f32 (the upper half of an f32).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0f64;
        for i in -87_000..88_000 {
            let x = i as f32 / 1000.0 + 0.000_37;
            let want = f64::from(x).exp();
            let rel = ((f64::from(exp(x)) - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_values() {
        for (x, want) in
            [(0.0f32, 0.0f32), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3), (3.0, 0.999_977_9)]
        {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn threaded_matmul_equals_single() {
        let x = Array2::from_shape_fn((300, 70), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let w = Array2::from_shape_fn((90, 70), |(i, j)| ((i + 2 * j) % 5) as f32 * 0.5);
        let want = x.dot(&w.t());
        for threads in [1, 2, 3] {
            let mut out = Array2::zeros((300, 90));
            matmul_t_into(x.view(), w.view(), out.view_mut(), threads);
            assert_eq!(out, want);
            let mut one = Array2::zeros((2, 90));
            matmul_t_into(x.slice(s![..2, ..]), w.view(), one.view_mut(), threads);
            assert_eq!(one, want.slice(s![..2, ..]));
            // Strided operands (column slices, as attention heads are).
            let mut strided = Array2::zeros((3, 90));
            let xs = x.slice(s![..3, 5..69]);
            let ws = w.slice(s![.., 1..65]);
            matmul_t_into(xs, ws, strided.view_mut(), threads);
            assert_eq!(strided, xs.dot(&ws.t()));
        }
        let p = Array2::from_shape_fn((2, 300), |(i, j)| ((i + j) % 3) as f32 * 0.25);
        let mut out = Array2::zeros((2, 70));
        small_matmul(p.view(), x.view(), out.view_mut());
        let want = p.dot(&x);
        for (a, b) in out.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-3 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
