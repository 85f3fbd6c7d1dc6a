//! Bytes of any common container → interleaved f32 samples.
//!
//! symphonia (pure Rust) handles WAV/AIFF/FLAC/MP3/Ogg Vorbis/MP4-AAC/ALAC/ADPCM; Ogg Opus goes
//! through libopus ([`crate::ogg_opus`]); anything else (WebM, video containers, odd codecs) is
//! handed to an `ffmpeg` subprocess when one is installed. Input is untrusted: sizes come from
//! what was actually decoded, never from headers, and [`DecodeLimits`] bound the output.

use std::io::Cursor;
use std::time::Duration;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::pcm::downmix_to_mono;
use crate::resample::resample;
use crate::{AudioError, Result, ffmpeg, mp4, ogg_opus};

/// Highest sample rate accepted anywhere in the crate: 768 kHz is the highest rate real
/// hardware records at; anything above is a corrupt or hostile header.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// More channels than any real recording format carries (Opus/Vorbis stop at 255, but beyond
/// 7.1.4 nothing in our domain exists); a header claiming more is not audio we want.
pub(crate) const MAX_CHANNELS: usize = 32;

/// AAC encoders prepend this many frames of priming; used when the container does not say.
const AAC_DEFAULT_PRIMING: u64 = 1024;

/// Bounds on what one decode may produce, so a small hostile upload (a 44-byte header claiming
/// hours, a zip-bomb-like codec stream) cannot make the server allocate gigabytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Longest audio accepted, in seconds of playback.
    pub max_seconds: f64,
    /// Most interleaved samples (frames × channels) kept in memory; 4 bytes each.
    pub max_samples: usize,
}

impl Default for DecodeLimits {
    /// Three hours, and 2^28 samples (1 GiB of f32): a long podcast fits, a bomb does not.
    fn default() -> Self {
        Self { max_seconds: 3.0 * 3600.0, max_samples: 1 << 28 }
    }
}

impl DecodeLimits {
    fn check(&self, frames: usize, channels: usize, sample_rate: u32) -> Result<()> {
        let samples = frames.saturating_mul(channels);
        let seconds = frames as f64 / f64::from(sample_rate.max(1));
        if samples > self.max_samples || seconds > self.max_seconds {
            return Err(self.exceeded());
        }
        Ok(())
    }

    pub(crate) fn exceeded(&self) -> AudioError {
        AudioError::TooLong { max_seconds: self.max_seconds, max_samples: self.max_samples }
    }
}

/// How to decode: limits, and whether the slow ffmpeg subprocess may be used.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    pub limits: DecodeLimits,
    /// Hand formats symphonia cannot read to `ffmpeg` when it is on PATH. Off in the fuzzer,
    /// where a subprocess per input would be too slow.
    pub ffmpeg_fallback: bool,
    /// Wall-clock bound for one ffmpeg run; a stuck or adversarial decode is killed after it.
    pub ffmpeg_timeout: Duration,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { limits: DecodeLimits::default(), ffmpeg_fallback: true, ffmpeg_timeout: Duration::from_secs(120) }
    }
}

/// Decoded audio, interleaved, at the source's own rate and channel count.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved samples in [-1, 1]: frame *i*, channel *c* is `samples[i * channels + c]`.
    pub samples: Vec<f32>,
    pub duration_s: f64,
    /// Short codec name as the decoder reports it (`mp3`, `flac`, `aac`, `opus`, `pcm_s16le`…),
    /// for logs and for answering "what did you receive".
    pub codec: String,
}

