//! tailcast: stream log files and events over Server-Sent Events.
pub mod auth;
pub mod cli_tools;
pub mod client;
pub mod config;
pub mod follow;
pub mod generate;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod streams;
pub mod syslog;
pub mod wal;
