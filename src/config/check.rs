//! The rules of `tailcast serve`'s options that their value parsers cannot
//! check (ranges, options that go together).

use super::{ConfigError, ServeConfig};

impl ServeConfig {
    /// Checks ranges that the value parsers cannot.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let invalid = |setting, message: &str| {
            Err(ConfigError::Invalid {
                setting,
                message: message.to_string(),
            })
        };
        if self.history == 0 {
            return invalid("--history", "must be at least 1");
        }
        if self.heartbeat.is_zero() {
            return invalid("--heartbeat", "must be longer than 0");
        }
        if self.send_timeout.is_zero() {
            return invalid("--send-timeout", "must be longer than 0");
        }
        if self.max_line < 4 {
            return invalid(
                "--max-line",
                "must be at least 4 bytes (one UTF-8 character)",
            );
        }
        if self.max_connections == 0 {
            return invalid("--max-connections", "must be at least 1");
        }
        if self.max_channels == 0 {
            return invalid("--max-channels", "must be at least 1");
        }
        if self.max_ingest_channels == 0 {
            return invalid("--max-ingest-channels", "must be at least 1");
        }
        if self.max_stream_channels == 0 {
            return invalid("--max-stream-channels", "must be at least 1");
        }
        if self.max_regex == 0 {
            return invalid("--max-regex", "must be at least 1 byte");
        }
        if self.history_bytes == 0 {
            return invalid("--history-bytes", "must be at least 1 byte");
        }
        if self.header_timeout.is_zero() {
            return invalid("--header-timeout", "must be longer than 0");
        }
        if self.idle_timeout.is_zero() {
            return invalid("--idle-timeout", "must be longer than 0");
        }
        if self.body_timeout.is_zero() {
            return invalid("--body-timeout", "must be longer than 0");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid(
                "--tls-cert/--tls-key",
                "give both the certificate and its key, or neither",
            );
        }
        for origin in &self.cors_origins {
            if origin.eq_ignore_ascii_case("null") {
                return invalid(
                    "--cors-origin",
                    "\"null\" is the origin of sandboxed frames and file:// pages, which any \
                     page can claim; name the real origin (https://host[:port])",
                );
            }
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                return invalid(
                    "--cors-origin",
                    &format!("{origin:?} is not a valid origin"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ServeConfig;

    #[test]
    fn out_of_range_values_are_rejected() {
        for (args, setting) in [
            (&["--history", "0"][..], "--history"),
            (&["--max-stream-channels", "0"], "--max-stream-channels"),
            (&["--max-ingest-channels", "0"], "--max-ingest-channels"),
            (&["--max-regex", "0"], "--max-regex"),
            (&["--header-timeout", "0s"], "--header-timeout"),
            (&["--body-timeout", "0s"], "--body-timeout"),
            (&["--tls-cert", "/c.pem"], "--tls-cert"),
        ] {
            let err = ServeConfig::from_args(args).unwrap_err().to_string();
            assert!(err.contains(setting), "{args:?}: {err}");
        }
    }
}
