pub mod health;
pub mod models;
pub mod streams;
pub mod ws;
