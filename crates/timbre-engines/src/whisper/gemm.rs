//! A safe front for the `gemm` crate's f32 matrix product (AVX-512/AVX2/FMA kernels picked at
//! run time, optional Rayon threads), which the encoder's large products use.
//!
//! `gemm::gemm` takes raw pointers and element strides. Every call here derives them from
//! `ndarray` views whose shapes were checked against each other, so each pointer addresses
//! exactly the elements the view owns or borrows, and the output is a unique (`&mut`) view
//! that cannot alias the inputs: the conditions `gemm` documents for soundness.
#![allow(unsafe_code)]

use ndarray::{ArrayView2, ArrayViewMut2};

/// `out = scale · a · b` for `a [m, k]`, `b [k, n]`, `out [m, n]` (any strides).
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, mut out: ArrayViewMut2<f32>, scale: f32, threads: usize) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && out.dim() == (m, n), "gemm shapes {:?} · {:?} → {:?}", a.dim(), b.dim(), out.dim());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (o_rs, o_cs) = (out.strides()[0], out.strides()[1]);
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: see the module comment; shapes were checked above, strides come from the views.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            o_cs,
            o_rs,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    #[test]
    fn matches_ndarray_for_any_strides() {
        let a = Array2::from_shape_fn((37, 50), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let b = Array2::from_shape_fn((60, 50), |(i, j)| ((i + 2 * j) % 5) as f32 * 0.5);
        for threads in [1, 2] {
            let mut out = Array2::zeros((37, 60));
            matmul(a.view(), b.t(), out.view_mut(), 0.5, threads);
            assert_eq!(out, a.dot(&b.t()) * 0.5);
            let (sa, sb) = (a.slice(s![..5, 3..43]), b.slice(s![10..30, 3..43]));
            // Output written through a transposed (column-major) view.
            let mut part = Array2::zeros((5, 20));
            matmul(sb, sa.t(), part.view_mut().reversed_axes(), 1.0, threads);
            assert_eq!(part.t(), sb.dot(&sa.t()));
        }
    }
}
