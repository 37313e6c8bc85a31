//! The options of the client commands (`generate`, `listen`, `publish`,
//! `token`, `health`, `completions`) and how each becomes the settings its
//! command runs with.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{ConfigError, DEFAULT_ADDR};
use crate::units::{parse_duration, parse_size};

/// How `listen` and `publish` get a token; without any of these,
/// `TAILCAST_TOKEN` (read when the command's settings are resolved).
#[derive(Debug, Clone, Default, Args)]
pub struct ClientToken {
    /// Bearer token sent with every request [env: TAILCAST_TOKEN]
    #[arg(long, value_name = "JWT", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the bearer token, read before each connection
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Environment variable with the token of `listen` and `publish`.
pub(crate) const TOKEN_ENV: &str = "TAILCAST_TOKEN";

impl ClientToken {
    /// The token source: `--token`, `--token-file`, `command` (listen's
    /// `--token-command`), else `TAILCAST_TOKEN`, else none.
    fn resolve(
        self,
        command: Option<String>,
    ) -> Result<Option<crate::client::TokenSource>, ConfigError> {
        use crate::client::TokenSource;
        let source = match (self.token, self.token_file, command) {
            (Some(token), None, None) => TokenSource::Fixed(token),
            (None, Some(file), None) => TokenSource::File(file),
            (None, None, Some(command)) => TokenSource::Command(command),
            (None, None, None) => match std::env::var(TOKEN_ENV) {
                Ok(token) if !token.trim().is_empty() => TokenSource::Fixed(token),
                _ => return Ok(None),
            },
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "--token",
                    message: "give one of --token, --token-file and --token-command".into(),
                })
            }
        };
        if let TokenSource::Fixed(token) = &source {
            if token.trim().is_empty()
                || token
                    .trim()
                    .contains(|c: char| c.is_ascii_control() || c == ' ')
            {
                return Err(ConfigError::Invalid {
                    setting: "--token",
                    message: "the token is empty or contains spaces or control characters".into(),
                });
            }
        }
        Ok(Some(source))
    }
}

/// `token` options.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The server's HMAC secret file (--jwt-secret-file)
    #[arg(long, env = "TAILCAST_JWT_SECRET_FILE", value_name = "FILE")]
    pub secret_file: PathBuf,
    /// Channels the token may subscribe to (`*` patterns; `log:*` is every log), repeatable
    #[arg(long, value_name = "PATTERN")]
    pub subscribe: Vec<String>,
    /// Channels the token may publish to (`*` patterns), repeatable
    #[arg(long, value_name = "PATTERN")]
    pub publish: Vec<String>,
    /// The token may use POST /api/broadcast
    #[arg(long)]
    pub broadcast: bool,
    /// The token may read /metrics and file paths in /api/streams
    #[arg(long)]
    pub admin: bool,
    /// How long the token is valid
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Duration,
    /// `aud` claim (the server's --jwt-audience)
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,
    /// `iss` claim (the server's --jwt-issuer)
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// `sub` claim: who the token is for
    #[arg(long, value_name = "SUBJECT")]
    pub sub: Option<String>,
}

impl TokenArgs {
    /// Checks the patterns and builds what to sign.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a bad pattern or a zero `--ttl`.
    pub fn resolve(self) -> Result<(PathBuf, crate::auth::mint::TokenSpec), ConfigError> {
        use crate::auth::{Pattern, Patterns, Rights};
        let patterns = |list: &[String], setting| {
            list.iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map(Patterns::new)
                .map_err(|e| ConfigError::Invalid {
                    setting,
                    message: e.to_string(),
                })
        };
        if self.ttl.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "--ttl",
                message: "must be longer than 0".into(),
            });
        }
        let rights = Rights {
            subscribe: patterns(&self.subscribe, "--subscribe")?,
            publish: patterns(&self.publish, "--publish")?,
            broadcast: self.broadcast,
            admin: self.admin,
        };
        Ok((
            self.secret_file,
            crate::auth::mint::TokenSpec {
                rights,
                ttl: self.ttl,
                audience: self.audience,
                issuer: self.issuer,
                subject: self.sub,
            },
        ))
    }
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
    /// Bearer token.
    #[command(flatten)]
    pub token: ClientToken,
    /// Shell command run before each connection; its trimmed stdout is the token
    #[arg(long, value_name = "CMD", conflicts_with_all = ["token", "token_file"])]
    pub token_command: Option<String>,
    /// Print control characters from the stream as they are (by default
    /// they are shown escaped, e.g. `\x1b`)
    #[arg(long)]
    pub raw: bool,
    /// Longest line of the stream kept; a longer one is skipped with its
    /// event, with a warning
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = parse_size)]
    pub max_line: usize,
    /// Largest event data kept; a larger event is skipped, with a warning
    #[arg(long, default_value = "16MiB", value_name = "SIZE", value_parser = parse_size)]
    pub max_event: usize,
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
    /// Bearer token.
    #[command(flatten)]
    pub token: ClientToken,
}

/// `health` options.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The server's /health URL, or its base URL [default: from --addr]
    pub url: Option<String>,
    /// The server's listen address, used when no URL is given; `0.0.0.0`
    /// and `[::]` are asked on loopback
    #[arg(long, env = "TAILCAST_ADDR", value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// The server's certificate when it serves HTTPS (as `serve
    /// --tls-cert`): with no URL, ask https:// on the listen address and
    /// accept whatever certificate this local server presents
    #[arg(long, env = "TAILCAST_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
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
        use crate::cli_tools::{health_url, HealthTarget};
        let target = match &self.url {
            Some(url) => HealthTarget::Url(url),
            None if self.tls_cert.is_some() => HealthTarget::LocalHttps(&self.addr),
            None => HealthTarget::LocalHttp(&self.addr),
        };
        let url = health_url(target).map_err(|message| ConfigError::Invalid {
            setting: if self.url.is_some() { "URL" } else { "--addr" },
            message,
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
            accept_any_certificate: self.url.is_none() && self.tls_cert.is_some(),
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
        config.token = self.token.resolve(self.token_command)?;
        config.raw = self.raw;
        for (setting, value) in [
            ("--max-line", self.max_line),
            ("--max-event", self.max_event),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    setting,
                    message: "must be larger than 0".into(),
                });
            }
        }
        config.limits = crate::client::parser::Limits {
            max_line: self.max_line,
            max_event: self.max_event,
        };
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
        let mut config = PublishConfig::new(parse_url(&self.url)?, input, self.event.as_deref());
        config.token = self.token.resolve(None)?;
        Ok(config)
    }
}
