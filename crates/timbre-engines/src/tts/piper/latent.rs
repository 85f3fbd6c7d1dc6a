//! VITS in two halves: text → latent (`z`, `[1, channels, frames]`, the input of the HiFi-GAN
//! decoder) and latent → audio. The decoder is about three quarters of a sentence's time and
//! is convolutional with a bounded reach, so a slice of frames decoded with [`PAD`] frames of
//! context on each side comes out as it does in a decode of the whole latent (measured on
//! joe-medium: identical to 7e-7 from 12 frames of context up; the test in
//! `tests/tts_reference.rs` holds the sum of the slices to the whole). That lets the first
//! sentence of a stream be decoded in parallel on otherwise idle workers.

use std::ops::Range;

use ort::value::DynValue;

use crate::onnx::proto::*;
use crate::onnx::split::{Split, split_at};

/// Frames of context each side of a slice.
pub const PAD: usize = 16;

/// One sentence's latent, row-major `channels × frames`.
#[derive(Clone, Debug, PartialEq)]
pub struct Latent {
    pub data: Vec<f32>,
    pub channels: usize,
    pub frames: usize,
}

impl Latent {
    pub fn from_value(value: &DynValue) -> Result<Self, String> {
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        match **shape {
            [1, c, t] if c > 0 && t >= 0 => Ok(Self { data: data.to_vec(), channels: c as usize, frames: t as usize }),
            ref other => Err(format!("the latent has shape {other:?}, expected [1, channels, frames]")),
        }
    }

    /// Frames `r` of every channel, row-major.
    pub fn window(&self, r: &Range<usize>) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.channels * r.len());
        for row in self.data.chunks_exact(self.frames.max(1)).take(self.channels) {
            out.extend_from_slice(&row[r.clone()]);
        }
        out
    }
}

/// `frames` with [`PAD`] frames of context each side, within `0..total`.
pub fn padded(frames: &Range<usize>, total: usize) -> Range<usize> {
    frames.start.saturating_sub(PAD)..(frames.end + PAD).min(total)
}

/// The samples of `frames` out of the decoder's `audio` for `window` (a whole number of samples
/// per frame).
pub fn trim(audio: Vec<f32>, window: &Range<usize>, frames: &Range<usize>) -> Result<Vec<f32>, String> {
    if window.is_empty() || !audio.len().is_multiple_of(window.len()) {
        return Err(format!("the decoder gave {} samples for {} frames", audio.len(), window.len()));
    }
    let hop = audio.len() / window.len();
    let start = (frames.start - window.start) * hop;
    Ok(audio[start..start + frames.len() * hop].to_vec())
}

/// `frames` cut into `parts` consecutive slices of (nearly) equal length, or fewer where a slice
/// would be shorter than `min`: below that, the context decoded twice costs more than the
/// parallel decode saves.
pub fn slices(frames: usize, parts: usize, min: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, (frames / min.max(1)).max(1));
    (0..parts).map(|i| i * frames / parts..(i + 1) * frames / parts).collect()
}

/// The input of a Piper model's decoder: the data input of the convolution whose weight is
/// `dec.conv_pre.weight` (the name Piper's VITS export gives the decoder's first layer).
fn decoder_input(model: &[u8]) -> Result<Option<String>, String> {
    let top = fields(model)?;
    let graph = top.iter().find(|f| f.num == MODEL_GRAPH && f.wire == LEN).ok_or("the model has no graph")?;
    for f in fields(graph.bytes)?.iter().filter(|f| f.num == GRAPH_NODE && f.wire == LEN) {
        let n = fields(f.bytes)?;
        if string(&n, NODE_OP_TYPE)? == "Conv" {
            let inputs = strings(&n, NODE_INPUT)?;
            if inputs.get(1).is_some_and(|w| w == "dec.conv_pre.weight") {
                return Ok(inputs.first().cloned());
            }
        }
    }
    Ok(None)
}

/// A Piper model cut at its decoder's input (head: the encoder, tail: the decoder), or `None`
/// when the model has no recognizable decoder or the cut there is not clean.
pub fn split_model(model: &[u8]) -> Result<Option<Split>, String> {
    match decoder_input(model)? {
        Some(z) => split_at(model, &z),
        None => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_frames_once() {
        assert_eq!(slices(100, 2, 24), [0..50, 50..100]);
        assert_eq!(slices(101, 3, 24), [0..33, 33..67, 67..101]);
        assert_eq!(slices(40, 2, 24), vec![0..40], "halves of 20 are too short");
        assert_eq!(slices(0, 2, 24).len(), 1);
    }

    #[test]
    fn padding_and_trimming_give_back_the_slice() {
        let w = padded(&(40..80), 100);
        assert_eq!(w, 24..96);
        assert_eq!(padded(&(0..10), 12), 0..12, "clipped at both ends");
        // 2 samples per frame; the decoder's output for frames 24..96 numbered by frame.
        let audio: Vec<f32> = (24..96).flat_map(|f| [f as f32, f as f32 + 0.5]).collect();
        let out = trim(audio, &w, &(40..80)).unwrap();
        assert_eq!(out.len(), 80);
        assert_eq!((out[0], out[1], out[79]), (40.0, 40.5, 79.5));
        assert!(trim(vec![0.0; 5], &(0..2), &(0..1)).is_err(), "not a whole number of samples per frame");
    }

    #[test]
    fn a_window_takes_the_frames_of_every_channel() {
        let z = Latent { data: (0..12).map(|x| x as f32).collect(), channels: 3, frames: 4 };
        assert_eq!(z.window(&(1..3)), [1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
    }
}
