//! The operator's subcommands that do not serve: `tailcast completions`
//! (shell completion scripts, `clap_complete`), `tailcast man` (the man
//! page as roff, `clap_mangen`) and `tailcast health` (a probe of a
//! server's `/health`, for container health checks where no curl exists).
//!
//! Completions and the man page are built from the same clap definition as
//! the parser (the caller passes `Cli::command()`), so they never drift from the real flags. The
//! probe is a plain HTTP client: it knows nothing of the server's
//! internals, only the `/health` answer of the contract.

use std::time::Duration;

/// The completion script for `shell`, for a binary named `tailcast`.
///
/// Built in memory, because `clap_complete` panics on a failed write (a
/// closed pipe); the caller writes the bytes and decides what a closed
/// pipe means.
pub fn completions(mut cli: clap::Command, shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, "tailcast", &mut script);
    script
}

/// Environment variables that are not options of their own, for the man
/// page's ENVIRONMENT section (roff).
const MAN_ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBTAILCAST_LOG\fR
Which of tailcast's own log lines are written to stderr, as a tracing filter (default \fBtailcast=info\fR; e.g. \fBtailcast=debug\fR).
.TP
\fBTAILCAST_*\fR
Every option shown above with [env: ...] may be set by that variable instead. For \fBserve\fR, flags override the environment, which overrides the \fB\-\-config\fR file.
.SH EXIT STATUS
0 on success (and when a client command is stopped by SIGINT or SIGTERM); 1 with one line starting with \fBerror:\fR on stderr otherwise.
"#;

/// The man page of `tailcast` as roff: the top-level page, then one
/// section per subcommand with its synopsis, description and options (so
/// one page documents every flag), then the environment and exit status.
pub fn man_page(cli: clap::Command) -> Vec<u8> {
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut page = Vec::new();
    let top = clap_mangen::Man::new(cli.clone());
    // Writes into a Vec<u8> cannot fail.
    let rendered: std::io::Result<()> = (|| {
        top.render_title(&mut page)?;
        top.render_name_section(&mut page)?;
        top.render_synopsis_section(&mut page)?;
        top.render_description_section(&mut page)?;
        top.render_options_section(&mut page)?;
        commands_section(&cli).to_writer(&mut page)?;
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
            page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
            let man = clap_mangen::Man::new(sub.clone());
            let mut section = Vec::new();
            man.render_synopsis_section(&mut section)?;
            man.render_description_section(&mut section)?;
            if sub.get_arguments().any(|a| !a.is_hide_set()) {
                man.render_options_section(&mut section)?;
            }
            page.extend_from_slice(&demote_sections(&section));
        }
        page.extend_from_slice(MAN_ENVIRONMENT.as_bytes());
        top.render_version_section(&mut page)
    })();
    rendered.expect("writing to memory cannot fail");
    page
}

/// The COMMANDS section: each subcommand with its one-line summary (the
/// top-level page has no other list of them).
fn commands_section(cli: &clap::Command) -> roff::Roff {
    let mut roff = roff::Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        roff.control("TP", []);
        roff.text([roff::bold(sub.get_name())]);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.text([roff::roman(about)]);
    }
    roff
}

