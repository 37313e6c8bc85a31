//! Command-line arguments, the TOML config file, and the validated
//! [`ServeConfig`] the rest of the server uses.
//!
//! Raw values come from flags, `TAILCAST_*` environment variables (clap's
//! `env`) and the file given with `--config`; [`ServeArgs::resolve`] merges
//! them once (flags over environment over file over defaults) and checks
//! them. Nothing else reads flags or the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// `tailcast`: stream log files and events to browsers over Server-Sent Events.
#[derive(Debug, Parser)]
#[command(name = "tailcast", version, about, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve log files and channels over SSE (no PATH: run the demo).
    Serve(ServeArgs),
    /// Write a demo log file, a line at a time, like the tutorial's generator.
    Generate(GenerateArgs),
    /// Print the events of an SSE stream (any server), reconnecting by itself.
    Listen(ListenArgs),
    /// Publish an event, or every stdin line, to a tailcast channel.
    Publish(PublishArgs),
    /// Exit 0 if a tailcast server answers /health with status ok (for
    /// container health checks; no curl needed).
    Health(HealthArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: `tailcast man | man -l -`.
    Man,
}

/// Raw `serve` options, each optional so that unset ones fall back to the
/// config file and then to the defaults.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Files to follow: [NAME=]PATH; PATH may be a glob, or - for stdin.
    /// None: demo mode, a generated log served as stream `demo`.
    #[arg(value_name = "[NAME=]PATH")]
    pub files: Vec<String>,
    /// Listen address; port 0 picks a free port [default: 127.0.0.1:8000]
    #[arg(long, env = "TAILCAST_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Events kept per channel for resume [default: 10000]
    #[arg(long, env = "TAILCAST_HISTORY", value_name = "N")]
    pub history: Option<usize>,
    /// Log lines sent to a new subscriber that does not resume [default: 10]
    #[arg(long, env = "TAILCAST_BACKLOG", value_name = "N")]
    pub backlog: Option<usize>,
    /// Interval of `: ping` comments on idle streams [default: 15s]
    #[arg(long, env = "TAILCAST_HEARTBEAT", value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat: Option<Duration>,
    /// Reconnection delay sent in the `retry:` field, in ms [default: 3000]
    #[arg(long, env = "TAILCAST_RETRY", value_name = "MS")]
    pub retry: Option<u64>,
    /// Drop a subscriber that accepts no bytes for this long [default: 30s]
    #[arg(long, env = "TAILCAST_SEND_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub send_timeout: Option<Duration>,
    /// Open SSE streams allowed; beyond it 503 [default: 100000]
    #[arg(long, env = "TAILCAST_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest publish body [default: 1MiB]
    #[arg(long, env = "TAILCAST_MAX_BODY", value_name = "SIZE", value_parser = parse_size)]
    pub max_body: Option<usize>,
    /// Longer log lines are split into pieces of at most this size [default: 64KiB]
    #[arg(long, env = "TAILCAST_MAX_LINE", value_name = "SIZE", value_parser = parse_size)]
    pub max_line: Option<usize>,
    /// Most channels that may exist at once [default: 10000]
    #[arg(long, env = "TAILCAST_MAX_CHANNELS", value_name = "N")]
    pub max_channels: Option<usize>,
    /// Allowed CORS origin, repeatable; `*` allows any [default: none]
    #[arg(
        long = "cors-origin",
        env = "TAILCAST_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,
    /// TOML file with any of these options (keys are the long option names)
    /// and `files = [...]`
    #[arg(long, env = "TAILCAST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `generate` options.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The log file to append to (created if missing).
    pub path: PathBuf,
    /// Pause between lines.
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this many lines (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
}

/// `listen` options.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The stream, e.g. http://127.0.0.1:8000/realtime/news
    pub url: String,
    /// Resume after this event id (sent as `Last-Event-ID`).
    #[arg(long, value_name = "ID")]
    pub last_event_id: Option<String>,
    /// Print one JSON object per line: {"id", "type", "data"}.
    #[arg(long)]
    pub json: bool,
    /// Print only events whose data matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// Extra request header, repeatable: --header 'Authorization: Bearer x'.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Reconnection delay until the server sends `retry:`.
    #[arg(long, default_value = "3s", value_name = "DURATION", value_parser = parse_duration)]
    pub retry: Duration,
    /// Longest wait between attempts while the server is down.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Reconnect when the stream sends nothing, not even a heartbeat, for
    /// this long [default: never].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
}

