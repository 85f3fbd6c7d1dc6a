//! The Whisper service the registry hands to capabilities: shared weights, N decoding workers
//! behind a bounded queue, segments streamed out as they are decoded.
//!
//! SKELETON: the signatures below are the contract with the serving side; the engine fills in
//! the body. Until then every call fails loudly (never invented text).

use tokio::sync::mpsc;

use crate::actor::{EngineError, Timed};
use crate::whisper::api::{ModelInfo, Segment, TranscribeError, TranscribeOptions, Transcript};

pub struct Transcriber {
    name: String,
    info: ModelInfo,
}

impl Transcriber {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Queue depth right now (for `x-queue-time` decisions and metrics).
    pub fn queue_depth(&self) -> usize {
        0
    }

    /// Transcribes mono 16 kHz samples. Each finished segment is also sent on `segments` (when
    /// given) as soon as it is decoded, so SSE and WebSocket clients see text before the end.
    /// Option errors come back before anything is queued.
    pub async fn transcribe(
        &self,
        audio: Vec<f32>,
        opts: TranscribeOptions,
        segments: Option<mpsc::Sender<Segment>>,
    ) -> Result<Timed<Transcript>, TranscribeError> {
        let _ = (audio, opts, segments);
        Err(TranscribeError::Engine(EngineError::Inference {
            engine: self.name.clone(),
            message: "the Whisper decoder is not built yet".into(),
        }))
    }
}
