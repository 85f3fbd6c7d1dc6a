pub mod health;
pub mod models;
pub mod ws;
