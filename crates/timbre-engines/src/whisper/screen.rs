//! Exact greedy decoding with an 8-bit first pass over the vocabulary.
//!
//! The output projection (51 864 tokens × 384 for tiny) is a third of a live decode's time: a
//! decoder step reads all 80 MB of it in f32 to pick one token. Greedy decoding only needs the
//! largest logit, so the projection runs first in 8 bits (a quarter of the bytes, VNNI
//! arithmetic) together with a *guaranteed* bound on each logit's 8-bit error; only the tokens
//! that could still be the largest are then recomputed in f32, with the same dot product the
//! full projection uses, so they are bit-identical to it. Special tokens and timestamps (the
//! timestamp rule sums their probabilities) are always recomputed. The chosen token is
//! therefore the one the full f32 projection picks, and transcripts do not change; only the
//! softmax normaliser of each step (for `avg_logprob`) mixes in 8-bit values for tokens far
//! below the best, whose share of the probability is negligible.
//!
//! The bound: with per-row quantization `x = x̂ + rₓ`, `w = ŵ + r_w` (`x̂ = sₓ·qₓ`, `ŵ = s_w·q_w`),
//! `x·w − x̂·ŵ = rₓ·w + x̂·r_w`, so by Cauchy–Schwarz the error is at most
//! `‖rₓ‖·‖w‖ + ‖x̂‖·‖r_w‖`; the weight norms are computed once at load, the activation norms
//! on each step from the very rounding the 8-bit kernel applies.

use ndarray::{ArrayView1, ArrayView2};

use super::int8::QuantMatrix;
use super::ops::{dot, simd};

/// Slack on the bound for f32 rounding in the scales and in the 8-bit result itself.
const SLACK: f32 = 1.001;
const ABS_SLACK: f32 = 1e-4;

pub struct VocabScreen {
    /// Shared with an int8 copy of the model (live decodes), which projects with the same matrix.
    q: std::sync::Arc<QuantMatrix>,
    /// Per token row: ‖w_j‖ and the norm of its rounding error ‖w_j − ŵ_j‖.
    norms: Vec<(f32, f32)>,
}

/// `round(v / scale)` as the 8-bit quantizer computes it (multiply by the inverse, ties to even).
fn quantized(v: f32, inv: f32) -> f32 {
    (v * inv).round_ties_even().clamp(-127.0, 127.0)
}

/// The per-row scale the 8-bit quantizer uses (rows and activations alike).
fn scale_of(v: &[f32]) -> f32 {
    let amax = v.iter().fold(0f32, |a, x| a.max(x.abs()));
    if amax > 0.0 { amax / 127.0 } else { 1.0 }
}

/// `(‖v − v̂‖, ‖v̂‖)` for `v̂ = scale · quantized(v)`, accumulated in f64.
fn rounding_norms(v: &[f32], scale: f32) -> (f32, f32) {
    let inv = 1.0 / scale;
    let (mut err, mut kept) = (0f64, 0f64);
    for &x in v {
        let hat = scale * quantized(x, inv);
        err += f64::from(x - hat).powi(2);
        kept += f64::from(hat).powi(2);
    }
    (err.sqrt() as f32, kept.sqrt() as f32)
}

impl VocabScreen {
    /// The projection in 8 bits (what `QuantMatrix::new(w, None)` gives).
    pub fn matrix(&self) -> std::sync::Arc<QuantMatrix> {
        std::sync::Arc::clone(&self.q)
    }

    pub fn new(w: ArrayView2<f32>) -> Self {
        let q = QuantMatrix::new(w, None);
        let norms = w
            .rows()
            .into_iter()
            .zip(q.scales())
            .map(|(r, &scale)| {
                let r = r.to_vec();
                let norm = r.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt() as f32;
                (norm, rounding_norms(&r, scale).0)
            })
            .collect();
        Self { q: std::sync::Arc::new(q), norms }
    }

    pub fn bytes(&self) -> usize {
        self.q.bytes() + 8 * self.norms.len()
    }

