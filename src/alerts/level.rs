//! Log levels: their names, their order, and how an event's level is
//! found. The one place that knows level names.
//!
//! Order, lowest first: `trace` < `debug` < `info` < `notice` < `warn` <
//! `error` < `critical`. Names are case-insensitive; `warning` is `warn`,
//! `err` is `error`, `dbg` is `debug`, `information` is `info`, and `crit`,
//! `fatal`, `alert`, `emerg`, `emergency` and `panic` are all `critical`
//! (syslog's top three severities and the usual "the process dies" words).
//!
//! An event's level (`detect`) comes from the `level` (else `severity`,
//! `lvl`) field of an event whose data is a JSON object (ingested records,
//! JSON log lines); otherwise from a leading level word of the line: the
//! first word that is not a timestamp (starts with a digit) nor a
//! `key=value` pair, brackets and a trailing colon removed (`ERROR`,
//! `[warn]`, `<error>`, `INFO:`), or a logfmt `level=`/`lvl=` pair among
//! the first words.

use std::borrow::Cow;

/// A log level. Ordered: `Trace` is the lowest, `Critical` the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `trace`.
    Trace,
    /// `debug` (`dbg`).
    Debug,
    /// `info` (`information`, `informational`).
    Info,
    /// `notice`.
    Notice,
    /// `warn` (`warning`).
    Warn,
    /// `error` (`err`).
    Error,
    /// `critical` (`crit`, `fatal`, `alert`, `emerg`, `emergency`, `panic`).
    Critical,
}

/// Most words looked at for a leading level word.
const LEADING_WORDS: usize = 6;

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 7] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Notice,
        Level::Warn,
        Level::Error,
        Level::Critical,
    ];

    /// The level called `name` (any case, any of the synonyms), if any.
    pub fn parse(name: &str) -> Option<Level> {
        if name.len() > 16 {
            return None;
        }
        Some(match name.to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" | "dbg" => Level::Debug,
            "info" | "information" | "informational" => Level::Info,
            "notice" => Level::Notice,
            "warn" | "warning" => Level::Warn,
            "error" | "err" => Level::Error,
            "critical" | "crit" | "fatal" | "alert" | "emerg" | "emergency" | "panic" => {
                Level::Critical
            }
            _ => return None,
        })
    }

    /// The level's canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What alerting reads of an event's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reading<'a> {
    /// The message: the `line` (else `msg`, `message`) string field of a
    /// JSON object, else the whole data.
    pub line: Cow<'a, str>,
    /// The level, if the event has one (see the module docs).
    pub level: Option<Level>,
    /// The raw level text as the event gave it (JSON field or word).
    pub level_text: Option<String>,
    /// The `time` string field of a JSON object, if any.
    pub time: Option<String>,
}

/// Reads the line, level and time of an event's `data` (see the module
/// docs).
pub(crate) fn detect(data: &str) -> Reading<'_> {
    if data.trim_start().starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(data)
        {
            let text = |key: &str| map.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let level_text = text("level")
                .or_else(|| text("severity"))
                .or_else(|| text("lvl"));
            let line = text("line")
                .or_else(|| text("msg"))
                .or_else(|| text("message"));
            let level = match &level_text {
                Some(t) => Level::parse(t.trim()),
                // A message without a level field may still start with one.
                None => line.as_deref().and_then(|l| leading_word(l).1),
            };
            let level_text = level_text.or_else(|| {
                line.as_deref()
                    .and_then(|l| leading_word(l).0)
                    .map(str::to_string)
            });
            return Reading {
                line: line.map(Cow::Owned).unwrap_or(Cow::Borrowed(data)),
                level,
                level_text,
                time: text("time"),
            };
        }
    }
    let (word, level) = leading_word(data);
    Reading {
        line: Cow::Borrowed(data),
        level,
        level_text: word.map(str::to_string),
        time: None,
    }
}

/// The leading level word of `line` and its level (see the module docs).
fn leading_word(line: &str) -> (Option<&str>, Option<Level>) {
    for word in line.split_ascii_whitespace().take(LEADING_WORDS) {
        for key in ["level=", "lvl=", "severity="] {
            if let Some(value) = word.strip_prefix(key) {
                let value = value.trim_matches(|c| c == '"' || c == '\'');
                return match Level::parse(value) {
                    Some(level) => (Some(value), Some(level)),
                    None => (None, None),
                };
            }
        }
        if word.starts_with(|c: char| c.is_ascii_digit()) || word.contains('=') {
            continue;
        }
        let bare = word
            .trim_end_matches(':')
            .trim_matches(|c| matches!(c, '[' | ']' | '<' | '>' | '(' | ')' | '{' | '}'))
            .trim_end_matches(':');
        return match Level::parse(bare) {
            Some(level) => (Some(bare), Some(level)),
            None => (None, None),
        };
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(data: &str) -> Option<Level> {
        detect(data).level
    }

    #[test]
    fn names_and_order() {
        assert!(Level::ALL.windows(2).all(|w| w[0] < w[1]));
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("Err"), Some(Level::Error));
        assert_eq!(Level::parse("fatal"), Some(Level::Critical));
        assert_eq!(Level::parse("emerg"), Some(Level::Critical));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Error > Level::Warn && Level::Critical > Level::Error);
    }

    #[test]
    fn json_level_and_line() {
        let r = detect(
            r#"{"time":"2026-12-07T06:00:00Z","line":"disk full","level":"ERROR","labels":{}}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.line, "disk full");
        assert_eq!(r.time.as_deref(), Some("2026-12-07T06:00:00Z"));
        assert_eq!(
            level(r#"{"severity":"warning","msg":"slow"}"#),
            Some(Level::Warn)
        );
        // No level field: the message's leading word.
        let r = detect(r#"{"message":"ERROR boom"}"#);
        assert_eq!(
            (r.level, r.line.as_ref()),
            (Some(Level::Error), "ERROR boom")
        );
        // Not an object, or not JSON: a plain line.
        assert_eq!(detect("{not json").line, "{not json");
        assert_eq!(level(r#"{"level":"nonsense","line":"x"}"#), None);
    }

    #[test]
    fn leading_words() {
        assert_eq!(level("ERROR something broke"), Some(Level::Error));
        assert_eq!(level("[warn] disk at 91%"), Some(Level::Warn));
        assert_eq!(level("<error> x"), Some(Level::Error));
        assert_eq!(level("INFO: started"), Some(Level::Info));
        assert_eq!(
            level("2026-12-07T06:00:00Z 12:00:01 FATAL out of memory"),
            Some(Level::Critical)
        );
        assert_eq!(
            level("time=2026-12-07 level=error msg=\"x\""),
            Some(Level::Error)
        );
        assert_eq!(level("ts=1 lvl=\"warn\" msg=x"), Some(Level::Warn));
        // The first real word decides; a level word later is just a word.
        assert_eq!(level("user reported an error"), None);
        assert_eq!(level(""), None);
        assert_eq!(level("GET /a 500"), None);
    }
}
