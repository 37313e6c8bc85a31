//! tailcast: stream log files and events over Server-Sent Events.
pub mod follow;
