//! `tailcast serve`'s options ([`ServeConfig`]) and their value parsers.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_cli_from, CliError, Command, DEFAULT_ADDR};
use crate::logging::LogFormat;
use crate::units::{parse_duration, parse_size};

/// The settings of `tailcast serve`: each one a flag, a `TAILCAST_*`
/// environment variable and a key of the `--config` TOML file (its long
/// name, `-` or `_`). Adding an option is adding a field here (plus a rule
/// in `ServeConfig::check` when it has a range). [`parse_cli`](super::parse_cli) merges the
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

impl ServeConfig {
    /// The settings `tailcast serve ARGS...` would get (environment
    /// variables and `--config` included), checked.
    ///
    /// # Errors
    /// As `parse_cli_from`.
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
pub(crate) fn parse_host_name(text: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