/// `publish` options.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The channel, e.g. http://127.0.0.1:8000/channels/news
    pub url: String,
    /// The event's data, or - to publish every line of stdin as one event.
    #[arg(value_name = "DATA | -")]
    pub data: String,
    /// Event type (default: message).
    #[arg(long, value_name = "TYPE")]
    pub event: Option<String>,
}

/// `health` options.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The server's /health URL, or its base URL [default: from --addr]
    pub url: Option<String>,
    /// The server's listen address, used when no URL is given; 0.0.0.0 and
    /// [::] are asked on loopback [default: 127.0.0.1:8000]
    #[arg(long, env = "TAILCAST_ADDR", value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Fail if the whole check takes longer than this.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl HealthArgs {
    /// Builds the [`HealthCheck`](crate::cli_tools::HealthCheck): the URL
    /// given, or the one derived from the listen address.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a bad URL or address.
    pub fn resolve(self) -> Result<crate::cli_tools::HealthCheck, ConfigError> {
        let addr = self.addr.unwrap_or_else(|| ServeConfig::default().addr);
        let url = crate::cli_tools::health_url(self.url.as_deref(), &addr).map_err(|message| {
            ConfigError::Invalid {
                setting: if self.url.is_some() { "URL" } else { "--addr" },
                message,
            }
        })?;
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "--timeout",
                message: "must be longer than 0".into(),
            });
        }
        Ok(crate::cli_tools::HealthCheck {
            url,
            timeout: self.timeout,
        })
    }
}

/// `completions` options.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `tailcast completions bash > /etc/bash_completion.d/tailcast`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parses an http or https URL for the client commands.
fn parse_url(text: &str) -> Result<reqwest::Url, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        setting: "URL",
        message,
    };
    let url = reqwest::Url::parse(text).map_err(|e| {
        invalid(format!(
            "{text:?}: {e} (expected e.g. http://127.0.0.1:8000/realtime/news)"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "{text:?}: only http and https URLs are supported"
        )));
    }
    Ok(url)
}

impl ListenArgs {
    /// Checks the URL, regex and headers and builds the
    /// [`ListenConfig`](crate::client::ListenConfig).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the bad option.
    pub fn resolve(self) -> Result<crate::client::ListenConfig, ConfigError> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut config = crate::client::ListenConfig::new(parse_url(&self.url)?);
        for header in &self.headers {
            let invalid = |why: &str| ConfigError::Invalid {
                setting: "--header",
                message: format!("{header:?}: {why} (expected 'Name: value')"),
            };
            let (name, value) = header.split_once(':').ok_or_else(|| invalid("no colon"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| invalid("bad header name"))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|_| invalid("bad header value"))?;
            config.headers.append(name, value);
        }
        if let Some(pattern) = &self.grep {
            let regex = regex::Regex::new(pattern).map_err(|e| ConfigError::Invalid {
                setting: "--grep",
                message: e.to_string(),
            })?;
            config.grep = Some(regex);
        }
        if let Some(id) = &self.last_event_id {
            if reqwest::header::HeaderValue::from_str(id).is_err() {
                return Err(ConfigError::Invalid {
                    setting: "--last-event-id",
                    message: format!("{id:?} cannot be sent as a header"),
                });
            }
        }
        config.last_event_id = self.last_event_id;
        config.json = self.json;
        config.retry = self.retry;
        config.max_backoff = self.max_backoff;
        config.idle_timeout = self.idle_timeout.filter(|d| !d.is_zero());
        Ok(config)
    }
}

