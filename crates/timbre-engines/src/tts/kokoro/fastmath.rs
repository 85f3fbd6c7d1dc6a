//! Single-precision `exp`, `sin`/`cos`, `tanh` and `ln` written so that loops over slices
//! vectorize. The signal tail evaluates about eight transcendental functions per spectral cell
//! (601 bins × 80 frames per second of audio); the libm calls behind `f32::sin` and friends are
//! scalar, and were most of the tail's time (numpy, the reference, uses SIMD kernels).
//!
//! Every function is branch-free (selects, bit tricks, no libm rounding calls) and
//! `#[inline(always)]`, so a caller's loop inside [`simd`] compiles to AVX2/AVX-512 where the CPU
//! has it. Accuracy is a few units in the last place over the ranges the tail uses (the tests
//! bound it against the standard library), i.e. the same output to float rounding.

use std::f32::consts::PI;

/// Run `f` compiled for the best vector instructions this CPU has (chosen once at run time).
///
/// Only code inlined into `f`'s caller inside pulp gets those instructions: callers pass
/// `#[inline(always)]` closures (a closure left out of line is compiled for the baseline target,
/// SSE2, whatever the CPU), and the integer steps in this module wrap instead of checking for
/// overflow (a checked step, as in the dev profile, keeps a loop scalar).
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// 1.5 · 2²³: adding and subtracting it rounds an `f32` below 2²² to the nearest integer, and the
/// low bits of the sum then hold that integer (no `round`/`cvt` library call on old targets).
const ROUND: f32 = 12_582_912.0;

#[inline(always)]
fn round_to_int(x: f32) -> (f32, i32) {
    let shifted = x + ROUND;
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    (shifted - ROUND, n)
}

/// ln 2 split so that `n · LN2_HI` is exact for |n| < 2¹².
const LN2_HI: f32 = 0.693_115_23; // exactly 0.693115234375 (12 significant bits)
const LN2_LO: f32 = 3.194_618_3e-5;

/// `eˣ` for x in [-87, 88] (clamped to that range, so the result stays a normal float).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let (n, ni) = round_to_int(x * std::f32::consts::LOG2_E);
    let r = (x - n * LN2_HI) - n * LN2_LO; // |r| ≤ ln2/2
    // Taylor to r⁷: the first dropped term is < 6e-9 relative.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits((ni.wrapping_add(127) << 23) as u32)
}

/// π/2 split so that `k · C1` and `k · C2` are exact for |k| < 2¹².
const PIO2_1: f32 = 1.570_312_5;
const PIO2_2: f32 = 4.837_513e-4;
const PIO2_3: f32 = 7.549_79e-8;

/// Arguments up to this magnitude reduce exactly (k < 2¹²); [`sincos_slice`] checks.
pub const SINCOS_LIMIT: f32 = 6000.0;

/// `(sin x, cos x)` for |x| ≤ [`SINCOS_LIMIT`].
#[inline(always)]
pub fn sincos(x: f32) -> (f32, f32) {
    let (k, q) = round_to_int(x * std::f32::consts::FRAC_2_PI);
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3; // |r| ≤ π/4
    let r2 = r * r;
    // Taylor to r⁹ / r¹⁰ on [-π/4, π/4]: dropped terms < 2e-9.
    let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0))));
    let c =
        1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0)))));
    // Quadrant q: sin x = (s, c, -s, -c)[q & 3], cos x = (c, -s, -c, s)[q & 3].
    let swap = q & 1 != 0;
    let (sin, cos) = if swap { (c, s) } else { (s, c) };
    let sin_sign = ((q & 2) as u32) << 30;
    let cos_sign = ((q.wrapping_add(1) & 2) as u32) << 30;
    (f32::from_bits(sin.to_bits() ^ sin_sign), f32::from_bits(cos.to_bits() ^ cos_sign))
}

/// `tanh x`, to about 1e-7 absolute.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    let t = (1.0 - e) / (1.0 + e);
    f32::from_bits(t.to_bits() | (x.to_bits() & 0x8000_0000))
}

/// Natural log of a positive normal float (the Box–Muller radius; not for zero or denormals).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = (((bits >> 23) & 0xff) as i32).wrapping_sub(127);
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    e = e.wrapping_add(big as i32);
    // ln m = 2 atanh(s), s = (m−1)/(m+1), |s| ≤ 0.172: series to s⁹.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let l = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))));
    l + e as f32 * std::f32::consts::LN_2
}

/// `sin` and `cos` of every element; falls back to the standard library when an element is out
/// of the exactly reduced range (or not finite).
pub fn sincos_slice(x: &[f32], sin: &mut [f32], cos: &mut [f32]) {
    let n = x.len().min(sin.len()).min(cos.len());
    let (x, sin, cos) = (&x[..n], &mut sin[..n], &mut cos[..n]);
    if x.iter().all(|v| v.abs() <= SINCOS_LIMIT) {
        simd(
            #[inline(always)]
            || {
                for ((x, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
                    (*s, *c) = sincos(*x);
                }
            },
        )
    } else {
        for ((x, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
            (*s, *c) = x.sin_cos();
        }
    }
}

/// Box–Muller: pairs of uniforms (u1 in (0, 1], u2 in [0, 1)) → pairs of standard normals, in
/// place: `a[i], b[i]` become `r·cos, r·sin`.
pub fn box_muller(a: &mut [f32], b: &mut [f32]) {
    simd(
        #[inline(always)]
        || {
            for (u1, u2) in a.iter_mut().zip(b.iter_mut()) {
                let r = (-2.0 * ln(*u1)).sqrt();
                let (s, c) = sincos(2.0 * PI * *u2);
                *u1 = r * c;
                *u2 = r * s;
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i32).abs_diff(b.to_bits() as i32)
    }

    fn sweep(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_within_a_few_ulps() {
        for x in sweep(-87.0, 7.0, 200_000) {
            let (got, want) = (exp(x), x.exp());
            assert!(ulps(got, want) <= 3, "exp({x}) = {got}, std {want}");
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn sincos_is_accurate_on_the_reduced_range() {
        for x in sweep(-SINCOS_LIMIT, SINCOS_LIMIT, 400_000).chain(sweep(-7.0, 7.0, 100_000)) {
            let (s, c) = sincos(x);
            let (ws, wc) = (f64::from(x).sin(), f64::from(x).cos());
            assert!((f64::from(s) - ws).abs() <= 2.5e-7, "sin({x}) = {s}, f64 {ws}");
            assert!((f64::from(c) - wc).abs() <= 2.5e-7, "cos({x}) = {c}, f64 {wc}");
        }
        assert_eq!(sincos(0.0), (0.0, 1.0));
    }

    #[test]
    fn tanh_and_ln_are_close() {
        for x in sweep(-20.0, 20.0, 100_000) {
            assert!((tanh(x) - x.tanh()).abs() <= 2.5e-7, "tanh({x})");
        }
        for x in sweep(1e-7, 1.0, 100_000) {
            assert!((ln(x) - x.ln()).abs() <= 2e-6 * x.ln().abs().max(1.0), "ln({x}) = {} std {}", ln(x), x.ln());
        }
    }

    #[test]
    fn slices_fall_back_outside_the_range() {
        let x = [0.5, 1e6, -3.0];
        let (mut s, mut c) = ([0.0; 3], [0.0; 3]);
        sincos_slice(&x, &mut s, &mut c);
        for i in 0..3 {
            assert!((s[i] - x[i].sin()).abs() < 1e-6 && (c[i] - x[i].cos()).abs() < 1e-6, "{}", x[i]);
        }
    }
}
