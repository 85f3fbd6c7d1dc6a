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
        return Err(AudioError::invalid(
            "sample_rate",
            "FLAC stores at most 1048575 Hz",
        ));
    }
    let ints: Vec<i32> = samples
        .iter()
        .map(|&s| i32::from(sample_to_i16(s)))
        .collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| AudioError::internal(format!("FLAC config: {e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(&ints, 1, 16, sample_rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| AudioError::internal(format!("FLAC encoder: {e:?}")))?;
    let mut sink = ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| AudioError::internal(format!("FLAC writer: {e:?}")))?;
    Ok(sink.into_inner())
}
