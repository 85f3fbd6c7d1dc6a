pub mod health;
pub mod models;
pub mod streams;
pub mod stt_stream;
pub mod tag_stream;
pub mod tags;
pub mod transcriptions;
pub mod ws;
