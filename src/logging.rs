//! The process's own log lines, on stderr: human-readable text, or one JSON
//! object per line for log collectors (`serve --log-format json`).
//!
//! What is logged is chosen by `TAILCAST_LOG` (a `tracing` filter such as
//! `tailcast=debug`; default `tailcast=info`), whatever the format. This
//! module knows nothing of the events tailcast serves: stdout and SSE
//! streams are not log lines.

use std::io::IsTerminal;

/// Format of the server's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// The filter used when `TAILCAST_LOG` is unset or invalid.
const DEFAULT_FILTER: &str = "tailcast=info";

/// Installs the global subscriber that writes log lines to stderr in
/// `format`. Call once, before anything logs; a second call does nothing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAILCAST_LOG")
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // No colour codes inside JSON strings, whatever stderr is.
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    // Only fails if a subscriber is already set; the first one stays.
    drop(installed);
}