impl Decoded {
    pub(crate) fn new(sample_rate: u32, channels: usize, samples: Vec<f32>, codec: String) -> Result<Self> {
        check_format(sample_rate, channels)?;
        if samples.is_empty() {
            return Err(AudioError::Empty);
        }
        // Float PCM (WAV/AIFF/CAF) can carry NaN and infinity bit patterns; one NaN poisons
        // every model input it touches (an FFT, a mel frame, an RMS), so they become silence.
        let mut samples = samples;
        for s in samples.iter_mut().filter(|s| !s.is_finite()) {
            *s = 0.0;
        }
        let frames = samples.len() / channels;
        let channels = u16::try_from(channels).map_err(|_| AudioError::unsupported(format!("{channels} channels")))?;
        Ok(Self { sample_rate, channels, duration_s: frames as f64 / f64::from(sample_rate), samples, codec })
    }

    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    pub fn to_mono(&self) -> Vec<f32> {
        downmix_to_mono(&self.samples, usize::from(self.channels))
    }
}

/// Rejects parameters that no real stream has, before anything is sized from them.
pub(crate) fn check_format(sample_rate: u32, channels: usize) -> Result<()> {
    if sample_rate == 0 {
        return Err(AudioError::corrupt("sample rate is 0"));
    }
    if sample_rate > MAX_SAMPLE_RATE {
        return Err(AudioError::unsupported(format!("sample rate {sample_rate} Hz is above {MAX_SAMPLE_RATE} Hz")));
    }
    if channels == 0 {
        return Err(AudioError::corrupt("zero channels"));
    }
    if channels > MAX_CHANNELS {
        return Err(AudioError::unsupported(format!("{channels} channels (at most {MAX_CHANNELS} are supported)")));
    }
    Ok(())
}

/// Decodes with the default [`DecodeOptions`]. `hint` is a file extension (`"mp3"`, `".wav"`)
/// or a MIME type (`"audio/ogg"`); it only speeds up probing, the bytes decide.
pub fn decode(bytes: &[u8], hint: Option<&str>) -> Result<Decoded> {
    decode_with(bytes, hint, &DecodeOptions::default())
}

pub fn decode_with(bytes: &[u8], hint: Option<&str>, opts: &DecodeOptions) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let native = contain_panics(|| {
        if ogg_opus::looks_like_ogg_opus(bytes) {
            ogg_opus::decode(bytes, &opts.limits)
        } else {
            decode_symphonia(bytes, hint, &opts.limits)
        }
    });
    match native {
        Err(AudioError::Unsupported { reason }) => {
            if !opts.ffmpeg_fallback {
                return Err(AudioError::Unsupported { reason });
            }
            if !ffmpeg::ffmpeg_available() {
                return Err(AudioError::unsupported(format!("{reason}; install ffmpeg to decode this format")));
            }
            ffmpeg::decode(bytes, opts)
        }
        other => other,
    }
}

/// Turns a panic inside the demuxers/decoders into [`AudioError::Corrupt`].
///
/// symphonia is not panic-free on hostile input: fuzzing found arithmetic overflows in its
/// MS-ADPCM decoder (`codec_ms.rs`: the step size is never clamped) and its WAV `fmt ` parser
/// (`chunks.rs`: channels × bytes per sample in u16), which panic in builds with overflow
/// checks and wrap silently in release. A malformed upload must be a
/// 422, not a crashed worker, so the whole native decode runs under `catch_unwind`; the
/// decoder state is dropped with it. This relies on the default `panic = "unwind"`.
fn contain_panics(f: impl FnOnce() -> Result<Decoded>) -> Result<Decoded> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(AudioError::corrupt(format!("decoder failed on malformed input: {message}")))
    })
}

/// Decodes, downmixes to mono and resamples to `target_rate`: what every speech model wants.
pub fn decode_mono(bytes: &[u8], hint: Option<&str>, target_rate: u32) -> Result<Vec<f32>> {
    decode_mono_with(bytes, hint, target_rate, &DecodeOptions::default())
}

pub fn decode_mono_with(bytes: &[u8], hint: Option<&str>, target_rate: u32, opts: &DecodeOptions) -> Result<Vec<f32>> {
    if target_rate == 0 || target_rate > MAX_SAMPLE_RATE {
        return Err(AudioError::invalid("target_rate", format!("{target_rate} Hz is outside 1..={MAX_SAMPLE_RATE}")));
    }
    let decoded = decode_with(bytes, hint, opts)?;
    let mono = decoded.to_mono();
    resample(&mono, decoded.sample_rate, target_rate)
}

