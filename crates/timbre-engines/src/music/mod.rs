//! Song analysis: tempo, beats, downbeats and meter, sections, energy per beat, integrated
//! loudness, waveform peaks, and genre and mood from the AudioSet tagger.
//!
//! Rhythm: spectral-flux onsets → autocorrelation tempo with octave correction → HMM/Viterbi
//! beat tracking on flux and BeatNet's activations, with the metrical level BeatNet hears →
//! downbeats from harmonic change, bass and BeatNet's downbeat activation (why this split is in
//! docs/benchmarks.md, "Music analysis"). Each stage reports progress and checks for
//! cancellation before it starts.

pub mod beatnet;
pub mod beats;
pub mod clips;
pub mod crnn;
pub mod harmony;
pub mod loudness;
pub mod meter;
pub mod metrics;
pub mod onset;
#[cfg(test)]
mod reference_tests;
pub mod sections;
pub mod tags;
pub mod tempo;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timbre_audio::{AudioError, Decoded, PeakBits, Peaks};

pub use sections::Section;
pub use tags::Label;

use crate::actor::EngineError;
use crate::tagging::Tagger;
use beatnet::BeatNet;

/// Rate of every rhythm and harmony feature.
pub const SAMPLE_RATE: u32 = 22_050;
/// Onset frame hop: ~100 frames per second.
pub const FPS_HOP: usize = 221;
/// Flux's share of the beat activation beside BeatNet's: enough to carry the beat where BeatNet
/// is unsure, below its confident peaks.
const FLUX_WEIGHT: f32 = 0.6;
/// Points per beat of the beat-synchronous activation [`choose_level`] correlates.
const LEVEL_STEPS: usize = 16;
/// Waveform overview resolution.
pub const PEAKS_PER_SECOND: u32 = 50;
/// Shortest song worth analysing (a few bars at a slow tempo).
pub const MIN_SECONDS: f64 = 3.0;
/// Windows the tagger scores for genre and mood (10 s each, spread over the song). Three agree
/// with six (mean scores correlated ≥ 0.997, the same top labels on the nine bench songs) for
/// half the tagger's time, the largest single cost of an analysis on a CPU without AVX-512
/// (~100 ms a window).
const TAG_WINDOWS: usize = 3;
/// Peak level (dBFS) under which a file counts as silent.
const SILENT_DBFS: f32 = -60.0;

pub fn fps() -> f64 {
    f64::from(SAMPLE_RATE) / FPS_HOP as f64
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Audio(#[from] AudioError),
    #[error("the audio is silent (peak below {SILENT_DBFS} dBFS): nothing to analyse")]
    Silent,
    #[error("the audio is {seconds:.1} s long; analysis needs at least {MIN_SECONDS} s")]
    TooShort { seconds: f64 },
    #[error("no beat found: the audio has no steady pulse")]
    NoPulse,
    #[error("analysis cancelled")]
    Cancelled,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("analysis worker failed: {0}")]
    Internal(String),
}

/// Everything `GET /v1/songs/{id}/analysis` returns except the waveform link, which the server
/// adds. Times in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub duration: f64,
    pub sample_rate: u32,
    pub bpm: f64,
    pub bpm_confidence: f64,
    pub beats: Vec<f64>,
    pub downbeats: Vec<f64>,
    pub time_signature: String,
    pub sections: Vec<Section>,
    /// RMS level of each beat (beat to next beat), scaled so the loudest beat is 1.
    pub energy: Vec<f32>,
    /// EBU R128 integrated loudness, LUFS.
    pub loudness_lufs: f64,
    pub genre: Vec<Label>,
    pub mood: Vec<Label>,
}

/// An analysis and the waveform overview (stored apart: it is much larger).
#[derive(Debug, Clone)]
pub struct Report {
    pub analysis: Analysis,
    pub peaks: Peaks,
}

/// Stage names, in order, as progress reports them.
pub const STAGES: [&str; 6] = ["decode", "rhythm", "meter", "sections", "loudness", "tags"];

/// Progress and cancellation, supplied by whoever runs the analysis (a job, the CLI).
#[derive(Clone)]
pub struct Hooks {
    /// (stage, overall fraction 0..1) at the start of each stage, and ("done", 1.0).
    pub progress: ProgressFn,
    pub cancelled: CancelledFn,
}

pub type ProgressFn = Arc<dyn Fn(&str, f32) + Send + Sync>;
pub type CancelledFn = Arc<dyn Fn() -> bool + Send + Sync>;

