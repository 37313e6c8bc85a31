//! Command-line arguments, the TOML config file, and the validated
//! [`ServeConfig`] the rest of the server uses.
//!
//! Raw values come from flags, `TAILCAST_*` environment variables (clap's
//! `env`) and the file given with `--config`; [`parse_cli`] merges
//! them once (flags over environment over file over defaults) and checks
//! them. Nothing else reads flags or the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;
use crate::units::{parse_duration, parse_size};

/// Where `serve` listens unless told otherwise, and where `health` asks.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";

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
    Serve(Box<ServeConfig>),
    /// Write a demo log file, a line at a time, like the tutorial's generator.
    Generate(GenerateArgs),
    /// Print the events of an SSE stream (any server), reconnecting by itself.
    Listen(ListenArgs),
    /// Publish an event, or every stdin line, to a tailcast channel.
    Publish(PublishArgs),
    /// Print an HS256 token signed with the server's --jwt-secret-file.
    Token(TokenArgs),
    /// Exit 0 if a tailcast server answers /health with status ok (for
    /// container health checks; no curl needed).
    Health(HealthArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: `tailcast man | man -l -`.
    Man,
}

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
pub const TOKEN_ENV: &str = "TAILCAST_TOKEN";

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

/// The settings of `tailcast serve`: each one a flag, a `TAILCAST_*`
/// environment variable and a key of the `--config` TOML file (its long
/// name, `-` or `_`). Adding an option is adding a field here (plus a rule
/// in `ServeConfig::check` when it has a range). [`parse_cli`] merges the
/// sources once: flags over environment over file over defaults.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Files to follow: [NAME=]PATH; PATH may be a glob, or - for stdin.
    /// None: demo mode, a generated log served as stream `demo`.
    #[arg(value_name = "[NAME=]PATH", value_parser = parse_file_spec)]
    pub files: Vec<FileSpec>,
    /// Listen address; port 0 picks a free port
    #[arg(
        long,
        env = "TAILCAST_ADDR",
        value_name = "HOST:PORT",
        default_value = DEFAULT_ADDR
    )]
    pub addr: String,
    /// Events kept per channel for resume
    #[arg(
        long,
        env = "TAILCAST_HISTORY",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub history: usize,
    /// Retained event data of the whole hub, in bytes; the oldest events go first
    #[arg(long, env = "TAILCAST_HISTORY_BYTES", value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub history_bytes: usize,
    /// Events older than this leave the history; channels left empty and
    /// unsubscribed are dropped (0: keep until the other limits evict)
    #[arg(long, env = "TAILCAST_HISTORY_TTL", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub history_ttl: Duration,
    /// Keep every event in a write-ahead log in this directory: ids,
    /// history and file positions survive restarts
    #[arg(long, env = "TAILCAST_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: `always` answers a publish once it is on disk
    /// (group commit); an interval such as `1s` syncs on a timer
    #[arg(long, env = "TAILCAST_FSYNC", value_name = "always|INTERVAL", default_value = "1s", value_parser = crate::wal::parse_fsync)]
    pub fsync: crate::wal::FsyncPolicy,
    /// With --data-dir: size of the log on disk; the oldest segments go first
    #[arg(long, env = "TAILCAST_RETENTION_BYTES", value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub retention_bytes: usize,
    /// Log lines sent to a new subscriber that does not resume
    #[arg(long, env = "TAILCAST_BACKLOG", value_name = "N", default_value_t = 10)]
    pub backlog: usize,
    /// Interval of `: ping` comments on idle streams
    #[arg(long, env = "TAILCAST_HEARTBEAT", value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Reconnection delay sent in the `retry:` field, in milliseconds
    #[arg(
        long = "retry",
        env = "TAILCAST_RETRY",
        value_name = "MS",
        default_value_t = 3000
    )]
    pub retry_ms: u64,
    /// Drop a subscriber that accepts no bytes for this long
    #[arg(long, env = "TAILCAST_SEND_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub send_timeout: Duration,
    /// Close a connection that has not sent a complete request head within this time
    #[arg(long, env = "TAILCAST_HEADER_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Close keep-alive connections idle between requests for this long
    #[arg(long, env = "TAILCAST_IDLE_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Answer 408 and close the connection (HTTP/2: the stream) when a
    /// request body has not fully arrived within this time
    #[arg(long, env = "TAILCAST_BODY_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Open SSE streams allowed; beyond it 503 with Retry-After
    #[arg(
        long,
        env = "TAILCAST_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 100_000
    )]
    pub max_connections: usize,
    /// Open SSE streams allowed per client IP address; beyond it 503 (0: no limit)
    #[arg(
        long,
        env = "TAILCAST_MAX_CONNECTIONS_PER_IP",
        value_name = "N",
        default_value_t = 0
    )]
    pub max_connections_per_ip: usize,
    /// Most channels one `/events` request may name
    #[arg(
        long,
        env = "TAILCAST_MAX_STREAM_CHANNELS",
        value_name = "N",
        default_value_t = 64
    )]
    pub max_stream_channels: usize,
    /// Longest regular expression a client may send (`?grep=`, `?q=`)
    #[arg(long, env = "TAILCAST_MAX_REGEX", value_name = "SIZE", default_value = "1KiB", value_parser = parse_size)]
    pub max_regex: usize,
    /// Largest publish body
    #[arg(long, env = "TAILCAST_MAX_BODY", value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// Longer log lines are split into pieces of at most this size
    #[arg(long, env = "TAILCAST_MAX_LINE", value_name = "SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub max_line: usize,
    /// Most client channels that may exist at once (log streams and broadcast do not count)
    #[arg(
        long,
        env = "TAILCAST_MAX_CHANNELS",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_channels: usize,
    /// Most channels first created by ingest from log shippers (Loki, OTLP,
    /// shipper NDJSON, syslog) that may exist at once; they do not count
    /// against --max-channels
    #[arg(
        long,
        env = "TAILCAST_MAX_INGEST_CHANNELS",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_ingest_channels: usize,
    /// Glob-matched log streams whose file has been gone this long and that
    /// have no subscribers are removed
    #[arg(long, env = "TAILCAST_FORGET_AFTER", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub forget_after: Duration,
    /// Follow glob matches that are symbolic links, to regular files only
    /// (without it they are refused; a path named explicitly may always be
    /// a link)
    #[arg(long, env = "TAILCAST_FOLLOW_SYMLINKS")]
    pub follow_symlinks: bool,
    /// Allowed CORS origin, repeatable or comma-separated; `*` allows any
    #[arg(
        long = "cors-origin",
        env = "TAILCAST_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// With access control off, a host name that requests may give in
    /// `Host` besides loopback names and this server's addresses; repeatable
    #[arg(
        long = "allowed-host",
        env = "TAILCAST_ALLOWED_HOST",
        value_name = "NAME",
        value_delimiter = ',',
        value_parser = parse_host_name
    )]
    pub allowed_hosts: Vec<String>,
    /// Name the session cookie `__Host-tailcast_token` and mark it `Secure`
    /// (for TLS terminated by a proxy; implied by --tls-cert)
    #[arg(long, env = "TAILCAST_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// HMAC secret for JWTs (HS256/384/512); turns access control on
    #[arg(long, env = "TAILCAST_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key for JWTs (RSA, EC P-256/P-384 or Ed25519); turns access control on
    #[arg(long, env = "TAILCAST_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS document with the keys for JWTs, refreshed in the background; turns access control on
    #[arg(long, env = "TAILCAST_JWKS_URL", value_name = "URL")]
    pub jwks_url: Option<String>,
    /// When set, a token's `aud` must contain it
    #[arg(long, env = "TAILCAST_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// When set, a token's `iss` must equal it
    #[arg(long, env = "TAILCAST_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Channels anyone may subscribe to without a token (`*` patterns), repeatable
    #[arg(
        long,
        env = "TAILCAST_ANONYMOUS_SUBSCRIBE",
        value_name = "PATTERN",
        value_delimiter = ','
    )]
    pub anonymous_subscribe: Vec<String>,
    /// Refuse tokens given as `?access_token=`
    #[arg(long, env = "TAILCAST_NO_QUERY_TOKEN")]
    pub no_query_token: bool,
    /// `/metrics` needs no token
    #[arg(long, env = "TAILCAST_METRICS_PUBLIC")]
    pub metrics_public: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key); re-read on change and on SIGHUP
    #[arg(long, env = "TAILCAST_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "TAILCAST_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Redis URL: share channels with other nodes
    /// (`redis://[user:pass@]host:port[/db]`); not with --data-dir
    #[arg(long, env = "TAILCAST_REDIS", value_name = "URL", value_parser = crate::hub::redis::parse_url, conflicts_with = "data_dir")]
    pub redis: Option<String>,
    /// Redis Cluster seed nodes (`redis://host:port[,redis://host:port...]`):
    /// share channels through a Redis or Valkey cluster; every key under
    /// the hash tag `{--redis-prefix}`; not with --redis or --data-dir
    #[arg(long, env = "TAILCAST_REDIS_CLUSTER", value_name = "URLS", value_parser = crate::hub::redis::parse_cluster_urls, conflicts_with_all = ["redis", "data_dir"])]
    pub redis_cluster: Option<String>,
    /// Namespace of tailcast's keys in Redis
    #[arg(long, env = "TAILCAST_REDIS_PREFIX", value_name = "PREFIX", default_value = "tailcast", value_parser = crate::hub::redis::parse_prefix)]
    pub redis_prefix: String,
    /// This node's name in a Redis cluster (default: the host name)
    #[arg(long, env = "TAILCAST_NODE", value_name = "NAME", value_parser = crate::hub::redis::parse_node)]
    pub node: Option<String>,
    /// Accept syslog (RFC 5424 and 3164; octet-counted or LF-framed) over
    /// TCP on this address; off unless given. Anyone who can reach it
    /// publishes to the channels of --syslog-channel
    #[arg(long, env = "TAILCAST_SYSLOG_TCP", value_name = "HOST:PORT")]
    pub syslog_tcp: Option<String>,
    /// Accept syslog over UDP (one datagram, one message) on this address;
    /// off unless given
    #[arg(long, env = "TAILCAST_SYSLOG_UDP", value_name = "HOST:PORT")]
    pub syslog_udp: Option<String>,
    /// Channel of syslog messages; `{host}` and `{app}` are replaced by the
    /// message's host and app name, reduced to channel characters
    #[arg(long, env = "TAILCAST_SYSLOG_CHANNEL", value_name = "TEMPLATE", default_value = crate::ingest::syslog::DEFAULT_TEMPLATE, value_parser = parse_syslog_channel)]
    pub syslog_channel: crate::ingest::syslog::ChannelTemplate,
    /// TOML file of alert rules: channel patterns, a regex and/or a
    /// minimum level, a webhook (see docs/alerts.md); re-read on SIGHUP
    #[arg(long, env = "TAILCAST_ALERTS", value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// Format of the server's own log lines on stderr
    #[arg(
        long,
        env = "TAILCAST_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
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

