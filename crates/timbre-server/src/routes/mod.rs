pub mod health;
pub mod jobs;
pub mod models;
pub mod songs;
pub mod streams;
pub mod tag_stream;
pub mod tags;
pub mod ws;