fn make_hint(hint: Option<&str>) -> Hint {
    let mut h = Hint::new();
    if let Some(raw) = hint.map(str::trim).filter(|s| !s.is_empty()) {
        if raw.contains('/') {
            h.mime_type(&raw.to_ascii_lowercase());
        } else {
            h.with_extension(&raw.trim_start_matches('.').to_ascii_lowercase());
        }
    }
    h
}

fn map_probe_error(err: SymphoniaError) -> AudioError {
    match err {
        SymphoniaError::Unsupported(what) => {
            AudioError::unsupported(format!("unrecognised container or codec ({what})"))
        }
        SymphoniaError::IoError(e) => AudioError::corrupt(format!("truncated header: {e}")),
        SymphoniaError::LimitError(what) => AudioError::corrupt(format!("limit reached: {what}")),
        other => AudioError::corrupt(other.to_string()),
    }
}

/// Consecutive undecodable packets after which a stream is declared corrupt rather than
/// skipped over packet by packet.
const MAX_CONSECUTIVE_DECODE_ERRORS: usize = 64;

fn decode_symphonia(bytes: &[u8], hint: Option<&str>, limits: &DecodeLimits) -> Result<Decoded> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(&make_hint(hint), mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(map_probe_error)?;

    let track = format.default_track(TrackType::Audio).ok_or_else(|| AudioError::unsupported("no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::unsupported("audio track has no codec parameters"))?
        .clone();
    let (track_delay, track_frames) = (track.delay, track.num_frames);
    if let Some(rate) = params.sample_rate {
        check_format(rate, params.channels.as_ref().map_or(1, |c| c.count()))?;
    } else if let Some(channels) = &params.channels {
        check_format(1, channels.count())?;
    }

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymphoniaError::Unsupported(what) => AudioError::unsupported(format!("no decoder for this codec ({what})")),
            other => AudioError::corrupt(format!("cannot set up decoder: {other}")),
        })?;
    let codec = decoder.codec_info().short_name.to_string();

    let mut samples: Vec<f32> = Vec::with_capacity(capacity_hint(track_frames, &params, bytes.len(), limits));
    let mut scratch: Vec<f32> = Vec::new();
    let mut spec: Option<(u32, usize)> = None;
    let mut consecutive_errors = 0usize;
    let mut any_error: Option<String> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(SymphoniaError::ResetRequired) => break,
            // A file cut short (upload interrupted): keep what decoded.
            Err(SymphoniaError::IoError(e)) => {
                any_error.get_or_insert_with(|| format!("truncated: {e}"));
                break;
            }
            Err(SymphoniaError::Unsupported(what)) if samples.is_empty() => {
                return Err(AudioError::unsupported(what.to_string()));
            }
            Err(e) => {
                any_error.get_or_insert_with(|| e.to_string());
                break;
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                consecutive_errors = 0;
                let rate = buf.spec().rate();
                let channels = buf.spec().channels().count();
                match spec {
                    None => {
                        check_format(rate, channels)?;
                        spec = Some((rate, channels));
                    }
                    // Chained streams with a new rate/layout: ffmpeg can resample them.
                    Some(s) if s != (rate, channels) => {
                        return Err(AudioError::unsupported("sample rate or channel layout changes mid-stream"));
                    }
                    Some(_) => {}
                }
                let frames = samples.len() / channels + buf.frames();
                limits.check(frames, channels, rate)?;
                buf.copy_to_vec_interleaved(&mut scratch);
                samples.extend_from_slice(&scratch);
            }
            Err(SymphoniaError::DecodeError(e)) | Err(SymphoniaError::LimitError(e)) => {
                any_error.get_or_insert_with(|| e.to_string());
                consecutive_errors += 1;
                if consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS {
                    if samples.is_empty() {
                        return Err(AudioError::corrupt(format!("undecodable stream: {e}")));
                    }
                    break;
                }
            }
            Err(SymphoniaError::IoError(e)) => {
                any_error.get_or_insert_with(|| e.to_string());
            }
            Err(SymphoniaError::Unsupported(what)) => {
                return Err(AudioError::unsupported(format!("codec feature: {what}")));
            }
            Err(e) => {
                any_error.get_or_insert_with(|| e.to_string());
                break;
            }
        }
    }

    let Some((rate, channels)) = spec else {
        return Err(match any_error {
            Some(reason) => AudioError::corrupt(format!("no decodable audio: {reason}")),
            None => AudioError::Empty,
        });
    };

    if params.codec == CODEC_ID_AAC {
        trim_aac(bytes, &mut samples, channels, track_delay, track_frames);
    }
    Decoded::new(rate, channels, samples, codec)
}

