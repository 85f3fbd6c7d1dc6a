//! Audio I/O for timbre: turn whatever bytes a client uploads into samples a model can use,
//! and turn model output back into the container a client asked for.
//!
//! Everything here is pure and synchronous (CPU-bound work belongs on a blocking thread, not the
//! async runtime). The decoder treats its input as hostile: it never trusts a header's sizes,
//! bounds what it decodes with [`DecodeLimits`], and reports failures as typed [`AudioError`]s
//! that the server maps onto HTTP statuses.

mod decode;
mod encode;
mod error;
mod features;
mod ffmpeg;
mod g711;
mod mp4;
mod ogg_opus;
mod pcm;
mod peaks;
mod polyphase;
mod resample;

pub use decode::{
    DecodeLimits, DecodeOptions, Decoded, MAX_SAMPLE_RATE, decode, decode_mono, decode_mono_with, decode_with,
};
pub use encode::{OutputFormat, StreamEncoder, encode, stream_encoder};
pub use error::AudioError;
pub use features::{
    WHISPER_HOP_LENGTH, WHISPER_N_FFT, WHISPER_SAMPLE_RATE, for_each_power_frame, hann_window, log_mel_spectrogram,
    mel_filterbank, power_spectrogram,
};
pub use ffmpeg::ffmpeg_available;
pub use g711::{
    alaw_to_f32, alaw_to_linear, f32_to_alaw, f32_to_mulaw, linear_to_alaw, linear_to_mulaw, mulaw_to_f32,
    mulaw_to_linear,
};
pub use pcm::{downmix_to_mono, f32_to_pcm16, f32_to_pcm16_bytes, pcm16_bytes_to_f32, pcm16_to_f32};
pub use peaks::{PeakBits, Peaks, waveform_peaks};
pub use polyphase::{PolyResampler, resample_poly};
pub use resample::resample;

/// Result alias for this crate: every fallible operation fails with an [`AudioError`].
pub type Result<T, E = AudioError> = std::result::Result<T, E>;