impl Default for Hooks {
    fn default() -> Self {
        Self { progress: Arc::new(|_, _| {}), cancelled: Arc::new(|| false) }
    }
}

impl Hooks {
    fn stage(&self, name: &str) -> Result<(), Error> {
        if (self.cancelled)() {
            return Err(Error::Cancelled);
        }
        let i = STAGES.iter().position(|s| *s == name).unwrap_or(0);
        (self.progress)(name, i as f32 / STAGES.len() as f32);
        Ok(())
    }
}

/// Beats and tempo of a mono signal at [`SAMPLE_RATE`], with the onset envelopes they came from.
pub struct Rhythm {
    pub beats: Vec<f64>,
    pub bpm: f64,
    pub confidence: f64,
    pub onsets: onset::Onsets,
    /// BeatNet's downbeat activation on the onset frame grid, when BeatNet ran.
    pub downbeat: Option<Vec<f32>>,
}

/// `x` at a fractional index, linearly interpolated (the last value past the end, 0 beyond).
fn lerp_at(x: &[f32], pos: f64) -> f32 {
    let (i, frac) = (pos.floor() as usize, (pos - pos.floor()) as f32);
    match (x.get(i), x.get(i + 1)) {
        (Some(a), Some(b)) => a + (b - a) * frac,
        (Some(a), None) => *a,
        _ => 0.0,
    }
}

/// Linear interpolation of a `from_fps` series onto `n` frames at `to_fps`.
fn regrid(x: &[f32], from_fps: f64, to_fps: f64, n: usize) -> Vec<f32> {
    (0..n).map(|t| lerp_at(x, t as f64 * from_fps / to_fps)).collect()
}

/// Beat activation from spectral flux alone (no BeatNet): detrended, scaled so the strongest
/// 5 % of onsets saturate.
fn flux_activation(onsets: &onset::Onsets, fps: f64) -> Vec<f32> {
    let flux = onset::detrend(&onsets.flux, (0.25 * fps) as usize);
    let mut sorted: Vec<f32> = flux.iter().copied().filter(|v| *v > 0.0).collect();
    sorted.sort_by(f32::total_cmp);
    let scale = sorted.get(sorted.len() * 95 / 100).copied().unwrap_or(1.0).max(1e-6);
    flux.iter().map(|v| (v / scale).min(1.0)).collect()
}

/// The metrical level BeatNet hears, as a factor of the tracked beats' period (½, 1 or 2):
/// BeatNet fires only on the beats listeners tap, so the level's pulse is as strong as its
/// double's while a faster level's is weak. The fastest candidate with at least half the strongest
/// pulse wins. The activation is read in beat time — [`LEVEL_STEPS`] points between consecutive
/// tracked beats — so a song that changes tempo keeps one sharp pulse per level, where a plain
/// autocorrelation smears them.
///
/// BeatNet listens to the whole song: it is a causal model whose activations settle on the
/// metrical level over tens of seconds, and on 10 s excerpts it still fires on every eighth note
/// of the 92 BPM folk-rock bench song (pulse ratio 0.80 at the double level against 0.24 over
/// the song; docs/benchmarks.md, "Music analysis").
fn choose_level(net_beat: &[f32], beats: &[usize], fps: f64) -> f64 {
    if beats.len() < 8 {
        return 1.0;
    }
    let mut ibis: Vec<usize> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    ibis.sort_unstable();
    let median = ibis[ibis.len() / 2] as f64;
    let levels: Vec<f64> = [0.5, 1.0, 2.0]
        .into_iter()
        .filter(|&k| (tempo::MIN_BPM..=tempo::MAX_BPM).contains(&(60.0 * fps / (median * k))))
        .collect();
    let x = onset::detrend(net_beat, (0.25 * fps) as usize);
    let warped: Vec<f32> = beats
        .windows(2)
        .flat_map(|w| {
            let (a, len) = (w[0] as f64, (w[1] - w[0]) as f64);
            (0..LEVEL_STEPS).map(move |k| a + len * k as f64 / LEVEL_STEPS as f64)
        })
        .map(|pos| lerp_at(&x, pos))
        .collect();
    let ac = tempo::autocorrelation(&warped, 2 * LEVEL_STEPS + 2);
    let candidates: Vec<(f64, f32)> =
        levels.into_iter().map(|k| (k, tempo::pulse(&ac, k * LEVEL_STEPS as f64))).collect();
    let best = candidates.iter().map(|c| c.1).fold(0.0, f32::max);
    if best <= 0.0 {
        return 1.0;
    }
    candidates.iter().find(|(_, p)| *p >= 0.5 * best).map_or(1.0, |(k, _)| *k)
}

