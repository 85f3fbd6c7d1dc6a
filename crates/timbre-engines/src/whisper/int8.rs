//! 8-bit linear layers: what CTranslate2's `compute_type=int8` does, and why it is faster than
//! f32 on CPUs with AVX-512 VNNI. Weights are quantized once at load, per output row (one scale
//! per row: `w ≈ scale · q`, `q` in −127..=127); activations are quantized per row on every call
//! the same way. Products accumulate exactly in i32 and are scaled back to f32 with the bias.
//!
//! `vpdpbusd` multiplies *unsigned* bytes by signed ones, so activations are stored as `q + 128`
//! (0..=255) and the surplus `128 · Σₖ w_q[j, k]` is subtracted per output column at the end (it
//! is computed once per weight row at load). Weights are packed for the kernel: panels of
//! [`NR`] output columns, and inside a panel, for every group of four inputs, the four bytes of
//! each column next to each other, so one 64-byte load feeds sixteen columns of one `vpdpbusd`.
//!
//! Without AVX-512 VNNI the same arithmetic runs as scalar code (correct, slow): the engine then
//! defaults to float32 (see [`super::model::Compute`]).
#![allow(unsafe_code)]

use ndarray::{Array2, ArrayView2, Axis};

/// Output columns per packed panel: four 16-lane vectors.
const NR: usize = 64;
/// Activation rows per micro-tile: 6 rows × 4 vectors = 24 accumulators of the 32 registers.
const MR: usize = 6;

/// A weight matrix `[n outputs, k inputs]` quantized per output row, packed for the kernel.
#[derive(Clone, Debug)]
pub struct QuantMatrix {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4 (padding bytes are zero weights).
    kp: usize,
    /// `panels × kp/4 × NR × 4` bytes.
    packed: Vec<i8>,
    /// Per output column, padded with zeros to whole panels: the weight scale, the +128
    /// compensation and the bias (zeros when the layer has none).
    scales: Vec<f32>,
    comp: Vec<i32>,
    bias: Vec<f32>,
}

/// Whether this CPU runs the AVX-512 VNNI kernel (checked once).
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Activations of one call quantized per row: `x[i, k] ≈ scale[i] · (data[i, k] − 128)`.
struct QuantRows {
    data: Vec<u8>,
    scales: Vec<f32>,
    kp: usize,
}

fn quantize_rows(x: ArrayView2<f32>, kp: usize) -> QuantRows {
    let (m, k) = x.dim();
    let mut data = vec![128u8; m * kp];
    let mut scales = vec![0f32; m];
    for ((row, dst), scale) in x.rows().into_iter().zip(data.chunks_exact_mut(kp)).zip(&mut scales) {
        let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        *scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        let inv = 1.0 / *scale;
        match row.as_slice() {
            Some(src) => quantize_slice(src, inv, &mut dst[..k]),
            None => {
                let src = row.to_vec();
                quantize_slice(&src, inv, &mut dst[..k]);
            }
        }
    }
    QuantRows { data, scales, kp }
}

