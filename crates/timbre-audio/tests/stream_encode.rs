//! Streaming encoders: pushing audio in pieces must give the same (or an equally playable)
//! file as encoding it at once.
#![allow(clippy::unwrap_used)]

mod common;

use common::{middle, tone, zero_crossing_frequency};
use timbre_audio::{AudioError, OutputFormat, decode, encode, stream_encoder};

/// Pushes `samples` in uneven pieces (1 to ~3000 samples) and returns all bytes.
fn stream(format: OutputFormat, rate: u32, samples: &[f32]) -> Vec<u8> {
    let mut encoder = stream_encoder(format, rate).unwrap();
    assert_eq!(encoder.format(), format);
    let mut out = Vec::new();
    let mut rest = samples;
    let mut step = 1usize;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        out.extend(encoder.push(&rest[..n]).unwrap());
        rest = &rest[n..];
        step = (step * 7 + 3) % 3001 + 1;
    }
    out.extend(encoder.finish().unwrap());
    out
}

#[test]
fn opus_stream_is_byte_identical_to_one_shot() {
    for rate in [48_000, 16_000] {
        let input = tone(440.0, rate, 1.0, 0.5);
        let streamed = stream(OutputFormat::Opus, rate, &input);
        assert_eq!(streamed, encode(&input, rate, OutputFormat::Opus).unwrap(), "{rate} Hz");
    }
    // Not a libopus rate: the caller must resample first.
    assert!(matches!(
        stream_encoder(OutputFormat::Opus, 44_100).err(),
        Some(AudioError::InvalidParameter { name: "sample_rate", .. })
    ));
}

#[test]
fn opus_stream_releases_pages_before_the_end() {
    let mut encoder = stream_encoder(OutputFormat::Opus, 48_000).unwrap();
    let first = encoder.push(&tone(440.0, 48_000, 0.5, 0.5)).unwrap();
    // Headers plus at least one 200 ms audio page are ready after half a second.
    assert!(first.windows(4).filter(|w| w == b"OggS").count() >= 3);
}

#[test]
fn raw_formats_stream_to_the_same_bytes() {
    let input = tone(440.0, 8000, 1.0, 0.5);
    for format in [OutputFormat::Pcm16, OutputFormat::Mulaw, OutputFormat::Alaw] {
        assert_eq!(stream(format, 8000, &input), encode(&input, 8000, format).unwrap(), "{format}");
    }
}

#[test]
fn wav_stream_with_unknown_length_decodes_to_the_same_samples() {
    let input = tone(440.0, 16_000, 1.0, 0.5);
    let streamed = stream(OutputFormat::Wav, 16_000, &input);
    assert_eq!(&streamed[40..44], &u32::MAX.to_le_bytes());
    let one_shot = encode(&input, 16_000, OutputFormat::Wav).unwrap();
    assert_eq!(streamed[44..], one_shot[44..]);
    assert_eq!(decode(&streamed, None).unwrap().samples, decode(&one_shot, None).unwrap().samples);
}

#[test]
fn mp3_stream_plays_the_tone() {
    let input = tone(440.0, 44_100, 1.0, 0.5);
    let bytes = stream(OutputFormat::Mp3, 44_100, &input);
    let decoded = decode(&bytes, Some("mp3")).unwrap();
    assert_eq!(decoded.sample_rate, 44_100);
    // Without a LAME tag the decoder keeps the encoder delay and final-frame padding.
    assert!((1.0..1.0 + 3.0 * 1152.0 / 44_100.0).contains(&decoded.duration_s), "{}", decoded.duration_s);
    let freq = zero_crossing_frequency(middle(&decoded.samples, 44_100, 0.1), 44_100);
    assert!((freq - 440.0).abs() < 0.5, "{freq}");
    // A rate MP3 cannot carry is resampled by LAME on the way.
    let bytes = stream(OutputFormat::Mp3, 20_000, &tone(440.0, 20_000, 1.0, 0.5));
    assert_eq!(decode(&bytes, Some("mp3")).unwrap().sample_rate, 22_050);
}

#[test]
fn finished_streams_refuse_more_audio_and_flac_is_not_streamable() {
    for format in [OutputFormat::Mp3, OutputFormat::Opus] {
        let mut encoder = stream_encoder(format, 16_000).unwrap();
        encoder.finish().unwrap();
        assert!(encoder.push(&[0.0; 160]).is_err(), "{format}");
        assert!(encoder.finish().unwrap().is_empty(), "{format}");
    }
    assert!(matches!(
        stream_encoder(OutputFormat::Flac, 16_000).err(),
        Some(AudioError::InvalidParameter { name: "format", .. })
    ));
}