/// Beat frames on `act` for beat periods within ±45 % of `period` (room for real tempo
/// changes, none for octave jumps).
fn track_near(act: &[f32], period: f64) -> Vec<usize> {
    beats::track(act, (period / 1.45).floor() as usize, (period * 1.45).ceil() as usize)
}

/// Tempo and beats: spectral-flux onsets → global period (autocorrelation, octave rules) → HMM
/// beat tracking near that period on the flux activation, which BeatNet's whole-song activation
/// joins when the model is there → the metrical level BeatNet hears ([`choose_level`]), tracked
/// again when it differs → each beat moved onto its onset's flux peak for timing finer than a
/// frame.
pub fn rhythm(mono: &[f32], beatnet: Option<&BeatNet>) -> Result<Rhythm, Error> {
    let onsets = onset::onsets(mono)?;
    let fps = fps();
    let n = onsets.frames();
    let flux_act = flux_activation(&onsets, fps);
    let flux_period = tempo::beat_period(&flux_act, fps).ok_or(Error::NoPulse)?;
    let (act, mut frames, period, downbeat) = match beatnet {
        Some(net) => {
            let acts = net.activations(mono)?;
            let beat = regrid(&acts.beat, beatnet::fps(), fps, n);
            let act: Vec<f32> = flux_act.iter().zip(&beat).map(|(f, b)| (FLUX_WEIGHT * f).max(*b)).collect();
            let first = track_near(&act, flux_period);
            let level = choose_level(&beat, &first, fps);
            let period = flux_period * level;
            let frames = if level == 1.0 { first } else { track_near(&act, period) };
            (act, frames, period, Some(regrid(&acts.downbeat, beatnet::fps(), fps, n)))
        }
        None => {
            let frames = track_near(&flux_act, flux_period);
            (flux_act, frames, flux_period, None)
        }
    };
    beats::trim_silent_ends(&mut frames, |t| onset::local_max(&onsets.flux, t, 5));
    let region = ((period / 16.0).round() as usize).max(2);
    let on_act = beats::snap_to_onsets(&frames, &act, region);
    let snapped = beats::snap_to_onsets(&on_act, &onsets.flux, 3);
    let mut times: Vec<f64> = snapped.iter().map(|&t| beats::refine(&onsets.flux, t) / fps).collect();
    times.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    if times.len() < 2 {
        return Err(Error::NoPulse);
    }
    let (bpm, confidence) = tempo::tempo_from_beats(&times);
    Ok(Rhythm { beats: times, bpm, confidence, onsets, downbeat })
}

/// Whole songs go through the polyphase resampler (a tenth of the sinc resampler's work, see
/// `timbre_audio::resample_poly`); a rate pair it cannot reduce falls back to the sinc one.
fn to_rate(x: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    timbre_audio::resample_poly(x, from, to).or_else(|_| timbre_audio::resample(x, from, to))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// RMS between consecutive beats (the last beat runs one median interval), max-normalised.
fn beat_energy(mono: &[f32], beats: &[f64]) -> Vec<f32> {
    let sr = f64::from(SAMPLE_RATE);
    let typical = beats.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max).min(2.0);
    let rms: Vec<f32> = beats
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let end = beats.get(i + 1).copied().unwrap_or(b + typical);
            let (lo, hi) = (((b * sr) as usize).min(mono.len()), ((end * sr) as usize).min(mono.len()));
            if hi <= lo {
                return 0.0;
            }
            (mono[lo..hi].iter().map(|v| v * v).sum::<f32>() / (hi - lo) as f32).sqrt()
        })
        .collect();
    let max = rms.iter().copied().fold(0.0, f32::max);
    rms.iter().map(|v| if max > 0.0 { (v / max * 1000.0).round() / 1000.0 } else { 0.0 }).collect()
}

