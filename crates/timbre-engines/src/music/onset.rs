//! Onset strength: how much new energy each frame brings, the signal every later stage (tempo,
//! beats, downbeats) reads.
//!
//! A log-mel spectral flux (librosa's `onset_strength` recipe: mel power in dB, first difference,
//! rectified, averaged over bands), kept per band group too: low bands carry kick and bass (the
//! bar's first beat), the rest carries snare, hats and chords.

use super::{Error, FPS_HOP, SAMPLE_RATE};

/// Window of the onset STFT: 46 ms at 22.05 kHz, short enough to separate 16th notes at 170 BPM.
pub const N_FFT: usize = 1024;
const N_MELS: usize = 64;
/// Mel bands whose centre is below this count as "low" (kick drum, bass).
const LOW_HZ: f64 = 200.0;
/// Upper edge of the "middle" bands.
const MID_HZ: f64 = 2000.0;
/// Level floor below the loudest bin, as librosa's `power_to_db(top_db=80)`.
const TOP_DB: f32 = 80.0;

/// Frame-rate envelopes, one value per STFT frame (frame `t` is centred at `t · hop` samples).
#[derive(Debug, Clone, Default)]
pub struct Onsets {
    /// Full-band spectral flux.
    pub flux: Vec<f32>,
    /// Flux of the low bands only.
    pub low: Vec<f32>,
    /// Flux of the middle bands (200 Hz – 2 kHz: snare body, chords, bass harmonics), where the
    /// beat lives in most arrangements; hi-hats and cymbals above it mostly subdivide.
    pub mid: Vec<f32>,
    /// Mean level (dB) per frame, for silence and energy checks.
    pub level: Vec<f32>,
}

impl Onsets {
    pub fn frames(&self) -> usize {
        self.flux.len()
    }
}

/// Centre frequency (Hz) of each Slaney mel band, as `librosa.mel_frequencies(n_mels + 2)[1:-1]`.
fn mel_centres(sample_rate: u32, n_mels: usize) -> Vec<f64> {
    let fb = timbre_audio::mel_filterbank(sample_rate, N_FFT, n_mels);
    let bins = N_FFT / 2 + 1;
    (0..n_mels)
        .map(|m| {
            let row = &fb[m * bins..(m + 1) * bins];
            let peak = row.iter().enumerate().fold((0, f32::MIN), |a, (i, &w)| if w > a.1 { (i, w) } else { a }).0;
            peak as f64 * f64::from(sample_rate) / N_FFT as f64
        })
        .collect()
}

/// A dense `n_mels × bins` filterbank as (first bin, weights) per band: each mel band touches a
/// few bins, and skipping the zeros makes applying it ~20× cheaper.
pub(super) fn sparse_rows(fb: &[f32], n_mels: usize, bins: usize) -> Vec<(usize, Vec<f32>)> {
    (0..n_mels)
        .map(|m| {
            let row = &fb[m * bins..(m + 1) * bins];
            let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w > 0.0).map_or(first, |l| l + 1);
            (first, row[first..last].to_vec())
        })
        .collect()
}

/// Mel power of one power-spectrum frame in dB (floor 1e-10), appended to `out`.
pub(super) fn mel_db(rows: &[(usize, Vec<f32>)], spec: &[f32], out: &mut Vec<f32>) {
    out.extend(rows.iter().map(|(first, w)| {
        let e: f32 = w.iter().zip(&spec[*first..]).map(|(a, b)| a * b).sum();
        10.0 * e.max(1e-10).log10()
    }));
}