/// Parses a `--syslog-channel` template (see
/// [`crate::ingest::syslog::ChannelTemplate::parse`]).
///
/// # Errors
/// A template that can never give an ordinary channel name.
fn parse_syslog_channel(text: &str) -> Result<crate::ingest::syslog::ChannelTemplate, String> {
    crate::ingest::syslog::ChannelTemplate::parse(text)
}

/// A host name for `--allowed-host`: letters, digits, `-` and `.` (or an
/// IP address), without scheme or port; lowercased, a final `.` dropped.
///
/// # Errors
/// Anything else, saying what to give.
pub fn parse_host_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let bracketless = name.trim_start_matches('[').trim_end_matches(']');
    if bracketless.parse::<std::net::IpAddr>().is_ok() {
        return Ok(bracketless.to_string());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{text:?} is not a host name: give the name alone (logs.example.com), \
             without scheme, port or path"
        ));
    }
    Ok(name)
}

/// Parses a `[NAME=]PATH` argument (never fails; see [`FileSpec::parse`]).
fn parse_file_spec(text: &str) -> Result<FileSpec, String> {
    Ok(FileSpec::parse(text))
}

/// Why the command line could not be turned into a [`Cli`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad flag, `--help` or `--version`: clap prints it and exits.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The merged serve settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parses the process's command line, merging the `--config` file into
/// `serve`'s settings (flags over environment over file over defaults) and
/// checking them.
///
/// # Errors
/// See [`parse_cli_from`].
pub fn parse_cli() -> Result<Cli, CliError> {
    parse_cli_from(std::env::args_os())
}

