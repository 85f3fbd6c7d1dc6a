//! A noise floor under digital silence, before the tagging model hears it.
//!
//! CED-tiny learnt AudioSet: YouTube recordings, which always carry some noise. Exact zeros — a
//! sound placed in a silent file, padding, a muted stream — put its log-mel input far below
//! anything it was trained on, and a short sound in such a window scores a fraction of what it
//! scores over a floor: a 0.9 s dog bark in 2 s of digital silence scores "Dog" 0.08, with −50 dBFS
//! noise around it 0.22 (docs/benchmarks.md, sound tagging). So exact-zero samples get the floor
//! a 16-bit recording chain leaves, −90 dBFS RMS; every other sample passes bit for bit, and a
//! file without exact zeros is scored exactly as before.

/// RMS of the floor, dBFS: the level of 16-bit dither.
pub const FLOOR_DBFS: f32 = -90.0;

/// One uniform in [0, 1) per call, from a counter: splitmix64's output function.
fn uniform(index: u64, stream: u64) -> f32 {
    let mut z = index.wrapping_mul(2).wrapping_add(stream).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

/// Gives the exact zeros of `window` — whose first sample is sample `offset` of its signal — the
/// floor: triangular noise (two uniforms) scaled to [`FLOOR_DBFS`] RMS. The noise is a function
/// of the sample's index, so a file tags the same way every time and overlapping windows agree
/// where they overlap.
pub fn fill_digital_silence(window: &mut [f32], offset: usize) {
    // A triangular variable on [-a, a] has variance a²/6.
    let peak = 10f32.powf(FLOOR_DBFS / 20.0) * 6f32.sqrt();
    for (i, x) in window.iter_mut().enumerate().filter(|(_, x)| **x == 0.0) {
        let n = (offset + i) as u64;
        *x = (uniform(n, 0) + uniform(n, 1) - 1.0) * peak;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_get_a_floor_at_minus_90_dbfs_and_sound_is_untouched() {
        let mut x = vec![0f32; 48_000];
        let tone: Vec<f32> = (0..16_000).map(|i| 0.5 * (i as f32 * 0.07).sin() + 0.25).collect();
        x[16_000..32_000].copy_from_slice(&tone);
        fill_digital_silence(&mut x, 0);
        assert_eq!(&x[16_000..32_000], &tone[..], "non-zero samples pass bit for bit");
        let quiet: Vec<f32> = x[..16_000].iter().chain(&x[32_000..]).copied().collect();
        assert!(quiet.iter().all(|v| *v != 0.0 && v.abs() < 1e-4), "every zero gets a small value");
        let rms = (quiet.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / quiet.len() as f64).sqrt();
        let dbfs = 20.0 * rms.log10();
        assert!((dbfs - f64::from(FLOOR_DBFS)).abs() < 0.5, "floor at {dbfs:.2} dBFS");
        let mean = quiet.iter().map(|v| f64::from(*v)).sum::<f64>() / quiet.len() as f64;
        assert!(mean.abs() < 0.05 * rms, "no DC: mean {mean:e}, rms {rms:e}");
    }

    #[test]
    fn the_floor_depends_on_the_sample_index_only() {
        let mut whole = vec![0f32; 1000];
        fill_digital_silence(&mut whole, 0);
        let mut part = vec![0f32; 300];
        fill_digital_silence(&mut part, 500);
        assert_eq!(part, whole[500..800], "a window agrees with the signal it was cut from");
        let mut again = vec![0f32; 1000];
        fill_digital_silence(&mut again, 0);
        assert_eq!(again, whole);
        assert_ne!(whole[..500], whole[500..], "not a repeating pattern");
    }
}
