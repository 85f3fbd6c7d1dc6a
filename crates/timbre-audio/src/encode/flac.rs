//! FLAC through `flacenc` (pure Rust: no libFLAC to build or ship).

use flacenc::bitsink::ByteSink;
use flacenc::component::BitRepr;
use flacenc::error::Verify;

use crate::pcm::sample_to_i16;
use crate::{AudioError, Result};

/// FLAC's STREAMINFO stores the rate in 20 bits.
const MAX_FLAC_RATE: u32 = (1 << 20) - 1;

pub(super) fn encode(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    if sample_rate > MAX_FLAC_RATE {
        return Err(AudioError::invalid("sample_rate", "FLAC stores at most 1048575 Hz"));
    }
    let ints: Vec<i32> = samples.iter().map(|&s| i32::from(sample_to_i16(s))).collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| AudioError::internal(format!("FLAC config: {e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(&ints, 1, 16, sample_rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| AudioError::internal(format!("FLAC encoder: {e:?}")))?;
    let mut sink = ByteSink::new();
    stream.write(&mut sink).map_err(|e| AudioError::internal(format!("FLAC writer: {e:?}")))?;
    let mut bytes = sink.into_inner();
    fix_min_block_size(&mut bytes);
    Ok(bytes)
}

/// flacenc counts the short final block in STREAMINFO's minimum block size, which the FLAC
/// spec excludes; symphonia then takes the stream for variable-blocksize and rejects it. A
/// fixed-blocksize stream has min == max, so copy max over min.
fn fix_min_block_size(bytes: &mut [u8]) {
    // "fLaC", then the STREAMINFO block header (4 bytes), then min (u16 BE) and max (u16 BE).
    if bytes.len() >= 12 && bytes.starts_with(b"fLaC") && bytes[4] & 0x7F == 0 {
        let (min, max) = bytes[8..12].split_at_mut(2);
        min.copy_from_slice(max);
    }
}
