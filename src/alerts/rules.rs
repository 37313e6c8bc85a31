//! The rule file of `--alerts`: TOML parsed into checked [`Rule`]s.
//!
//! ```toml
//! [[rule]]
//! name = "errors on web"
//! channels = ["log:nginx*", "web-*"]
//! match = "(?i)error|panic"
//! min_level = "error"
//! webhook = "https://hooks.example/T000/B000"
//! format = "slack"
//! window = "1m"
//! ```
//!
//! Everything is checked here, once: unknown keys, duplicate names, bad
//! patterns, regexes and URLs are refused with one line naming the rule
//! and what is wrong. Nothing downstream looks at the text again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::level::Level;

/// Most rules a file may hold.
pub(crate) const MAX_RULES: usize = 1000;

/// Longest `match` regex, in bytes of its text.
pub(crate) const MAX_REGEX_TEXT: usize = 4096;

/// Most memory one compiled regex may take (the `regex` crate's size
/// limit): a hostile pattern is refused at load, never slow at match.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Longest rule file read, in bytes.
const MAX_FILE: u64 = 1 << 20;

/// Longest a webhook request may be given (`timeout`).
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// What a rule file is, as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    channels: Vec<String>,
    #[serde(rename = "match")]
    pattern: Option<String>,
    min_level: Option<String>,
    webhook: String,
    format: Option<String>,
    window: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Slack's incoming-webhook JSON (`text` and `blocks`).
    Slack,
    /// tailcast's own JSON object (see `docs/alerts.md`).
    Json,
}

/// Where and how a rule's notifications go.
#[derive(Clone)]
pub struct Target {
    /// The webhook URL (http or https). Secret: never logged or shown; see
    /// [`Target::redacted`].
    pub url: reqwest::Url,
    /// Extra request headers (e.g. `Authorization`). Secret values.
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Target {
    /// The URL without its secret parts: scheme, host and port, then `/…`
    /// if it had a path or query.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.redacted())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `scheme://host[:port]/…`: what may be logged of a webhook URL.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = if url.path() != "/" || url.query().is_some() {
        "/…"
    } else {
        "/"
    };
    format!("{}://{host}{port}{rest}", url.scheme())
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name in the file.
    pub name: String,
    /// Channel patterns as written.
    pub channels: Vec<String>,
    /// The same, compiled.
    patterns: Vec<glob::Pattern>,
    /// `match`, compiled; run on the event's line (see [`super::level`]).
    pub regex: Option<Regex>,
    /// Events below this level (or without one) do not match.
    pub min_level: Option<Level>,
    /// Where notifications go.
    pub target: Arc<Target>,
    /// Body format.
    pub format: Format,
    /// At most one notification per window; zero: one per match.
    pub window: Duration,
}

impl Rule {
    /// Whether `channel` is one of the rule's.
    pub fn watches(&self, channel: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(channel))
    }

    /// Whether an event with this `line` and `level` matches (channel
    /// aside). A rule with neither `match` nor `min_level` matches every
    /// event of its channels.
    pub fn matches(&self, line: &str, level: Option<Level>) -> bool {
        if let Some(min) = self.min_level {
            if level.is_none_or(|l| l < min) {
                return false;
            }
        }
        self.regex.as_ref().is_none_or(|r| r.is_match(line))
    }
}

/// Why a rule file was refused: one line.
#[derive(Debug, thiserror::Error)]
#[error("alerts file {path}: {what}")]
pub struct RulesError {
    /// The file.
    pub path: String,
    /// What is wrong, and where.
    pub what: String,
}