/// [`parse_cli`] over the given arguments (the first is the program name).
///
/// How the file is merged: after a first parse, every file key names a
/// `serve` option by its long name; where that option came from neither a
/// flag nor the environment, the file's value is added to the arguments as
/// `--key=value`, and the whole line is parsed again. So the file goes
/// through the same value parsers as flags, and an option is declared once.
///
/// # Errors
/// [`CliError::Clap`] for what clap rejects; [`CliError::Config`] for an
/// unreadable or bad config file and out-of-range values.
pub fn parse_cli_from<I, T>(argv: I) -> Result<Cli, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    use clap::{CommandFactory, FromArgMatches};
    let mut argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    let mut matches = Cli::command().try_get_matches_from(&argv)?;
    if let Some(("serve", serve)) = matches.subcommand() {
        if let Some(path) = serve.get_one::<PathBuf>("config").cloned() {
            let extra = file_arguments(&path, serve)?;
            if !extra.is_empty() {
                let at = argv
                    .iter()
                    .position(|a| a == "serve")
                    .map_or(argv.len(), |i| i + 1);
                let after_dashdash = argv.iter().any(|a| a == "--");
                let (flags, files): (Vec<_>, Vec<_>) = extra.into_iter().partition(|a| a.is_flag);
                argv.splice(at..at, flags.into_iter().map(|a| a.text.into()));
                if !files.is_empty() && !after_dashdash {
                    argv.push("--".into());
                }
                argv.extend(files.into_iter().map(|a| a.text.into()));
                matches =
                    Cli::command()
                        .try_get_matches_from(&argv)
                        .map_err(|e| ConfigError::File {
                            path: path.clone(),
                            message: first_line(&e),
                        })?;
            }
        }
    }
    let cli = Cli::from_arg_matches(&matches)?;
    if let Command::Serve(config) = &cli.command {
        config.check()?;
    }
    Ok(cli)
}

