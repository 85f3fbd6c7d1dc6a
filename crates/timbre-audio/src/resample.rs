//! Sample-rate conversion with rubato's band-limited sinc interpolator.
//!
//! Models want one fixed rate (16 kHz for Whisper/VAD/CED, 22.05/24 kHz out of the vocoders)
//! while uploads come at anything; a windowed-sinc resampler keeps the passband flat and
//! aliasing far below what the models can hear, which cheap linear interpolation does not.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType, WindowFunction};

use crate::decode::MAX_SAMPLE_RATE;
use crate::{AudioError, Result};

/// Input chunk fed to rubato per call; large enough to amortise per-call overhead, small enough
/// to keep the working set in cache.
const CHUNK: usize = 4096;

/// Taps of the sinc filter (rubato's default). With a Blackman-Harris window the passband
/// stays within 1 % up to 75 % of the output band and the stop band is near -100 dB; 128 taps
/// would be ~15 % faster but already lose 16 % of level at 75 % of the band.
const SINC_LEN: usize = 256;

/// Resamples mono `samples` from `from` Hz to `to` Hz.
///
/// The output is aligned with the input (rubato's filter delay is compensated, so a click at
/// input sample *n* lands at output sample *n·to/from*) and has `round(len·to/from)` samples,
/// so concatenating resampled pieces does not drift.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    check_rate("from", from)?;
    check_rate("to", to)?;
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = match pool::take(from, to) {
        Some(r) => r,
        None => build(from, to)?,
    };
    let out = run(&mut resampler, samples, from, to);
    pool::give_back(from, to, resampler);
    out
}

/// A resampler for `from` → `to`: this computes its sinc table (256 taps × 256 phases), about
/// 7 ms, longer than resampling a sentence of speech takes.
fn build(from: u32, to: u32) -> Result<Async<f32>> {
    let ratio = f64::from(to) / f64::from(from);
    let params = SincInterpolationParameters {
        sinc_len: SINC_LEN,
        f_cutoff: None,
        oversampling_factor: 256,
        interpolation: SincInterpolationType::Linear,
        window: WindowFunction::BlackmanHarris2,
    };
    Async::<f32>::new_sinc(ratio, 1.0, &params, CHUNK, 1, FixedAsync::Input)
        .map_err(|e| AudioError::internal(format!("resampler setup: {e}")))
}

/// One clip through `resampler` (built for `from` → `to`). `process_all` resets it first, so a
/// reused resampler carries nothing over from its last clip.
fn run(resampler: &mut Async<f32>, samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    let ratio = f64::from(to) / f64::from(from);
    let (pad, drop) = alignment(from, to, resampler.output_delay());
    let mut padded = Vec::with_capacity(pad + samples.len());
    padded.resize(pad, 0.0);
    padded.extend_from_slice(samples);
    let input = InterleavedSlice::new(&padded, 1, padded.len())
        .map_err(|e| AudioError::internal(format!("resampler input: {e}")))?;
    let output = resampler
        .process_all(&input, padded.len(), None)
        .map_err(|e| AudioError::internal(format!("resampling: {e}")))?;
    let mut data = output.take_data();
    data.drain(..drop.min(data.len()));
    // Rounding the length to nearest keeps piecewise resampling drift-free.
    let expected = (samples.len() as f64 * ratio).round() as usize;
    data.truncate(expected.max(1));
    Ok(data)
}

/// Built resamplers waiting for their next clip. Streamed speech resamples each sentence
/// separately (22.05 → 24 kHz for `pcm`), so building per call put the table's 7 ms in front of
/// every chunk, the first one included. Callers run on whatever blocking thread is free, so the
/// pool is process-wide rather than per thread; it keeps at most [`pool::MAX`] resamplers
/// (~300 KiB each), dropping the least recently returned.
mod pool {
    use std::sync::Mutex;

    use rubato::Async;

    pub const MAX: usize = 8;

    type Entry = ((u32, u32), Async<f32>);

    static IDLE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