/// The DSP part of the analysis (everything but genre and mood) of a decoded file.
pub fn analyze_decoded(decoded: &Decoded, beatnet: Option<&BeatNet>, hooks: &Hooks) -> Result<Report, Error> {
    let duration = decoded.duration_s;
    if duration < MIN_SECONDS {
        return Err(Error::TooShort { seconds: duration });
    }
    let native = decoded.to_mono();
    let peak = native.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak <= 10f32.powf(SILENT_DBFS / 20.0) {
        return Err(Error::Silent);
    }
    let mono = to_rate(&native, decoded.sample_rate, SAMPLE_RATE)?;
    hooks.stage("rhythm")?;
    let rhythm = rhythm(&mono, beatnet)?;
    hooks.stage("meter")?;
    let harmony = harmony::frames(&mono)?;
    let mut edges = rhythm.beats.clone();
    let last_gap = edges.windows(2).last().map_or(0.5, |w| w[1] - w[0]);
    edges.push(edges.last().copied().unwrap_or(0.0) + last_gap);
    let beat_chroma = harmony::average(&harmony.chroma, &edges);
    let fps = fps();
    let low_at: Vec<f32> =
        rhythm.beats.iter().map(|b| onset::local_max(&rhythm.onsets.low, (b * fps).round() as usize, 3)).collect();
    let net_down: Option<Vec<f32>> = rhythm
        .downbeat
        .as_ref()
        .map(|d| rhythm.beats.iter().map(|b| onset::local_max(d, (b * fps).round() as usize, 2)).collect());
    let (beats_per_bar, down_idx) =
        meter::downbeats(&meter::downbeat_evidence(&beat_chroma, &low_at, net_down.as_deref()));
    let downbeats: Vec<f64> = down_idx.iter().map(|&i| rhythm.beats[i]).collect();
    hooks.stage("sections")?;
    let mut bar_starts: Vec<f64> = downbeats.clone();
    if let (Some(&last_i), Some(&first)) = (down_idx.last(), downbeats.first()) {
        let bar = last_gap * beats_per_bar as f64;
        let end = rhythm.beats.get(last_i + beats_per_bar).copied().unwrap_or(rhythm.beats[last_i] + bar);
        bar_starts.push(end.min(duration));
        let _ = first;
    }
    let bar_vectors = bar_features(&harmony, &bar_starts);
    let sections = sections::sections(&bar_starts, &bar_vectors, round3(duration));
    let energy = beat_energy(&mono, &rhythm.beats);
    hooks.stage("loudness")?;
    let loudness = loudness::integrated(&decoded.samples, usize::from(decoded.channels), decoded.sample_rate)
        .ok_or(Error::Silent)?;
    let spp = (decoded.sample_rate / PEAKS_PER_SECOND).max(1);
    let peaks = timbre_audio::waveform_peaks(&native, decoded.sample_rate, spp, PeakBits::Eight)?;
    let analysis = Analysis {
        duration: round3(duration),
        sample_rate: decoded.sample_rate,
        bpm: (rhythm.bpm * 100.0).round() / 100.0,
        bpm_confidence: round3(rhythm.confidence),
        beats: rhythm.beats.iter().map(|&b| round3(b)).collect(),
        downbeats: downbeats.iter().map(|&b| round3(b)).collect(),
        time_signature: format!("{beats_per_bar}/4"),
        sections: sections
            .into_iter()
            .map(|s| Section { start: round3(s.start), end: round3(s.end), label: s.label })
            .collect(),
        energy,
        loudness_lufs: (loudness * 10.0).round() / 10.0,
        genre: Vec::new(),
        mood: Vec::new(),
    };
    Ok(Report { analysis, peaks })
}

/// One vector per bar: chroma (weight 1) and MFCC 1–12 standardised across bars (weight 0.5),
/// so harmony and timbre both separate sections.
fn bar_features(h: &harmony::Frames, bar_starts: &[f64]) -> Vec<Vec<f32>> {
    if bar_starts.len() < 2 {
        return Vec::new();
    }
    let chroma = harmony::average(&h.chroma, bar_starts);
    let mfcc = harmony::average(&h.mfcc, bar_starts);
    let n = mfcc.len() as f32;
    let mut mean = [0f32; harmony::N_MFCC];
    let mut sd = [0f32; harmony::N_MFCC];
    for row in &mfcc {
        for k in 0..harmony::N_MFCC {
            mean[k] += row[k] / n;
        }
    }
    for row in &mfcc {
        for k in 0..harmony::N_MFCC {
            sd[k] += (row[k] - mean[k]).powi(2) / n;
        }
    }
    chroma
        .iter()
        .zip(&mfcc)
        .map(|(c, m)| {
            let norm = c.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-9);
            let mut v: Vec<f32> = c.iter().map(|x| x / norm).collect();
            v.extend((1..harmony::N_MFCC).map(|k| 0.5 * (m[k] - mean[k]) / sd[k].sqrt().max(1e-6) / 3.5));
            v
        })
        .collect()
}

