//! Opus in Ogg (RFC 7845) through libopus (`opus` crate, which builds the bundled libopus with
//! cmake and links it statically: nothing to install at run time).

use ogg::{PacketWriteEndInfo, PacketWriter};
use opus::{Application, Bitrate, Channels, Encoder};

use crate::resample::resample;
use crate::{AudioError, Result};

/// Ogg Opus always plays at 48 kHz; granule positions count 48 kHz samples.
pub(super) const OUTPUT_RATE: u32 = 48_000;

/// Rates libopus accepts as encoder input.
const OPUS_INPUT_RATES: [u32; 5] = [8000, 12_000, 16_000, 24_000, 48_000];

/// Fixed stream serial: deterministic output makes caching and tests simpler, and a file
/// holds a single logical stream.
const SERIAL: u32 = 0x7469_6d62;

/// 20 ms frames: Opus's sweet spot between latency, overhead and quality.
const FRAME_MS: u32 = 20;

/// Packets per Ogg page (200 ms): a page is the unit a reader can recover after a cut or
/// start playing from, and without a cap the writer packs up to 255 packets (5 s) into one.
const PACKETS_PER_PAGE: usize = 10;

/// Largest packet libopus produces (RFC 6716 §3.4 bound).
const MAX_PACKET: usize = 1275 * 3 + 7;

fn opus_error(what: &'static str) -> impl Fn(opus::Error) -> AudioError {
    move |e| AudioError::internal(format!("libopus {what}: {e}"))
}

pub(super) fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    // Feed libopus a rate it takes natively when possible; anything else goes to 48 kHz.
    let (rate, pcm) = if OPUS_INPUT_RATES.contains(&sample_rate) {
        (sample_rate, samples.to_vec())
    } else {
        (OUTPUT_RATE, resample(samples, sample_rate, OUTPUT_RATE)?)
    };
    let to_48k = u64::from(OUTPUT_RATE / rate);

    let mut encoder =
        Encoder::new(rate, Channels::Mono, Application::Audio).map_err(opus_error("init"))?;
    encoder
        .set_bitrate(Bitrate::Bits(64_000))
        .map_err(opus_error("bitrate"))?;
    let lookahead = encoder.get_lookahead().map_err(opus_error("lookahead"))?;
    let lookahead = usize::try_from(lookahead).unwrap_or(0);
    let pre_skip = lookahead as u64 * to_48k;

    let mut writer = PacketWriter::new(Vec::new());
    let io = |e: std::io::Error| AudioError::internal(format!("Ogg writer: {e}"));
    writer
        .write_packet(
            opus_head(pre_skip, sample_rate),
            SERIAL,
            PacketWriteEndInfo::EndPage,
            0,
        )
        .map_err(io)?;
    writer
        .write_packet(opus_tags(), SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(io)?;

    // The encoder holds `lookahead` samples back; feed that much silence after the signal so
    // the last real samples come out, then pad to whole frames.
    let frame = (rate * FRAME_MS / 1000) as usize;
    let needed = pcm.len() + lookahead;
    let frames = needed.div_ceil(frame).max(1);
    let mut padded = pcm;
    padded.resize(frames * frame, 0.0);
    padded.iter_mut().for_each(|s| *s = s.clamp(-1.0, 1.0));

    let end_granule = pre_skip + samples_at_48k(samples.len(), sample_rate);
    let mut packet = vec![0u8; MAX_PACKET];
    for (i, chunk) in padded.chunks_exact(frame).enumerate() {
        let len = encoder
            .encode_float(chunk, &mut packet)
            .map_err(opus_error("encode"))?;
        let last = i + 1 == frames;
        let granule = if last {
            end_granule
        } else {
            ((i + 1) * frame) as u64 * to_48k
        };
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else if (i + 1) % PACKETS_PER_PAGE == 0 {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        writer
            .write_packet(packet[..len].to_vec(), SERIAL, end, granule)
            .map_err(io)?;
    }
    Ok(writer.into_inner())
}

fn samples_at_48k(len: usize, rate: u32) -> u64 {
    (len as u128 * u128::from(OUTPUT_RATE)).div_ceil(u128::from(rate)) as u64
}

fn opus_head(pre_skip: u64, input_rate: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&u16::try_from(pre_skip).unwrap_or(u16::MAX).to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono/stereo
    head
}

fn opus_tags() -> Vec<u8> {
    let vendor = concat!("timbre ", env!("CARGO_PKG_VERSION"));
    let mut tags = Vec::new();
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
    tags
}
