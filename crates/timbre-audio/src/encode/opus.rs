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
    let mut stream = if OPUS_INPUT_RATES.contains(&sample_rate) {
        let mut stream = OggOpusStream::new(sample_rate, sample_rate)?;
        stream.push(samples)?;
        stream
    } else {
        let mut stream = OggOpusStream::new(OUTPUT_RATE, sample_rate)?;
        stream.push(&resample(samples, sample_rate, OUTPUT_RATE)?)?;
        stream
    };
    let mut out = stream.take_bytes();
    out.extend(stream.finish()?);
    Ok(out)
}

/// Incremental Ogg Opus writer: whole 20 ms frames are encoded as samples arrive and pages
/// are released as they fill, so a streamed response starts playing before synthesis ends.
/// One-shot [`encode`] is this with a single push.
pub(super) struct OggOpusStream {
    encoder: Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    /// Rate fed to libopus (one of [`OPUS_INPUT_RATES`]).
    rate: u32,
    frame: usize,
    to_48k: u64,
    lookahead: usize,
    pre_skip: u64,
    /// Samples waiting for a whole frame.
    pending: Vec<f32>,
    /// Samples pushed so far, at `rate`: fixes the end granule (and so the exact length).
    pushed: u64,
    packets: usize,
    /// The newest packet is held back: only at `finish` is it known to be the last one, which
    /// must carry the end-of-stream flag and the trimmed granule position.
    held: Option<Vec<u8>>,
    scratch: Vec<u8>,
    finished: bool,
}

impl OggOpusStream {
    /// `rate` must be one libopus accepts; `input_rate` is only recorded in the header.
    pub(super) fn new(rate: u32, input_rate: u32) -> Result<Self> {
        if !OPUS_INPUT_RATES.contains(&rate) {
            return Err(AudioError::invalid(
                "sample_rate",
                format!("Opus streams take 8, 12, 16, 24 or 48 kHz, not {rate} Hz"),
            ));
        }
        let mut encoder = Encoder::new(rate, Channels::Mono, Application::Audio).map_err(opus_error("init"))?;
        encoder.set_bitrate(Bitrate::Bits(64_000)).map_err(opus_error("bitrate"))?;
        let lookahead = encoder.get_lookahead().map_err(opus_error("lookahead"))?;
        let lookahead = usize::try_from(lookahead).unwrap_or(0);
        let to_48k = u64::from(OUTPUT_RATE / rate);
        let pre_skip = lookahead as u64 * to_48k;
        let mut writer = PacketWriter::new(Vec::new());
        writer
            .write_packet(opus_head(pre_skip, input_rate), SERIAL, PacketWriteEndInfo::EndPage, 0)
            .map_err(ogg_error)?;
        writer.write_packet(opus_tags(), SERIAL, PacketWriteEndInfo::EndPage, 0).map_err(ogg_error)?;
        Ok(Self {
            encoder,
            writer,
            rate,
            frame: (rate * FRAME_MS / 1000) as usize,
            to_48k,
            lookahead,
            pre_skip,
            pending: Vec::new(),
            pushed: 0,
            packets: 0,
            held: None,
            scratch: vec![0u8; MAX_PACKET],
            finished: false,
        })
    }

    /// Bytes of completed pages not yet handed out.
    pub(super) fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.inner_mut())
    }

    pub(super) fn push(&mut self, samples: &[f32]) -> Result<()> {
        if self.finished {
            return Err(AudioError::invalid("samples", "the stream is already finished"));
        }
        self.pushed += samples.len() as u64;
        self.pending.extend(samples.iter().map(|s| s.clamp(-1.0, 1.0)));
        self.encode_whole_frames()
    }

    fn encode_whole_frames(&mut self) -> Result<()> {
        let whole = self.pending.len() / self.frame * self.frame;
        for start in (0..whole).step_by(self.frame) {
            let len = self
                .encoder
                .encode_float(&self.pending[start..start + self.frame], &mut self.scratch)
                .map_err(opus_error("encode"))?;
            let packet = self.scratch[..len].to_vec();
            if let Some(previous) = self.held.replace(packet) {
                self.write(previous, false)?;
            }
        }
        self.pending.drain(..whole);
        Ok(())
    }

    fn write(&mut self, packet: Vec<u8>, last: bool) -> Result<()> {
        self.packets += 1;
        let (end, granule) = if last {
            let played = (u128::from(self.pushed) * u128::from(OUTPUT_RATE)).div_ceil(u128::from(self.rate)) as u64;
            (PacketWriteEndInfo::EndStream, self.pre_skip + played)
        } else {
            let granule = (self.packets * self.frame) as u64 * self.to_48k;
            if self.packets.is_multiple_of(PACKETS_PER_PAGE) {
                (PacketWriteEndInfo::EndPage, granule)
            } else {
                (PacketWriteEndInfo::NormalPacket, granule)
            }
        };
        self.writer.write_packet(packet, SERIAL, end, granule).map_err(ogg_error)
    }

    /// Flushes the encoder's lookahead and writes the final page; returns the remaining bytes.
    pub(super) fn finish(&mut self) -> Result<Vec<u8>> {
        if self.finished {
            return Ok(Vec::new());
        }
        // The encoder holds `lookahead` samples back: feed that much silence so the last real
        // samples come out, then pad to a whole frame.
        let tail = self.pending.len() + self.lookahead;
        let padded = tail.div_ceil(self.frame).max(1) * self.frame;
        self.pending.resize(padded, 0.0);
        self.encode_whole_frames()?;
        if let Some(last) = self.held.take() {
            self.write(last, true)?;
        }
        self.finished = true;
        Ok(self.take_bytes())
    }
}

fn ogg_error(e: std::io::Error) -> AudioError {
    AudioError::internal(format!("Ogg writer: {e}"))
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