/// Runs the whole analysis: decoding and DSP on a blocking thread while the tagger scores genre
/// and mood on its own engine thread (two cores are used when there are two).
pub struct MusicAnalyzer {
    beatnet: Option<Arc<BeatNet>>,
    tagger: Option<Arc<Tagger>>,
}

impl MusicAnalyzer {
    /// Without BeatNet, beats come from spectral flux alone (less sure of the metrical level);
    /// without a tagger, genre and mood stay empty. The caller reports either.
    pub fn new(beatnet: Option<Arc<BeatNet>>, tagger: Option<Arc<Tagger>>) -> Self {
        Self { beatnet, tagger }
    }

    /// Decode `bytes` (any format timbre-audio reads; `hint` is an extension or MIME type) and
    /// analyse them.
    pub async fn analyze(&self, bytes: Arc<Vec<u8>>, hint: Option<String>, hooks: Hooks) -> Result<Report, Error> {
        hooks.stage("decode")?;
        let decoded = tokio::task::spawn_blocking(move || timbre_audio::decode(&bytes, hint.as_deref()))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let tagger = self.tagger.clone();
        analyze_with(Arc::new(decoded), self.beatnet.clone(), async move { tagger }, hooks).await
    }
}

/// The song at the tagger's rate — but only the windows it scores, back to back — and their
/// count. `Tagger::mean_scores` asked for that many windows of a signal exactly that long takes
/// them one after another, so the scores equal those of resampling the whole song (the same
/// samples, see `PolyResampler`) for a tenth of the work and memory: the tagger hears 30 s of
/// a song. A rate pair the polyphase filter cannot take goes through the sinc resampler whole.
fn tag_windows(decoded: &Decoded) -> Result<(Vec<f32>, usize), AudioError> {
    let rate = crate::ced::SAMPLE_RATE;
    let Ok(r) = timbre_audio::PolyResampler::new(decoded.sample_rate, rate) else {
        return Ok((to_rate(&decoded.to_mono(), decoded.sample_rate, rate)?, TAG_WINDOWS));
    };
    let (frames, channels) = (decoded.frames(), usize::from(decoded.channels.max(1)));
    let len = r.output_len(frames);
    let win = (crate::tagging::tagger::CLIP_SECONDS * rate as f32) as usize;
    let starts = crate::tagging::tagger::spread_starts(len, win, TAG_WINDOWS);
    let take = win.min(len);
    let mut out = Vec::with_capacity(starts.len() * take);
    for &start in &starts {
        let span = r.input_span(start..start + take, frames);
        let mono =
            timbre_audio::downmix_to_mono(&decoded.samples[span.start * channels..span.end * channels], channels);
        out.extend(r.run(&mono, span.start, start..start + take));
    }
    Ok((out, starts.len()))
}

/// The analysis of decoded audio, with the tagger supplied by a future so a caller that is still
/// loading the model (the CLI) overlaps that with the DSP.
pub async fn analyze_with<F>(
    decoded: Arc<Decoded>,
    beatnet: Option<Arc<BeatNet>>,
    tagger: F,
    hooks: Hooks,
) -> Result<Report, Error>
where
    F: std::future::Future<Output = Option<Arc<Tagger>>>,
{
    let dsp = {
        let (decoded, hooks) = (Arc::clone(&decoded), hooks.clone());
        tokio::task::spawn_blocking(move || analyze_decoded(&decoded, beatnet.as_deref(), &hooks))
    };
    let tags = async {
        if decoded.duration_s < MIN_SECONDS {
            return Ok(None);
        }
        let d = Arc::clone(&decoded);
        let windows = tokio::task::spawn_blocking(move || tag_windows(&d));
        let Some(tagger) = tagger.await else { return Ok(None) };
        let (windows, count) = windows.await.map_err(|e| Error::Internal(e.to_string()))??;
        let mean = tagger.mean_scores(&windows, count).await?;
        Ok::<_, Error>(Some(tags::genre_mood(tagger.labels(), &mean.value)))
    };
    let (dsp, tags) = tokio::join!(dsp, tags);
    let mut report = dsp.map_err(|e| Error::Internal(e.to_string()))??;
    hooks.stage("tags")?;
    if let Some((genre, mood)) = tags? {
        report.analysis.genre = genre;
        report.analysis.mood = mood;
    }
    (hooks.progress)("done", 1.0);
    Ok(report)
}