/// Reads and checks the rule file at `path`.
///
/// # Errors
/// The file cannot be read, is not valid TOML, has unknown keys, or a
/// rule is wrong; the message names the file, the rule and the problem.
pub fn load(path: &Path) -> Result<Vec<Rule>, RulesError> {
    let fail = |what: String| RulesError {
        path: path.display().to_string(),
        what,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if meta.len() > MAX_FILE {
        return Err(fail(format!("larger than {MAX_FILE} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    parse(&text).map_err(fail)
}

/// Parses and checks a rule file's text.
///
/// # Errors
/// One line saying what is wrong (see [`load`]).
pub(crate) fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().trim().replace('\n', " ");
        match line {
            Some(n) => format!("line {n}: {message}"),
            None => message,
        }
    })?;
    if raw.rule.len() > MAX_RULES {
        return Err(format!("{} rules; at most {MAX_RULES}", raw.rule.len()));
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
    for (i, r) in raw.rule.into_iter().enumerate() {
        let label = format!("rule {} ({:?})", i + 1, r.name);
        let rule = check(r).map_err(|e| format!("{label}: {e}"))?;
        if rules.iter().any(|other| other.name == rule.name) {
            return Err(format!("{label}: name used twice; names must be unique"));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn check(r: RawRule) -> Result<Rule, String> {
    let name = r.name.trim().to_string();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err("name: 1 to 128 characters, no control characters".into());
    }
    if r.channels.is_empty() {
        return Err("channels: give at least one pattern (e.g. \"log:*\")".into());
    }
    let patterns = r
        .channels
        .iter()
        .map(|p| channel_pattern(p).map_err(|e| format!("channels: {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let regex = match &r.pattern {
        None => None,
        Some(p) if p.len() > MAX_REGEX_TEXT => {
            return Err(format!("match: longer than {MAX_REGEX_TEXT} bytes"))
        }
        Some(p) => Some(
            regex::RegexBuilder::new(p)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    let text = e.to_string();
                    format!(
                        "match: {}",
                        text.split_whitespace().collect::<Vec<_>>().join(" ")
                    )
                })?,
        ),
    };
    let min_level = match &r.min_level {
        None => None,
        Some(l) => Some(Level::parse(l.trim()).ok_or_else(|| {
            format!(
                "min_level: {l:?} is not a level (one of {})",
                Level::ALL.map(Level::as_str).join(", ")
            )
        })?),
    };
    let url =
        reqwest::Url::parse(r.webhook.trim()).map_err(|e| format!("webhook: not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "webhook: {} is not an http:// or https:// URL with a host",
            redact_url(&url)
        ));
    }
    let format = match r.format.as_deref().map(str::trim) {
        None | Some("json") => Format::Json,
        Some("slack") => Format::Slack,
        Some(other) => return Err(format!("format: {other:?}; one of slack, json")),
    };
    let duration = |what: &str, text: &Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(t) => crate::units::parse_duration(t).map_err(|e| format!("{what}: {e}")),
    };
    let window = duration("window", &r.window, Duration::from_secs(60))?;
    if window > Duration::from_secs(7 * 24 * 3600) {
        return Err("window: at most a week".into());
    }
    let timeout = duration("timeout", &r.timeout, Duration::from_secs(10))?;
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err("timeout: between 1ms and 60s".into());
    }
    let mut headers = Vec::new();
    for (k, v) in &r.headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("headers: {k:?} is not a header name"))?;
        let mut value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|_| format!("headers: the value of {k:?} is not a header value"))?;
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(Rule {
        name,
        channels: r.channels,
        patterns,
        regex,
        min_level,
        target: Arc::new(Target {
            url,
            headers,
            timeout,
        }),
        format,
        window,
    })
}

