//! Integrated loudness (ITU-R BS.1770-4 / EBU R128): K-weighting, 400 ms blocks with 75 %
//! overlap, an absolute gate at −70 LKFS and a relative gate 10 LU below the ungated mean.
//!
//! The K-weighting is the two RBJ biquads pyloudnorm uses (high shelf +4 dB at 1.5 kHz, Q 1/√2;
//! high pass at 38 Hz, Q 0.5), designed for the signal's own rate, so no resampling is needed.

/// Biquad coefficients, normalised by a0: (b0, b1, b2, a1, a2).
#[derive(Debug, Clone, Copy)]
struct Biquad([f64; 5]);

impl Biquad {
    fn high_shelf(gain_db: f64, q: f64, fc: f64, rate: f64) -> Self {
        let a = 10f64.powf(gain_db / 40.0);
        let w0 = 2.0 * std::f64::consts::PI * fc / rate;
        let (cos, alpha) = (w0.cos(), w0.sin() / (2.0 * q));
        let sq = 2.0 * a.sqrt() * alpha;
        let b0 = a * ((a + 1.0) + (a - 1.0) * cos + sq);
        let b1 = -2.0 * a * ((a - 1.0) + (a + 1.0) * cos);
        let b2 = a * ((a + 1.0) + (a - 1.0) * cos - sq);
        let a0 = (a + 1.0) - (a - 1.0) * cos + sq;
        let a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cos);
        let a2 = (a + 1.0) - (a - 1.0) * cos - sq;
        Self([b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0])
    }

    fn high_pass(q: f64, fc: f64, rate: f64) -> Self {
        let w0 = 2.0 * std::f64::consts::PI * fc / rate;
        let (cos, alpha) = (w0.cos(), w0.sin() / (2.0 * q));
        let a0 = 1.0 + alpha;
        Self([(1.0 + cos) / 2.0 / a0, -(1.0 + cos) / a0, (1.0 + cos) / 2.0 / a0, -2.0 * cos / a0, (1.0 - alpha) / a0])
    }

    /// Direct form I over one channel of interleaved samples, in place into `out`.
    fn run(&self, input: &[f64], out: &mut [f64]) {
        let [b0, b1, b2, a1, a2] = self.0;
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for (x, y) in input.iter().zip(out.iter_mut()) {
            let v = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
            (x2, x1, y2, y1) = (x1, *x, y1, v);
            *y = v;
        }
    }
}

/// BS.1770 channel weight: 1.0 for L, R, C; 1.41 for the surrounds; the LFE of 5.1 is left out.
/// Five channels are L R C Ls Rs (pyloudnorm's order), six are L R C LFE Ls Rs.
fn channel_weight(index: usize, channels: usize) -> f64 {
    match (channels, index) {
        (5, 3 | 4) | (6, 4 | 5) => 1.41,
        (6, 3) => 0.0,
        _ => 1.0,
    }
}

/// Integrated loudness in LUFS of interleaved `samples`; `None` when every block is below the
/// absolute gate (silence) or the signal is shorter than one 400 ms block.
pub fn integrated(samples: &[f32], channels: usize, rate: u32) -> Option<f64> {
    let channels = channels.max(1);
    let frames = samples.len() / channels;
    let rate_f = f64::from(rate);
    let block = 0.4;
    let duration = frames as f64 / rate_f;
    if duration < block {
        return None;
    }
    let shelf = Biquad::high_shelf(4.0, 1.0 / 2f64.sqrt(), 1500.0, rate_f);
    let pass = Biquad::high_pass(0.5, 38.0, rate_f);
    let n_blocks = ((duration - block) / (block * 0.25)).round() as usize + 1;
    // Mean square per channel and block (z_ij in BS.1770), via a prefix sum of squares.
    let mut z = vec![vec![0f64; n_blocks]; channels];
    let mut x = vec![0f64; frames];
    let mut y = vec![0f64; frames];
    for (c, zc) in z.iter_mut().enumerate() {
        for (f, v) in x.iter_mut().enumerate() {
            *v = f64::from(samples[f * channels + c]);
        }
        shelf.run(&x, &mut y);
        pass.run(&y, &mut x);
        let mut prefix = vec![0f64; frames + 1];
        for (f, v) in x.iter().enumerate() {
            prefix[f + 1] = prefix[f] + v * v;
        }
        for (j, zj) in zc.iter_mut().enumerate() {
            let lo = ((block * (j as f64 * 0.25)) * rate_f) as usize;
            let hi = (((block * (j as f64 * 0.25 + 1.0)) * rate_f) as usize).min(frames);
            *zj = (prefix[hi] - prefix[lo.min(hi)]) / (block * rate_f);
        }
    }
    let block_power = |j: usize| (0..channels).map(|c| channel_weight(c, channels) * z[c][j]).sum::<f64>();
    let lufs = |p: f64| -0.691 + 10.0 * p.log10();
    let above_abs: Vec<usize> = (0..n_blocks).filter(|&j| lufs(block_power(j)) >= -70.0).collect();
    if above_abs.is_empty() {
        return None;
    }
    let mean_power = |set: &[usize]| set.iter().map(|&j| block_power(j)).sum::<f64>() / set.len() as f64;
    let relative = lufs(mean_power(&above_abs)) - 10.0;
    let gated: Vec<usize> = above_abs.into_iter().filter(|&j| lufs(block_power(j)) > relative).collect();
    if gated.is_empty() {
        return None;
    }
    Some(lufs(mean_power(&gated)))
}