/// Turns the `.SH` headings of a subcommand's sections into `.SS`
/// subheadings, so they nest under that subcommand's own `.SH`.
fn demote_sections(roff: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(roff.len());
    for line in roff.split_inclusive(|&b| b == b'\n') {
        match line.strip_prefix(b".SH ") {
            Some(rest) => {
                out.extend_from_slice(b".SS ");
                out.extend_from_slice(rest);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// A resolved `tailcast health` probe.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// The `/health` URL to ask.
    pub url: reqwest::Url,
    /// The whole probe (connect, answer, body) must finish within this.
    pub timeout: Duration,
    /// Skip certificate checks: only for the HTTPS URL derived from this
    /// machine's own listen address, whose certificate names the public
    /// host, not loopback. A URL given by the user is always verified.
    pub accept_any_certificate: bool,
}

/// What a probe asks, before it is a URL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HealthTarget<'a> {
    /// A URL given by the user: the `/health` URL or a base URL.
    Url(&'a str),
    /// The local server at this listen address (`HOST:PORT`), over HTTP.
    LocalHttp(&'a str),
    /// The local server at this listen address, over HTTPS (`--tls-cert`).
    LocalHttps(&'a str),
}

/// The largest `/health` answer read; a real one is about 100 bytes.
const HEALTH_BODY_MAX: usize = 64 * 1024;

/// Why a server is not healthy, or could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// No answer: connection refused, timeout, TLS failure...
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: reqwest::Url,
        /// The error and its causes.
        reason: String,
    },
    /// An answer other than `200` with `"status": "ok"`.
    #[error("{url} answered {status}: {detail}")]
    Unhealthy {
        /// The URL asked.
        url: reqwest::Url,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The reported `status`, or what was wrong with the body.
        detail: String,
    },
}

/// Builds the `/health` URL a probe asks: a user's URL as given (a base
/// URL such as `http://127.0.0.1:8000` gets `/health` appended), or the
/// local server's listen address (`HOST:PORT`), where an unspecified host
/// (`0.0.0.0`, `[::]`, empty) is asked on loopback.
///
/// # Errors
/// A message naming what is wrong with the URL or address.
pub(crate) fn health_url(target: HealthTarget<'_>) -> Result<reqwest::Url, String> {
    let text = match target {
        HealthTarget::Url(url) => url.to_string(),
        HealthTarget::LocalHttp(addr) | HealthTarget::LocalHttps(addr) => {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
            let host = match host {
                "" | "0.0.0.0" => "127.0.0.1",
                "[::]" => "[::1]",
                other => other,
            };
            let scheme = match target {
                HealthTarget::LocalHttps(_) => "https",
                _ => "http",
            };
            format!("{scheme}://{host}:{port}/health")
        }
    };
    let mut parsed = reqwest::Url::parse(&text)
        .map_err(|e| format!("{text:?}: {e} (expected e.g. http://127.0.0.1:8000/health)"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{text:?}: only http and https URLs are supported"));
    }
    if parsed.path() == "/" {
        parsed.set_path("/health");
    }
    Ok(parsed)
}

/// Asks the server's `/health` once. Healthy means `200` with a JSON
/// object whose `status` is `"ok"`; the answer's body is returned (compact
/// JSON). Proxies from the environment are not used and redirects are not
/// followed: the probe checks this server, not another.
///
/// # Errors
/// [`HealthError`] saying why the server is not healthy.
pub async fn check_health(check: &HealthCheck) -> Result<String, HealthError> {
    let url = &check.url;
    let unreachable = |e: reqwest::Error| HealthError::Unreachable {
        url: url.clone(),
        reason: crate::errors::chain(&e.without_url()),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(check.accept_any_certificate)
        .timeout(check.timeout)
        .user_agent(concat!("tailcast-health/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(unreachable)?;
    let mut response = client.get(url.clone()).send().await.map_err(unreachable)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        body.extend_from_slice(&chunk);
        if body.len() > HEALTH_BODY_MAX {
            return Err(HealthError::Unhealthy {
                url: url.clone(),
                status,
                detail: format!("answer larger than {HEALTH_BODY_MAX} bytes"),
            });
        }
    }
    let unhealthy = |detail: String| HealthError::Unhealthy {
        url: url.clone(),
        status,
        detail,
    };
    let report: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        unhealthy(format!(
            "not a JSON health report ({e}): {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    let reported = report.get("status").and_then(|s| s.as_str());
    match reported {
        Some("ok") if status == reqwest::StatusCode::OK => Ok(report.to_string()),
        Some(other) => Err(unhealthy(format!("status {other:?}"))),
        None => Err(unhealthy(format!("no \"status\" in {report}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_url_from_an_unspecified_listen_address_asks_loopback() {
        let url = |addr| {
            health_url(HealthTarget::LocalHttp(addr))
                .unwrap()
                .to_string()
        };
        assert_eq!(url("0.0.0.0:8000"), "http://127.0.0.1:8000/health");
        assert_eq!(url(":9000"), "http://127.0.0.1:9000/health");
        assert_eq!(url("[::]:8000"), "http://[::1]:8000/health");
        assert_eq!(url("127.0.0.1:8000"), "http://127.0.0.1:8000/health");
        assert_eq!(url("localhost:81"), "http://localhost:81/health");
        assert!(health_url(HealthTarget::LocalHttp("no-port")).is_err());
        let https = health_url(HealthTarget::LocalHttps("0.0.0.0:8443")).unwrap();
        assert_eq!(https.as_str(), "https://127.0.0.1:8443/health");
    }

    #[test]
    fn health_url_given_as_a_base_gets_the_health_path() {
        let url = |u| health_url(HealthTarget::Url(u)).unwrap().to_string();
        assert_eq!(url("http://10.0.0.1:8000"), "http://10.0.0.1:8000/health");
        assert_eq!(url("https://h.example/"), "https://h.example/health");
        assert_eq!(
            url("http://h.example/prefix/health"),
            "http://h.example/prefix/health"
        );
        let err = health_url(HealthTarget::Url("ftp://h.example/")).unwrap_err();
        assert!(err.contains("only http and https"), "{err}");
        assert!(health_url(HealthTarget::Url("not a url")).is_err());
    }

    #[test]
    fn subcommand_headings_nest_under_their_command() {
        let demoted = demote_sections(b".SH SYNOPSIS\ntext .SH stays\n.SH OPTIONS\n");
        assert_eq!(demoted, b".SS SYNOPSIS\ntext .SH stays\n.SS OPTIONS\n");
    }
}