impl PublishArgs {
    /// Checks the URL and builds the
    /// [`PublishConfig`](crate::client::PublishConfig).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a bad URL.
    pub fn resolve(self) -> Result<crate::client::PublishConfig, ConfigError> {
        use crate::client::{PublishConfig, PublishInput};
        let input = match self.data.as_str() {
            "-" => PublishInput::Stdin,
            _ => PublishInput::Data(self.data),
        };
        Ok(PublishConfig::new(
            parse_url(&self.url)?,
            input,
            self.event.as_deref(),
        ))
    }
}

/// A file to follow, as given on the command line or in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Explicit stream name (`NAME=PATH`), if any.
    pub name: Option<String>,
    /// A path, a glob, or `-` for stdin.
    pub path: String,
}

impl FileSpec {
    /// Parses `[NAME=]PATH`. The part before the first `=` is a name only
    /// if it contains no `/`, so paths with `=` in them still work.
    pub fn parse(spec: &str) -> FileSpec {
        match spec.split_once('=') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') && !path.is_empty() => {
                FileSpec {
                    name: Some(name.to_string()),
                    path: path.to_string(),
                }
            }
            _ => FileSpec {
                name: None,
                path: spec.to_string(),
            },
        }
    }
}

/// The validated settings of `tailcast serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Listen address, `HOST:PORT`.
    pub addr: String,
    /// Events kept per channel.
    pub history: usize,
    /// Default backlog of log streams, in lines.
    pub backlog: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// `retry:` value in milliseconds.
    pub retry_ms: u64,
    /// Stalled subscribers are dropped after this long.
    pub send_timeout: Duration,
    /// Open SSE streams allowed.
    pub max_connections: usize,
    /// Largest publish body in bytes.
    pub max_body: usize,
    /// Longest log line piece in bytes.
    pub max_line: usize,
    /// Most channels at once.
    pub max_channels: usize,
    /// Allowed CORS origins (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Files to follow; empty: demo mode.
    pub files: Vec<FileSpec>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: "127.0.0.1:8000".into(),
            history: 10_000,
            backlog: 10,
            heartbeat: Duration::from_secs(15),
            retry_ms: 3000,
            send_timeout: Duration::from_secs(30),
            max_connections: 100_000,
            max_body: 1024 * 1024,
            max_line: 64 * 1024,
            max_channels: 10_000,
            cors_origins: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// A configuration that cannot be used; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has a bad value.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value outside its range.
    #[error("invalid {setting}: {message}")]
    Invalid {
        /// The option name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Parses `300ms`, `15s`, `2m`, `1h` (and bare numbers, as seconds).
///
/// # Errors
/// A message saying what format is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration such as 300ms, 15s or 2m)"))
}

/// Parses `64KiB`, `1MiB`, `500kB`, or a number of bytes.
///
/// # Errors
/// A message saying what format is expected.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let bytes = match text.parse::<u64>() {
        Ok(n) => n,
        Err(_) => text
            .parse::<bytesize::ByteSize>()
            .map_err(|e| format!("{e} (expected a size such as 64KiB or 1MiB)"))?
            .as_u64(),
    };
    usize::try_from(bytes).map_err(|_| "size too large".to_string())
}

/// Values read from the TOML config file.
#[derive(Debug, Default)]
struct FileValues {
    args: ServeArgs,
    files: Vec<String>,
}

fn read_file(path: &PathBuf) -> Result<FileValues, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let bad = |message: String| ConfigError::File {
        path: path.clone(),
        message,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
    let mut values = FileValues::default();
    for (key, value) in table {
        let key = key.replace('_', "-");
        let text = match &value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Array(items) if key == "files" || key == "cors-origin" => {
                let list = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(format!("`{key}` must be an array of strings")))?;
                if key == "files" {
                    values.files = list;
                } else {
                    values.args.cors_origin = list;
                }
                continue;
            }
            other => return Err(bad(format!("`{key}` has an unsupported value {other}"))),
        };
        let a = &mut values.args;
        let wrong = |e: String| bad(format!("`{key}`: {e}"));
        let number = |t: &str| t.parse::<usize>().map_err(|e| wrong(e.to_string()));
        match key.as_str() {
            "addr" => a.addr = Some(text),
            "history" => a.history = Some(number(&text)?),
            "backlog" => a.backlog = Some(number(&text)?),
            "heartbeat" => a.heartbeat = Some(parse_duration(&text).map_err(wrong)?),
            "retry" => a.retry = Some(number(&text)? as u64),
            "send-timeout" => a.send_timeout = Some(parse_duration(&text).map_err(wrong)?),
            "max-connections" => a.max_connections = Some(number(&text)?),
            "max-body" => a.max_body = Some(parse_size(&text).map_err(wrong)?),
            "max-line" => a.max_line = Some(parse_size(&text).map_err(wrong)?),
            "max-channels" => a.max_channels = Some(number(&text)?),
            "cors-origin" => a.cors_origin = vec![text],
            "files" => values.files = vec![text],
            _ => return Err(bad(format!("unknown key `{key}`"))),
        }
    }
    Ok(values)
}