/// Onset envelopes of a mono signal at [`SAMPLE_RATE`].
pub fn onsets(samples: &[f32]) -> Result<Onsets, Error> {
    let bins = N_FFT / 2 + 1;
    let rows = sparse_rows(&timbre_audio::mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS), N_MELS, bins);
    let centres = mel_centres(SAMPLE_RATE, N_MELS);
    let n_low = centres.iter().filter(|&&f| f < LOW_HZ).count().max(1);
    let n_mid = centres.iter().filter(|&&f| f < MID_HZ).count().max(n_low + 1);
    let mut db = Vec::with_capacity((1 + samples.len() / FPS_HOP) * N_MELS);
    let frames = timbre_audio::for_each_power_frame(samples, N_FFT, FPS_HOP, |_, spec| mel_db(&rows, spec, &mut db))?;
    let top = db.iter().copied().fold(f32::MIN, f32::max);
    for v in &mut db {
        *v = v.max(top - TOP_DB);
    }
    let mut out =
        Onsets { flux: vec![0.0; frames], low: vec![0.0; frames], mid: vec![0.0; frames], level: vec![0.0; frames] };
    for t in 0..frames {
        let cur = &db[t * N_MELS..(t + 1) * N_MELS];
        out.level[t] = cur.iter().sum::<f32>() / N_MELS as f32;
        if t == 0 {
            continue;
        }
        let prev = &db[(t - 1) * N_MELS..t * N_MELS];
        let mut rise = [0f32; N_MELS];
        for ((r, c), p) in rise.iter_mut().zip(cur).zip(prev) {
            *r = (c - p).max(0.0);
        }
        out.flux[t] = rise.iter().sum::<f32>() / N_MELS as f32;
        out.low[t] = rise[..n_low].iter().sum::<f32>() / n_low as f32;
        out.mid[t] = rise[n_low..n_mid].iter().sum::<f32>() / (n_mid - n_low) as f32;
    }
    Ok(out)
}

/// Subtract a moving average (`radius` frames each side) and rectify: what stands out from the
/// local background, so a loud chorus does not outweigh a quiet verse's beats.
pub fn detrend(x: &[f32], radius: usize) -> Vec<f32> {
    let n = x.len();
    let mut prefix = vec![0f64; n + 1];
    for (i, v) in x.iter().enumerate() {
        prefix[i + 1] = prefix[i] + f64::from(*v);
    }
    (0..n)
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(radius), (i + radius + 1).min(n));
            let mean = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            (f64::from(x[i]) - mean).max(0.0) as f32
        })
        .collect()
}

/// The largest value within `radius` frames of `t`.
pub fn local_max(x: &[f32], t: usize, radius: usize) -> f32 {
    let (lo, hi) = (t.saturating_sub(radius), (t + radius + 1).min(x.len()));
    x[lo..hi].iter().copied().fold(0.0, f32::max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clicks_make_flux_peaks_at_their_frames() {
        let sr = SAMPLE_RATE as usize;
        let mut x = vec![0f32; sr * 3];
        let clicks = [0.5, 1.25, 2.0];
        for &c in &clicks {
            let at = (c * sr as f64) as usize;
            for k in 0..200 {
                x[at + k] = ((k as f32) * 0.7).sin() * (-(k as f32) / 50.0).exp();
            }
        }
        let o = onsets(&x).unwrap();
        let fps = sr as f64 / FPS_HOP as f64;
        for &c in &clicks {
            let t = (c * fps).round() as usize;
            let peak = (t - 5..t + 6).max_by(|&a, &b| o.flux[a].total_cmp(&o.flux[b])).unwrap();
            assert!((peak as f64 / fps - c).abs() <= 0.025, "click at {c}: flux peak at {}", peak as f64 / fps);
        }
        let quiet = (0.8 * fps) as usize;
        assert!(o.flux[quiet] < 0.01 * o.flux[(0.5 * fps) as usize..].iter().copied().fold(0.0, f32::max));
    }

    #[test]
    fn detrend_keeps_what_stands_out() {
        let x = [1.0, 1.0, 5.0, 1.0, 1.0];
        let d = detrend(&x, 2);
        assert!(d[2] > 3.0 && d[0] == 0.0 && d[4] == 0.0, "{d:?}");
        assert_eq!(local_max(&x, 0, 2), 5.0);
    }
}
