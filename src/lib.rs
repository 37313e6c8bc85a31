//! tailcast: stream log files and events over Server-Sent Events.
pub mod follow;
pub mod hub;
pub mod sse;
pub mod config;
pub mod metrics;
pub mod streams;
pub mod http;
pub mod generate;
pub mod server;
pub mod shutdown;
pub mod client;
