pub mod health;
pub mod models;
pub mod speech;
pub mod streams;
pub mod tag_stream;
pub mod tags;
pub mod tts_stream;
pub mod ws;
