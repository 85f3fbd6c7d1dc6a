pub mod health;
pub mod models;
pub mod tag_stream;
pub mod tags;
pub mod ws;