/// One argument taken from the config file.
struct FileArgument {
    /// `--key=value`, `--flag`, or a `[NAME=]PATH` of `files`.
    text: String,
    /// An option rather than a file to follow.
    is_flag: bool,
}

/// clap's message without its `error: ` prefix and usage lines.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Reads the config file and returns, as arguments, the values of the
/// options that neither a flag nor the environment set.
fn file_arguments(
    path: &PathBuf,
    given: &clap::ArgMatches,
) -> Result<Vec<FileArgument>, ConfigError> {
    use clap::parser::ValueSource;
    use clap::{ArgAction, CommandFactory};

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
        .map_err(|e: toml::de::Error| bad(e.message().trim().to_string()))?;
    let cli = Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("the serve subcommand exists");
    let mut out = Vec::new();
    for (raw_key, value) in table {
        let key = raw_key.replace('_', "-");
        let values: Vec<String> = match &value {
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Integer(i) => vec![i.to_string()],
            toml::Value::Float(f) => vec![f.to_string()],
            toml::Value::Boolean(b) => vec![b.to_string()],
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Some(s.clone()),
                    toml::Value::Integer(i) => Some(i.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("`{raw_key}` must be an array of strings")))?,
            other => return Err(bad(format!("`{raw_key}` has an unsupported value {other}"))),
        };
        if key == "files" {
            if given.get_many::<FileSpec>("files").is_none() {
                out.extend(values.into_iter().map(|text| FileArgument {
                    text,
                    is_flag: false,
                }));
            }
            continue;
        }
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| bad(format!("unknown key `{raw_key}`")))?;
        if matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let many = matches!(arg.get_action(), ArgAction::Append);
        if values.len() != 1 && !many {
            return Err(bad(format!("`{raw_key}` takes one value, not an array")));
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match values[0].as_str() {
                "true" => out.push(FileArgument {
                    text: format!("--{key}"),
                    is_flag: true,
                }),
                "false" => {}
                _ => return Err(bad(format!("`{raw_key}` must be true or false"))),
            }
            continue;
        }
        for v in values {
            let text = format!("--{key}={v}");
            // Checked alone first, so that the error names the file's key.
            serve
                .clone()
                .no_binary_name(true)
                .try_get_matches_from([&text])
                .map_err(|e| bad(format!("`{raw_key}`: {}", first_line(&e))))?;
            out.push(FileArgument {
                text,
                is_flag: true,
            });
        }
    }
    Ok(out)
}