impl ServeArgs {
    /// Merges flags and environment (already in `self`), the config file
    /// and the defaults into a checked [`ServeConfig`].
    ///
    /// # Errors
    /// An unreadable or invalid config file, or a value out of range.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileValues::default(),
        };
        let f = file.args;
        let d = ServeConfig::default();
        let files = if self.files.is_empty() {
            file.files
        } else {
            self.files
        };
        let config = ServeConfig {
            addr: self.addr.or(f.addr).unwrap_or(d.addr),
            history: self.history.or(f.history).unwrap_or(d.history),
            backlog: self.backlog.or(f.backlog).unwrap_or(d.backlog),
            heartbeat: self.heartbeat.or(f.heartbeat).unwrap_or(d.heartbeat),
            retry_ms: self.retry.or(f.retry).unwrap_or(d.retry_ms),
            send_timeout: self
                .send_timeout
                .or(f.send_timeout)
                .unwrap_or(d.send_timeout),
            max_connections: self
                .max_connections
                .or(f.max_connections)
                .unwrap_or(d.max_connections),
            max_body: self.max_body.or(f.max_body).unwrap_or(d.max_body),
            max_line: self.max_line.or(f.max_line).unwrap_or(d.max_line),
            max_channels: self
                .max_channels
                .or(f.max_channels)
                .unwrap_or(d.max_channels),
            cors_origins: if self.cors_origin.is_empty() {
                f.cors_origin
            } else {
                self.cors_origin
            },
            files: files.iter().map(|s| FileSpec::parse(s)).collect(),
        };
        config.check()?;
        Ok(config)
    }
}

impl ServeConfig {
    fn check(&self) -> Result<(), ConfigError> {
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
        for origin in &self.cors_origins {
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
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn file_specs() {
        assert_eq!(
            FileSpec::parse("app=/var/log/app.log"),
            FileSpec {
                name: Some("app".into()),
                path: "/var/log/app.log".into()
            }
        );
        assert_eq!(FileSpec::parse("/tmp/a=b.log").name, None);
        assert_eq!(FileSpec::parse("-").path, "-");
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "addr = \"0.0.0.0:9\"\nheartbeat = \"2s\"\nmax_line = \"1KiB\"\nhistory = 5\nfiles = [\"a=/x.log\", \"/y/*.log\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            history: Some(7),
            ..ServeArgs::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.addr, "0.0.0.0:9");
        assert_eq!(c.heartbeat, Duration::from_secs(2));
        assert_eq!(c.max_line, 1024);
        assert_eq!(c.history, 7);
        assert_eq!(c.backlog, 10);
        assert_eq!(c.files.len(), 2);
    }

    #[test]
    fn bad_config_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, expected) in [
            ("nope = 1", "unknown key `nope`"),
            ("heartbeat = \"soon\"", "`heartbeat`"),
            ("addr = [", "config file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let args = ServeArgs {
                config: Some(path.clone()),
                ..ServeArgs::default()
            };
            let err = args.resolve().unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let missing = ServeArgs {
            config: Some(dir.path().join("none.toml")),
            ..ServeArgs::default()
        };
        assert!(missing
            .resolve()
            .unwrap_err()
            .to_string()
            .starts_with("cannot read config file"));
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let args = ServeArgs {
            history: Some(0),
            ..ServeArgs::default()
        };
        assert!(args
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("--history"));
    }
}