/// `dst = round(src · inv) + 128`, rounding to nearest even (what `vcvtps2dq` does).
fn quantize_slice(src: &[f32], inv: f32, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if vnni_available() {
        // SAFETY: the features the function is compiled for were detected at run time.
        unsafe { x86::quantize_slice(src, inv, dst) };
        return;
    }
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = ((v * inv).round_ties_even().clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
}

impl QuantMatrix {
    /// Quantizes `w` (`[n, k]`, one row per output) and packs it; `bias` has `n` entries.
    pub fn new(w: ArrayView2<f32>, bias: Option<&[f32]>) -> Self {
        let (n, k) = w.dim();
        let kp = k.div_ceil(4) * 4;
        let panels = n.div_ceil(NR);
        let np = panels * NR;
        let mut packed = vec![0i8; panels * kp * NR];
        let (mut scales, mut comp, mut padded_bias) = (vec![0f32; np], vec![0i32; np], vec![0f32; np]);
        for (j, row) in w.rows().into_iter().enumerate() {
            let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            let inv = 1.0 / scale;
            let base = (j / NR) * kp * NR + (j % NR) * 4;
            let mut sum = 0i32;
            for (kk, &v) in row.iter().enumerate() {
                let q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
                sum += i32::from(q);
                packed[base + (kk / 4) * NR * 4 + kk % 4] = q;
            }
            scales[j] = scale;
            comp[j] = 128 * sum;
        }
        if let Some(b) = bias {
            padded_bias[..n].copy_from_slice(&b[..n]);
        }
        Self { n, k, kp, packed, scales, comp, bias: padded_bias }
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    /// The weight scale of each output row (`w ≈ scale · q`).
    pub fn scales(&self) -> &[f32] {
        &self.scales[..self.n]
    }

    /// Bytes held (for memory accounting in docs and tests).
    pub fn bytes(&self) -> usize {
        self.packed.len() + 12 * self.scales.len()
    }

    /// The quantized weight `w_q[j, k]` (test and fallback access to the packed layout).
    fn weight(&self, j: usize, kk: usize) -> i8 {
        self.packed[(j / NR) * self.kp * NR + (kk / 4) * NR * 4 + (j % NR) * 4 + kk % 4]
    }

    /// `x · Wᵀ + b` for `x [m, k]`, threads over rows (tall `x`) or over output panels.
    pub fn forward(&self, x: ArrayView2<f32>, threads: usize) -> Array2<f32> {
        let m = x.nrows();
        assert_eq!(x.ncols(), self.k, "int8 linear: {} inputs for a {}-input layer", x.ncols(), self.k);
        let mut out = Array2::<f32>::zeros((m, self.n));
        if m == 0 || self.n == 0 {
            return out;
        }
        let q = quantize_rows(x, self.kp);
        let panels = self.n.div_ceil(NR);
        let threads = threads.max(1);
        if threads == 1 {
            self.block(&q, 0, m, 0, panels, OutPtr(out.as_mut_ptr()));
            return out;
        }
        let n = self.n;
        if m >= threads * 2 * MR {
            // Rows: each thread a contiguous run of whole micro-tiles.
            let per = m.div_ceil(threads).div_ceil(MR) * MR;
            std::thread::scope(|scope| {
                for (t, mut chunk) in out.axis_chunks_iter_mut(Axis(0), per).enumerate() {
                    let q = &q;
                    let rows = chunk.nrows();
                    let ptr = OutPtr(chunk.as_mut_ptr());
                    scope.spawn(move || self.block(q, t * per, rows, 0, panels, ptr));
                }
            });
        } else {
            // Columns: each thread a run of whole panels (decoder steps, the vocabulary).
            let per_panels = panels.div_ceil(threads);
            std::thread::scope(|scope| {
                for (t, mut chunk) in out.axis_chunks_iter_mut(Axis(1), per_panels * NR).enumerate() {
                    let q = &q;
                    let p0 = t * per_panels;
                    let p1 = (p0 + per_panels).min(panels);
                    debug_assert_eq!(chunk.ncols(), (p1 * NR).min(n) - p0 * NR);
                    let ptr = OutPtr(chunk.as_mut_ptr());
                    scope.spawn(move || self.block(q, 0, m, p0, p1, ptr));
                }
            });
        }
        out
    }

    /// Rows `r0..r0 + rows` of the product, output panels `p0..p1`, written through `out`,
    /// which points at element (r0, p0·NR) of the row-major `[m, n]` result.
    fn block(&self, q: &QuantRows, r0: usize, rows: usize, p0: usize, p1: usize, out: OutPtr) {
        #[cfg(target_arch = "x86_64")]
        if vnni_available() {
            // SAFETY: features detected; `out` addresses `rows` rows of stride `n` and the
            // columns of panels p0..p1 (clipped to n), which the caller's view owns.
            unsafe { x86::block(self, q, r0, rows, p0, p1, out.0) };
            return;
        }
        for i in 0..rows {
            let a = &q.data[(r0 + i) * q.kp..(r0 + i + 1) * q.kp];
            for j in p0 * NR..(p1 * NR).min(self.n) {
                let mut acc = 0i32;
                for (kk, &av) in a.iter().enumerate().take(self.k) {
                    acc += i32::from(av) * i32::from(self.weight(j, kk));
                }
                let v = (acc - self.comp[j]) as f32 * self.scales[j] * q.scales[r0 + i] + self.bias[j];
                // SAFETY: as above; (i, j − p0·NR) lies inside the caller's view.
                unsafe { *out.0.add(i * self.n + j - p0 * NR) = v };
            }
        }
    }
}

/// The output pointer handed to a thread; each thread writes a disjoint part of the result.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: threads receive pointers into disjoint sub-views of one array (see `forward`).
unsafe impl Send for OutPtr {}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, NR, QuantMatrix, QuantRows};

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn quantize_slice(src: &[f32], inv: f32, dst: &mut [u8]) {
        let n = src.len().min(dst.len());
        let scale = _mm512_set1_ps(inv);
        let (lo, hi, off) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127), _mm512_set1_epi32(128));
        let mut i = 0;
        while i < n {
            let left = n - i;
            let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
            // SAFETY: masked lanes stay inside both slices.
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i));
                let q = _mm512_cvtps_epi32(_mm512_mul_ps(v, scale));
                let q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
                _mm512_mask_cvtepi32_storeu_epi8(dst.as_mut_ptr().add(i).cast(), mask, q);
            }
            i += 16;
        }
    }

    /// See [`QuantMatrix::block`]. Rows are taken in blocks whose activations stay in the
    /// L2 cache while every panel of the weights passes over them.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn block(w: &QuantMatrix, q: &QuantRows, r0: usize, rows: usize, p0: usize, p1: usize, out: *mut f32) {
        let block_rows = ((128 * 1024 / w.kp.max(1)) / MR).max(1) * MR;
        let mut b0 = 0;
        while b0 < rows {
            let b1 = (b0 + block_rows).min(rows);
            for p in p0..p1 {
                let mut i = b0;
                while i < b1 {
                    let r = (b1 - i).min(MR);
                    // SAFETY: the caller's guarantees, for rows i..i+r and panel p.
                    unsafe {
                        match r {
                            6 => tile::<6>(w, q, r0 + i, p, out.add(i * w.n + (p - p0) * NR)),
                            5 => tile::<5>(w, q, r0 + i, p, out.add(i * w.n + (p - p0) * NR)),
                            4 => tile::<4>(w, q, r0 + i, p, out.add(i * w.n + (p - p0) * NR)),
                            3 => tile::<3>(w, q, r0 + i, p, out.add(i * w.n + (p - p0) * NR)),
                            2 => tile::<2>(w, q, r0 + i, p, out.add(i * w.n + (p - p0) * NR)),
                            _ => tile::<1>(w, q, r0 + i, p, out.add(i * w.n + (p - p0) * NR)),
                        }
                    }
                    i += r;
                }
            }
            b0 = b1;
        }
    }

    /// `R` activation rows (from `row`) times panel `p`: 4·R accumulators of 16 columns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile<const R: usize>(w: &QuantMatrix, q: &QuantRows, row: usize, p: usize, out: *mut f32) {
        let groups = w.kp / 4;
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        // SAFETY (whole body): `b` walks panel p (groups × 256 bytes); `a` rows row..row+R of
        // the quantized activations (kp bytes each); stores are masked to the n columns.
        unsafe {
            let mut b = w.packed.as_ptr().add(p * w.kp * NR);
            let a = q.data.as_ptr().add(row * q.kp);
            for g in 0..groups {
                let b0 = _mm512_loadu_si512(b.cast());
                let b1 = _mm512_loadu_si512(b.add(64).cast());
                let b2 = _mm512_loadu_si512(b.add(128).cast());
                let b3 = _mm512_loadu_si512(b.add(192).cast());
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32(a.add(r * q.kp + g * 4).cast::<i32>().read_unaligned());
                    acc[0] = _mm512_dpbusd_epi32(acc[0], av, b0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], av, b1);
                    acc[2] = _mm512_dpbusd_epi32(acc[2], av, b2);
                    acc[3] = _mm512_dpbusd_epi32(acc[3], av, b3);
                }
                b = b.add(256);
            }
            let j0 = p * NR;
            for (v, _) in acc[0].iter().enumerate() {
                let j = j0 + v * 16;
                if j >= w.n {
                    break;
                }
                let left = w.n - j;
                let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
                let comp = _mm512_loadu_si512(w.comp.as_ptr().add(j).cast());
                let scale = _mm512_loadu_ps(w.scales.as_ptr().add(j));
                let bias = _mm512_loadu_ps(w.bias.as_ptr().add(j));
                for (r, acc) in acc.iter().enumerate() {
                    let sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[v], comp));
                    let s = _mm512_mul_ps(scale, _mm512_set1_ps(q.scales[row + r]));
                    let y = _mm512_fmadd_ps(sum, s, bias);
                    _mm512_mask_storeu_ps(out.add(r * w.n + v * 16), mask, y);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn data(m: usize, k: usize, seed: u64) -> Array2<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        Array2::from_shape_fn((m, k), |_| (rng.f32() - 0.5) * 4.0 * if rng.u8(..) < 8 { 10.0 } else { 1.0 })
    }

    /// Every output is within the worst case of the two rounding errors (half a step of each
    /// factor, summed over k) of the exact f32 product, and the kernel equals the scalar path.
    #[test]
    fn matches_f32_within_quantization_error() {
        for &(m, k, n) in &[(1, 384, 1000), (7, 50, 130), (13, 384, 64), (40, 1536, 200), (3, 3, 5)] {
            let x = data(m, k, 1 + m as u64);
            let w = data(n, k, 2 + n as u64);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
            let qm = QuantMatrix::new(w.view(), Some(&bias));
            let exact = x.dot(&w.t());
            for threads in [1, 2, 3] {
                let got = qm.forward(x.view(), threads);
                for i in 0..m {
                    let amax = x.row(i).iter().fold(0f32, |a, v| a.max(v.abs()));
                    let sa = amax / 127.0;
                    for j in 0..n {
                        let sw = qm.scales[j];
                        let bound: f32 = (0..k)
                            .map(|kk| x[[i, kk]].abs() * sw / 2.0 + w[[j, kk]].abs() * sa / 2.0 + sa * sw / 4.0)
                            .sum();
                        let err = (got[[i, j]] - exact[[i, j]] - bias[j]).abs();
                        assert!(err <= bound * 1.001 + 1e-4, "({m},{k},{n}) [{i},{j}]: error {err} > bound {bound}");
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_equals_scalar_arithmetic() {
        let (m, k, n) = (9, 100, 150);
        let x = data(m, k, 5);
        let w = data(n, k, 6);
        let qm = QuantMatrix::new(w.view(), None);
        let got = qm.forward(x.view(), 2);
        let q = quantize_rows(x.view(), qm.kp);
        for i in 0..m {
            for j in 0..n {
                let acc: i32 =
                    (0..k).map(|kk| (i32::from(q.data[i * qm.kp + kk]) - 128) * i32::from(qm.weight(j, kk))).sum();
                let want = acc as f32 * qm.scales[j] * q.scales[i];
                assert!(
                    (got[[i, j]] - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "[{i},{j}] {} vs {want}",
                    got[[i, j]]
                );
            }
        }
        // Zero rows stay zero (scale 1, nothing to divide by).
        let zero = qm.forward(Array2::<f32>::zeros((2, k)).view(), 1);
        assert!(zero.iter().all(|&v| v == 0.0));
    }
}
