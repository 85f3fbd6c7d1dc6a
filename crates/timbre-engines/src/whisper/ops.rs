//! The handful of tensor operations Whisper needs, on `ndarray` with `matrixmultiply`'s SIMD
//! GEMM underneath. Row-parallel over scoped threads: the encoder's 1500-row matrices split
//! evenly; decoder steps (a few rows) split the output columns instead.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, s};

/// A dense layer, `y = x · Wᵀ + b`, with `W` stored `[out, in]` as both checkpoint formats do.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Array2<f32>,
    pub bias: Option<Array1<f32>>,
}

#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub gamma: Array1<f32>,
    pub beta: Array1<f32>,
}

/// Below this many output elements per thread a split costs more than it saves.
const MIN_WORK_PER_THREAD: usize = 64 * 1024;

impl Linear {
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    pub fn forward(&self, x: ArrayView2<f32>, threads: usize) -> Array2<f32> {
        let (m, n) = (x.nrows(), self.out_features());
        let mut out = Array2::<f32>::zeros((m, n));
        let threads = threads.max(1).min((m * n / MIN_WORK_PER_THREAD).max(1));
        matmul_t_into(x, self.weight.view(), out.view_mut(), threads);
        if let Some(b) = &self.bias {
            out += b;
        }
        out
    }
}

/// `out = x · wᵀ`, split over `threads` by rows of `x` (tall inputs) or rows of `w`.
pub fn matmul_t_into(x: ArrayView2<f32>, w: ArrayView2<f32>, mut out: ArrayViewMut2<f32>, threads: usize) {
    let (m, n) = (x.nrows(), w.nrows());
    let threads = threads.max(1).min(n);
    if threads == 1 {
        ndarray::linalg::general_mat_mul(1.0, &x, &w.t(), 0.0, &mut out);
        return;
    }
    if m >= threads * 16 {
        let rows = m.div_ceil(threads);
        std::thread::scope(|scope| {
            for (i, chunk) in out.axis_chunks_iter_mut(Axis(0), rows).enumerate() {
                let xs = x.slice(s![i * rows..i * rows + chunk.nrows(), ..]);
                scope.spawn(move || {
                    let mut chunk = chunk;
                    ndarray::linalg::general_mat_mul(1.0, &xs, &w.t(), 0.0, &mut chunk);
                });
            }
        });
    } else {
        let cols = n.div_ceil(threads);
        std::thread::scope(|scope| {
            for (i, chunk) in out.axis_chunks_iter_mut(Axis(1), cols).enumerate() {
                let ws = w.slice(s![i * cols..i * cols + chunk.ncols(), ..]);
                scope.spawn(move || {
                    let mut chunk = chunk;
                    ndarray::linalg::general_mat_mul(1.0, &x, &ws.t(), 0.0, &mut chunk);
                });
            }
        });
    }
}

impl LayerNorm {
    /// Layer norm over the last axis, eps 1e-5 (PyTorch's default, which Whisper uses).
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        let d = x.ncols() as f32;
        for mut row in out.rows_mut() {
            let mean = row.sum() / d;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
            let inv = 1.0 / (var + 1e-5).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
        out
    }
}

/// Exact GELU, `x · Φ(x)`, as PyTorch's default `nn.GELU()`.
pub fn gelu_inplace(x: &mut Array2<f32>) {
    x.mapv_inplace(|v| 0.5 * v * (1.0 + erf(v / std::f32::consts::SQRT_2)));
}

/// Error function, Abramowitz–Stegun 7.1.26 refined in f64 (|error| < 1.2e-7).
pub fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    // Numerical Recipes' erfc approximation (fractional error < 1.2e-7 everywhere).
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    (if x >= 0.0 { 1.0 - y } else { y - 1.0 }) as f32
}

/// Softmax over each row, in place (max-subtracted; rows of only -inf stay -inf-free zeros).
pub fn softmax_rows(x: &mut ArrayViewMut2<f32>) {
    for mut row in x.rows_mut() {
        softmax_slice(row.as_slice_mut().unwrap_or(&mut []));
    }
}

pub fn softmax_slice(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// `log_softmax` of one row into a new vector.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|v| v - lse).collect()
}

pub fn logsumexp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
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
    fn erf_values() {
        for (x, want) in
            [(0.0f32, 0.0f32), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3), (3.0, 0.999_977_9)]
        {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
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
        }
    }
}
