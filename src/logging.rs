//! The process's own log lines, on stderr: human-readable text, or one JSON
//! object per line for log collectors (`serve --log-format json`).
//!
//! What is logged is chosen by `TAILCAST_LOG` (a `tracing` filter such as
//! `tailcast=debug`; default `tailcast=info`), whatever the format. This
//! module knows nothing of the events tailcast serves: stdout and SSE
//! streams are not log lines.

use std::io::IsTerminal;

/// How the log lines on stderr are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, as `tracing-subscriber`'s JSON format
    /// writes it: `timestamp`, `level`, `fields` (with `message`), `target`.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    /// Parses `text` or `json` (any case), as the config file writes them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        <LogFormat as clap::ValueEnum>::from_str(text, true)
            .map_err(|_| format!("{text:?} is not a log format (expected text or json)"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_in_any_case_and_bad_ones_say_what_is_expected() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("JSON".parse(), Ok(LogFormat::Json));
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(err.contains("expected text or json"), "{err}");
    }
}