/// A channel pattern: channel characters (`A-Z a-z 0-9 _ . : -`) and the
/// glob characters `*`, `?`, `[`, `]`, `!`.
fn channel_pattern(text: &str) -> Result<glob::Pattern, String> {
    if text.is_empty() || text.len() > 256 {
        return Err("1 to 256 characters".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:-*?[]!".contains(*c)))
    {
        return Err(format!(
            "{c:?} cannot be in a channel name or a pattern (channel characters and * ? [ ] !)"
        ));
    }
    glob::Pattern::new(text).map_err(|e| e.msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[rule]]
name = "errors on web"
channels = ["log:nginx*", "web-?"]
match = "(?i)error|panic"
min_level = "error"
webhook = "https://hooks.example/T000/B000?token=s3cret"
format = "slack"
window = "1m"
headers = { Authorization = "Bearer xyz" }

[[rule]]
name = "all"
channels = ["*"]
webhook = "http://127.0.0.1:9/"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let rules = parse(GOOD).unwrap();
        assert_eq!(rules.len(), 2);
        let r = &rules[0];
        assert_eq!(r.name, "errors on web");
        assert!(r.watches("log:nginx") && r.watches("log:nginx-access") && r.watches("web-1"));
        assert!(!r.watches("web-12") && !r.watches("log:app") && !r.watches("news"));
        assert_eq!(r.min_level, Some(Level::Error));
        assert_eq!(r.format, Format::Slack);
        assert_eq!(r.window, Duration::from_secs(60));
        assert_eq!(r.target.redacted(), "https://hooks.example/…");
        assert!(!format!("{r:?}").contains("s3cret"));
        let all = &rules[1];
        assert_eq!(
            (all.format, all.window),
            (Format::Json, Duration::from_secs(60))
        );
        assert_eq!(all.target.timeout, Duration::from_secs(10));
        assert!(all.watches("anything:at.all"));
        assert!(all.matches("whatever", None));
        assert_eq!(all.target.redacted(), "http://127.0.0.1:9/");
    }

    #[test]
    fn matching_needs_the_level_and_the_regex() {
        let r = &parse(GOOD).unwrap()[0];
        assert!(r.matches("PANIC now", Some(Level::Critical)));
        assert!(r.matches("an error", Some(Level::Error)));
        assert!(!r.matches("an error", Some(Level::Warn)));
        assert!(!r.matches("an error", None));
        assert!(!r.matches("all good", Some(Level::Error)));
    }

    #[test]
    fn an_empty_file_has_no_rules() {
        assert!(parse("").unwrap().is_empty());
    }

    fn refused(text: &str) -> String {
        let e = parse(text).unwrap_err();
        assert!(!e.contains('\n'), "one line: {e}");
        e
    }

    #[test]
    fn mistakes_are_named_on_one_line() {
        let base = "[[rule]]\nname = \"r\"\nchannels = [\"a\"]\nwebhook = \"http://h/\"\n";
        let e = refused(&format!("{base}colour = \"red\"\n"));
        assert!(e.contains("line 5") && e.contains("colour"), "{e}");
        assert!(refused("[[rule]]\nname = \"r\"\n").contains("missing field"));
        assert!(refused("[[rules]]\n").contains("rules"));
        let e = refused(&format!("{base}match = \"(\"\n"));
        assert!(e.starts_with("rule 1 (\"r\"): match:"), "{e}");
        assert!(refused(&format!("{base}min_level = \"loud\"\n")).contains("min_level"));
        assert!(refused(&format!("{base}format = \"xml\"\n")).contains("format"));
        assert!(refused(&format!("{base}window = \"soon\"\n")).contains("window"));
        assert!(refused(&format!("{base}timeout = \"0s\"\n")).contains("timeout"));
        let e = refused(&base.replace("http://h/", "ftp://u:pw@h/x"));
        assert!(e.contains("webhook") && !e.contains("pw"), "{e}");
        assert!(refused(&base.replace("[\"a\"]", "[]")).contains("channels"));
        assert!(refused(&base.replace("[\"a\"]", "[\"a b\"]")).contains("channels"));
        assert!(refused(&base.replace("[\"a\"]", "[\"a[\"]")).contains("channels"));
        let e = refused(&format!("{base}{base}"));
        assert!(e.starts_with("rule 2 (\"r\"): name used twice"), "{e}");
        let e = refused(&format!("{base}match = \"a{{100000}}{{100000}}\"\n"));
        assert!(e.contains("match"), "{e}");
    }
}