#[cfg(test)]
mod level_tests {
    use super::*;

    /// A BeatNet-like activation: a peak of `strong` on every beat of `beats` and `weak` halfway
    /// between consecutive beats.
    fn activation(beats: &[usize], strong: f32, weak: f32) -> Vec<f32> {
        let mut x = vec![0.02f32; beats.last().copied().unwrap_or(0) + 50];
        for w in beats.windows(2) {
            x[w[0]] = strong;
            x[(w[0] + w[1]) / 2] = weak;
        }
        x
    }

    /// Tracked beats at twice the true tempo: the true beats and the points between them.
    fn doubled(beats: &[usize]) -> Vec<usize> {
        beats.windows(2).flat_map(|w| [w[0], (w[0] + w[1]) / 2]).collect()
    }

    #[test]
    fn eighth_notes_beatnet_hardly_hears_are_not_the_beat() {
        // 70 BPM at 100 fps (86 frames), soft eighths between: tracked at 140, the level halves.
        let beats: Vec<usize> = (0..60).map(|i| 20 + i * 86).collect();
        let act = activation(&beats, 0.9, 0.15);
        assert_eq!(choose_level(&act, &doubled(&beats), 100.0), 2.0);
        assert_eq!(choose_level(&act, &beats, 100.0), 1.0, "tracked at the right level, it stays");
    }

    #[test]
    fn a_two_beat_whose_offbeats_beatnet_also_hears_keeps_the_fast_level() {
        // 170 BPM (35 frames), tracked at 85 BPM; BeatNet fires on the "chick" at 60 %.
        let fast: Vec<usize> = (0..120).map(|i| 20 + i * 35).collect();
        let slow: Vec<usize> = fast.iter().copied().step_by(2).collect();
        let act = activation(&slow, 0.9, 0.6);
        assert_eq!(choose_level(&act, &slow, 100.0), 0.5);
    }

    #[test]
    fn the_level_is_found_through_a_tempo_change() {
        // 100 BPM then 128 BPM, soft eighths throughout, tracked at double tempo.
        let mut beats: Vec<usize> = (0..40).map(|i| 20 + i * 60).collect();
        let last = *beats.last().unwrap_or(&0);
        beats.extend((1..50).map(|i| last + i * 47));
        let act = activation(&beats, 0.9, 0.15);
        assert_eq!(choose_level(&act, &doubled(&beats), 100.0), 2.0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tag_window_tests {
    use super::*;

    fn stereo(seconds: f64, rate: u32) -> Decoded {
        let n = (seconds * f64::from(rate)) as usize;
        let samples = (0..n)
            .flat_map(|i| {
                let t = i as f64 / f64::from(rate);
                [
                    (t * 440.0 * std::f64::consts::TAU).sin() as f32 * 0.5,
                    (t * 97.0 * std::f64::consts::TAU).sin() as f32,
                ]
            })
            .collect();
        Decoded { sample_rate: rate, channels: 2, samples, duration_s: seconds, codec: "pcm_f32le".into() }
    }

    #[test]
    fn the_taggers_windows_are_those_of_the_whole_song_resampled() {
        let win = (crate::tagging::tagger::CLIP_SECONDS * crate::ced::SAMPLE_RATE as f32) as usize;
        for (seconds, rate) in [(47.3, 44_100), (61.0, 48_000), (6.5, 44_100)] {
            let d = stereo(seconds, rate);
            let whole = to_rate(&d.to_mono(), rate, crate::ced::SAMPLE_RATE).unwrap();
            let starts = crate::tagging::tagger::spread_starts(whole.len(), win, TAG_WINDOWS);
            let take = win.min(whole.len());
            let want: Vec<f32> = starts.iter().flat_map(|&s| whole[s..s + take].iter().copied()).collect();
            let (got, count) = tag_windows(&d).unwrap();
            assert_eq!(count, starts.len(), "{seconds} s at {rate} Hz");
            assert!(got == want, "{seconds} s at {rate} Hz: the windows differ from the whole song's");
            // And the tagger takes exactly those windows back out of the concatenation.
            let back: Vec<usize> = (0..count).map(|i| i * take).collect();
            assert_eq!(crate::tagging::tagger::spread_starts(got.len(), win, count), back);
        }
    }
}