impl ServeConfig {
    /// The hub's limits (`--history`, `--history-bytes`, `--history-ttl`,
    /// `--max-channels`, `--max-ingest-channels`).
    pub fn hub_limits(&self) -> crate::hub::HubLimits {
        crate::hub::HubLimits {
            history: self.history,
            history_bytes: self.history_bytes,
            history_ttl: self.history_ttl,
            max_channels: self.max_channels,
            max_ingest_channels: self.max_ingest_channels,
        }
    }

    /// The access-control part of the serve settings.
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            jwt_secret_file: self.jwt_secret_file.clone(),
            jwt_public_key: self.jwt_public_key.clone(),
            jwks_url: self.jwks_url.clone(),
            jwt_audience: self.jwt_audience.clone(),
            jwt_issuer: self.jwt_issuer.clone(),
            anonymous_subscribe: self.anonymous_subscribe.clone(),
            no_query_token: self.no_query_token,
            metrics_public: self.metrics_public,
            cors_origins: self.cors_origins.clone(),
            jwks_refresh: None,
        }
    }

    /// The settings `tailcast serve ARGS...` would get (environment
    /// variables and `--config` included), checked.
    ///
    /// # Errors
    /// As [`parse_cli_from`].
    pub fn from_args<I, T>(args: I) -> Result<ServeConfig, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        let argv = ["tailcast".into(), "serve".into()]
            .into_iter()
            .chain(args.into_iter().map(Into::into));
        match parse_cli_from(argv)?.command {
            Command::Serve(config) => Ok(*config),
            _ => unreachable!("parsed as serve"),
        }
    }

    /// Checks ranges that the value parsers cannot.
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
    use super::*;

    /// `HubLimits::default()` (used by tests and benches) is the binary's
    /// defaults, not a second copy that can drift.
    #[test]
    fn the_hub_defaults_are_the_flags_defaults() {
        let config = ServeConfig::from_args::<_, &str>([]).unwrap();
        assert_eq!(config.hub_limits(), crate::hub::HubLimits::default());
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
            "addr = \"0.0.0.0:9\"\nheartbeat = \"2s\"\nmax_line = \"1KiB\"\nhistory = 5\nmetrics-public = true\ncors-origin = [\"http://a\", \"http://b\"]\nfiles = [\"a=/x.log\", \"/y/*.log\"]\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let c = ServeConfig::from_args(["--config", path, "--history", "7"]).unwrap();
        assert_eq!(c.addr, "0.0.0.0:9");
        assert_eq!(c.heartbeat, Duration::from_secs(2));
        assert_eq!(c.max_line, 1024);
        assert_eq!(c.history, 7);
        assert_eq!(c.backlog, 10);
        assert!(c.metrics_public);
        assert_eq!(c.cors_origins, ["http://a", "http://b"]);
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.files[0].name.as_deref(), Some("a"));
        let c = ServeConfig::from_args(["--config", path, "/z.log"]).unwrap();
        assert_eq!(c.files, [FileSpec::parse("/z.log")]);
        let c = ServeConfig::from_args(["--config", path, "--cors-origin", "http://c"]).unwrap();
        assert_eq!(c.cors_origins, ["http://c"]);
    }

    #[test]
    fn allowed_hosts_cookie_secure_and_null_origins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "allowed-host = [\"Logs.Example.\", \"10.0.0.5\"]\ncookie-secure = true\n",
        )
        .unwrap();
        let c = ServeConfig::from_args(["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(c.allowed_hosts, ["logs.example", "10.0.0.5"]);
        assert!(c.cookie_secure);
        let c = ServeConfig::from_args::<_, &str>([]).unwrap();
        assert!(c.allowed_hosts.is_empty() && !c.cookie_secure);
        for bad in [
            "http://logs.example",
            "logs.example:8000",
            "a/b",
            "-x.example",
            "",
        ] {
            assert!(parse_host_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_host_name("[::1]"), Ok("::1".into()));
        let err = ServeConfig::from_args(["--cors-origin", "null"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--cors-origin") && err.contains("null"),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_the_contract() {
        let c = ServeConfig::from_args::<_, &str>([]).unwrap();
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.max_stream_channels, 64);
        assert_eq!((c.max_channels, c.max_ingest_channels), (10_000, 10_000));
        assert_eq!(c.max_regex, 1024);
        assert_eq!(c.history_bytes, 64 << 20);
        assert_eq!(c.history_ttl, Duration::from_secs(3600));
        assert_eq!(c.forget_after, Duration::from_secs(3600));
        assert_eq!(c.max_connections_per_ip, 0);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.data_dir, None);
        assert_eq!(
            c.fsync,
            crate::wal::FsyncPolicy::Every(Duration::from_secs(1))
        );
        assert_eq!(c.retention_bytes, 1 << 30);
        let c = ServeConfig::from_args(["--history-ttl", "0"]).unwrap();
        assert!(c.history_ttl.is_zero());
        let c = ServeConfig::from_args(["--data-dir", "/d", "--fsync", "always"]).unwrap();
        assert_eq!(c.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(c.fsync, crate::wal::FsyncPolicy::Always);
        let err = ServeConfig::from_args(["--data-dir", "/d", "--redis", "redis://127.0.0.1"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--redis") && err.contains("--data-dir"),
            "{err}"
        );
        let err = ServeConfig::from_args(["--fsync", "never"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("always"), "{err}");
    }

    #[test]
    fn bad_config_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, expected) in [
            ("nope = 1", "unknown key `nope`"),
            ("config = \"x\"", "unknown key `config`"),
            ("heartbeat = \"soon\"", "`heartbeat`"),
            ("history = \"many\"", "`history`"),
            (
                "metrics_public = \"yes\"",
                "`metrics_public` must be true or false",
            ),
            ("addr = [\"a\", \"b\"]", "takes one value"),
            ("addr = [", "config file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = ServeConfig::from_args(["--config", path.to_str().unwrap()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let missing = dir.path().join("none.toml");
        assert!(
            ServeConfig::from_args(["--config", missing.to_str().unwrap()])
                .unwrap_err()
                .to_string()
                .starts_with("cannot read config file")
        );
    }

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