    pub fn take(from: u32, to: u32) -> Option<Async<f32>> {
        let mut idle = IDLE.lock().ok()?;
        let i = idle.iter().rposition(|(k, _)| *k == (from, to))?;
        Some(idle.remove(i).1)
    }

    pub fn give_back(from: u32, to: u32, resampler: Async<f32>) {
        let Ok(mut idle) = IDLE.lock() else { return };
        if idle.len() >= MAX {
            idle.remove(0);
        }
        idle.push(((from, to), resampler));
    }
}

/// rubato's `process_all` trims its filter delay in whole output frames, but the delay is
/// `SINC_LEN/2 · ratio − 1` output frames, rarely an integer: left alone, a 44.1 → 16 kHz tone
/// comes out 0.78 samples early (0.3 rad at 1 kHz). Prepending `pad` zeros makes the total
/// delay a whole number of output frames; dropping `drop` more frames then aligns output
/// frame *k* with input time *k / ratio* exactly.
fn alignment(from: u32, to: u32, trimmed_by_rubato: usize) -> (usize, usize) {
    let ratio = f64::from(to) / f64::from(from);
    // (SINC_LEN/2 + pad) · to / from is an integer iff SINC_LEN/2 + pad is a multiple of q.
    let q = (from / gcd(from, to)) as usize;
    let half = SINC_LEN / 2;
    let mut pad = (q - half % q) % q;
    let delay = |pad: usize| (half + pad) as f64 * ratio - 1.0;
    while delay(pad) < trimmed_by_rubato as f64 {
        pad += q;
    }
    let drop = (delay(pad) - trimmed_by_rubato as f64).round() as usize;
    (pad, drop)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

pub(crate) fn check_rate(name: &'static str, rate: u32) -> Result<()> {
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(AudioError::invalid(name, format!("sample rate {rate} Hz is outside 1..={MAX_SAMPLE_RATE}")));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_and_absurd_rates() {
        assert!(matches!(resample(&[0.0; 10], 0, 16_000), Err(AudioError::InvalidParameter { name: "from", .. })));
        assert!(matches!(
            resample(&[0.0; 10], 16_000, 10_000_000),
            Err(AudioError::InvalidParameter { name: "to", .. })
        ));
    }

    /// A reused resampler gives what a freshly built one gives, after it has been used on other
    /// audio (state carried over from that clip would change the start of this one).
    #[test]
    fn reused_resampler_matches_a_fresh_one() {
        let (from, to) = (22_050, 24_000);
        let noise: Vec<f32> = (0..9000).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let tone: Vec<f32> = (0..5000).map(|i| (i as f32 * 0.05).sin()).collect();
        let mut used = build(from, to).unwrap();
        let _ = run(&mut used, &noise, from, to).unwrap();
        let reused = run(&mut used, &tone, from, to).unwrap();
        let fresh = run(&mut build(from, to).unwrap(), &tone, from, to).unwrap();
        assert_eq!(reused, fresh);
        assert_eq!(resample(&tone, from, to).unwrap(), fresh, "through the pool");
    }

    #[test]
    fn pool_hands_back_what_it_was_given() {
        let (from, to) = (22_050, 23_999); // a pair no other test uses
        assert!(pool::take(from, to).is_none());
        pool::give_back(from, to, build(from, to).unwrap());
        assert!(pool::take(from, to).is_some());
        assert!(pool::take(from, to).is_none(), "taken, so no longer idle");
    }

    #[test]
    fn impulse_position_is_preserved() {
        // A click a quarter of the way in must come out a quarter of the way in: this fails if
        // the filter's group delay is not compensated.
        let mut x = vec![0.0f32; 4410];
        x[1000] = 1.0;
        let y = resample(&x, 44_100, 16_000).unwrap();
        let peak = y.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map(|(i, _)| i).unwrap();
        let expected = 1000.0 * 16_000.0 / 44_100.0;
        assert!((peak as f64 - expected).abs() <= 1.0, "peak at {peak}, expected {expected}");
    }
}