/// Most samples one byte of input is taken to yield when sizing the output up front: 16-bit PCM
/// gives 0.5, MP3 at 64 kb/s stereo ~11, lossless codecs about 1.
const PLAUSIBLE_SAMPLES_PER_BYTE: usize = 16;

/// Samples to reserve before decoding: the container's frame count when it gives one, so a long
/// file is not copied (and page-faulted) at every doubling of the buffer. A header is untrusted,
/// so the figure is capped by the limits and by what the input's size makes plausible; a
/// stream longer than its hint just grows as before.
fn capacity_hint(
    frames: Option<u64>,
    params: &symphonia::core::codecs::audio::AudioCodecParameters,
    input_len: usize,
    limits: &DecodeLimits,
) -> usize {
    let channels = params.channels.as_ref().map_or(1, |c| c.count()).max(1);
    let hinted = frames.map_or(0, |f| usize::try_from(f).unwrap_or(usize::MAX)).saturating_mul(channels);
    hinted.min(limits.max_samples).min(input_len.saturating_mul(PLAUSIBLE_SAMPLES_PER_BYTE))
}

/// symphonia leaves AAC's encoder priming and final-frame padding in the output (it does trim
/// MP3 and Vorbis), so a decoded AAC file is ~23 ms late and a little long. The MP4 edit list
/// says exactly what to drop; without one, drop the customary 1024 priming frames.
fn trim_aac(
    bytes: &[u8],
    samples: &mut Vec<f32>,
    channels: usize,
    track_delay: Option<u32>,
    track_frames: Option<u64>,
) {
    let frames = (samples.len() / channels) as u64;
    let (skip, keep) = match mp4::audio_edit(bytes) {
        Some(edit) => (edit.skip_frames, edit.keep_frames),
        None => (track_delay.map_or(AAC_DEFAULT_PRIMING, u64::from), track_frames),
    };
    let skip = skip.min(frames);
    let keep = keep.unwrap_or(frames - skip).min(frames - skip);
    let start = (skip as usize) * channels;
    let end = start + (keep as usize) * channels;
    samples.truncate(end);
    samples.drain(..start);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_frames_and_samples() {
        let limits = DecodeLimits { max_seconds: 1.0, max_samples: 100 };
        assert!(limits.check(50, 2, 100).is_ok());
        assert!(matches!(limits.check(51, 2, 1000), Err(AudioError::TooLong { .. })));
        assert!(matches!(limits.check(11, 1, 10), Err(AudioError::TooLong { .. })));
    }

    #[test]
    fn hint_accepts_extension_or_mime() {
        // Only checks that odd hints do not break decoding of a valid stream.
        let wav = crate::encode(&[0.1; 800], 8000, crate::OutputFormat::Wav).unwrap();
        for hint in [None, Some("wav"), Some(".WAV"), Some("audio/wav"), Some("mp3"), Some("")] {
            let d = decode(&wav, hint).unwrap();
            assert_eq!(d.frames(), 800, "hint {hint:?}");
        }
    }
}
