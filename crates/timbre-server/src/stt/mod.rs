//! Speech-to-text serving: the OpenAI-shaped HTTP requests ([`request`], [`sse`]) and the two
//! live protocols ([`live`], [`realtime`]) over shared turn detection ([`turns`]) and
//! utterance bookkeeping ([`dictation`]), driven on a socket by [`driver`]. Everything but the
//! driver is pure and unit-tested; the routes in `routes::transcriptions` and `routes::stt_stream`
//! only connect these to the engines.

pub mod dictation;
pub mod driver;
pub mod live;
pub mod realtime;
pub mod request;
pub mod sse;
pub mod turns;

/// Registry capability of Whisper models.
pub const CAPABILITY: &str = "stt";
/// Registry capability of the Silero VAD the live protocols detect turns with.
pub const VAD_CAPABILITY: &str = "vad";