    /// Logits of one hidden state `h` against the embedding `w` (the f32 rows the screen was
    /// built from): exact (bit-identical to `dot(h, w_j)`) for every token `≥ exact_from` and for
    /// every token below it that could be the largest of those not in `excluded`; the 8-bit
    /// estimate elsewhere.
    pub fn logits(
        &self,
        h: ArrayView1<f32>,
        w: ArrayView2<f32>,
        exact_from: usize,
        excluded: &[u32],
        threads: usize,
    ) -> Vec<f32> {
        let hs = h.to_vec();
        let approx = self.q.forward(h.insert_axis(ndarray::Axis(0)), threads);
        let mut row = approx.into_raw_vec_and_offset().0;
        let bounds = self.bounds(&hs);
        let picked = candidates(&row[..exact_from.min(row.len())], &bounds, excluded);
        simd(
            #[inline(always)]
            || {
                let exact =
                    |j: usize| w.row(j).as_slice().map_or_else(|| dot(&hs, &w.row(j).to_vec()), |wr| dot(&hs, wr));
                for (j, v) in row.iter_mut().enumerate().skip(exact_from) {
                    *v = exact(j);
                }
                for &j in &picked {
                    row[j] = exact(j);
                }
            },
        );
        row
    }

    /// The 8-bit error bound of every token's logit for the hidden state `h`.
    fn bounds(&self, h: &[f32]) -> Vec<f32> {
        let (h_err, h_hat) = rounding_norms(h, scale_of(h));
        self.norms.iter().map(|&(w, w_err)| SLACK * (h_err * w + h_hat * w_err) + ABS_SLACK).collect()
    }
}

/// Indices whose true value can be the largest among those not `excluded`: `approx[j]` is
/// within `bound[j]` of the truth, so the largest true value is at least the largest lower
/// bound, and any `j` whose upper bound falls short of that cannot be it.
pub fn candidates(approx: &[f32], bound: &[f32], excluded: &[u32]) -> Vec<usize> {
    let mut banned = vec![false; approx.len()];
    for &e in excluded {
        if let Some(b) = banned.get_mut(e as usize) {
            *b = true;
        }
    }
    let allowed = |j: usize| !banned[j];
    let floor = approx
        .iter()
        .zip(bound)
        .enumerate()
        .filter(|&(j, _)| allowed(j))
        .map(|(_, (a, b))| a - b)
        .fold(f32::NEG_INFINITY, f32::max);
    approx.iter().zip(bound).enumerate().filter(|&(j, (a, b))| a + b >= floor && allowed(j)).map(|(j, _)| j).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ndarray::Array2;

    use super::*;

    #[test]
    fn candidates_keep_every_index_that_could_win() {
        // Lower bounds: 0.5, 0.7, -1.0, 0.9 → floor 0.7 (index 3 excluded).
        let approx = [1.0, 0.9, 0.0, 2.0];
        let bound = [0.5, 0.2, 1.0, 1.1];
        assert_eq!(candidates(&approx, &bound, &[3]), vec![0, 1, 2]);
        // With nothing excluded the floor is 0.9: index 2 (upper bound 1.0) stays, 1 (1.1) too.
        assert_eq!(candidates(&approx, &bound, &[]), vec![0, 1, 2, 3]);
        // Tight bounds leave only the winner.
        assert_eq!(candidates(&approx, &[0.01; 4], &[]), vec![3]);
    }

    /// A reproducible pseudo-random matrix with Whisper-like magnitudes.
    fn noise(rows: usize, cols: usize, seed: u64, scale: f32) -> Array2<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        Array2::from_shape_fn((rows, cols), |_| (rng.f32() * 2.0 - 1.0) * scale * (1.0 + 3.0 * rng.f32().powi(8)))
    }

    #[test]
    fn the_bound_holds_and_screened_logits_match_the_full_product_where_it_matters() {
        let w = noise(3000, 384, 7, 0.1);
        let screen = VocabScreen::new(w.view());
        for seed in 0..20 {
            let h = noise(1, 384, 100 + seed, 2.0);
            let h = h.row(0);
            let exact: Vec<f32> =
                w.rows().into_iter().map(|r| dot(h.as_slice().unwrap(), r.as_slice().unwrap())).collect();
            let approx = screen.q.forward(h.insert_axis(ndarray::Axis(0)), 1);
            let bounds = screen.bounds(h.as_slice().unwrap());
            for ((a, e), b) in approx.iter().zip(&exact).zip(&bounds) {
                assert!((a - e).abs() <= *b, "8-bit {a} vs f32 {e}: error above the bound {b}");
            }
            let excluded = [5u32, 17];
            let row = screen.logits(h, w.view(), 2900, &excluded, 2);
            let best = |v: &[f32]| {
                (0..2900).filter(|j| !excluded.contains(&(*j as u32))).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
            };
            let winner = best(&exact);
            assert_eq!(best(&row), winner, "seed {seed}: the screened row picks the f32 winner");
            assert_eq!(row[winner].to_bits(), exact[winner].to_bits(), "the winner's logit is the f32 one");
            assert!(row[2900..].iter().zip(&exact[2900..]).all(|(a, b)| a.to_bits() == b.to_bits()), "exact tail");
        }
    }
}
