//! Rights: the `tailcast` claim of a token, parsed once into patterns, and
//! the one place that decides whether a right is granted.
//!
//! A pattern is a channel name in which `*` matches any run of characters
//! (none included): `log:*` is every log stream, `*` everything, `news`
//! only `news`. Matching is linear in practice and at worst
//! O(name × pattern) on the 128-character names the hub allows.

use serde::{Deserialize, Serialize};

/// Longest pattern accepted, in bytes (a channel name is at most 128
/// characters; patterns may add `*`s).
pub(crate) const MAX_PATTERN: usize = 256;

/// Most patterns in one list of a token, so a huge token cannot make every
/// check of every request slow.
pub(crate) const MAX_PATTERNS: usize = 256;

/// A channel pattern: literal pieces separated by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
}

/// Why a pattern given on the command line is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid channel pattern {pattern:?}: {why}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong.
    pub why: &'static str,
}

impl Pattern {
    /// A pattern from a token: any text, `*` is the only special character.
    pub fn new(text: &str) -> Pattern {
        Pattern {
            text: text.to_string(),
        }
    }

    /// A pattern given by an operator (`--anonymous-subscribe`, `tailcast
    /// token --subscribe`): only channel-name characters and `*`, so a typo
    /// is an error instead of a rule that never matches.
    ///
    /// # Errors
    /// [`PatternError`] saying what is wrong.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let bad = |why| {
            Err(PatternError {
                pattern: text.chars().take(MAX_PATTERN).collect(),
                why,
            })
        };
        if text.is_empty() {
            return bad("it is empty");
        }
        if text.len() > MAX_PATTERN {
            return bad("it is longer than 256 bytes");
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '*'))
        {
            return bad("only letters, digits, _ . : - and * are allowed");
        }
        Ok(Pattern::new(text))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches: `*` stands for any run of characters.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.text.as_bytes(), name.as_bytes())
    }
}

/// `*`-only glob matching with backtracking to the last star (linear for
/// the usual one-star patterns).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Position after the last `*` seen, and the name position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            p += 1;
            star = Some((p, n));
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((after, matched)) = star {
            // Let the last star swallow one more character.
            p = after;
            n = matched + 1;
            star = Some((after, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A list of patterns; a name is granted when any of them matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    /// The patterns, in order.
    pub fn new(patterns: Vec<Pattern>) -> Self {
        Patterns(patterns)
    }

    /// Whether any pattern matches `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.0.iter().any(|p| p.matches(name))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns as written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Pattern::as_str)
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        if list.len() > MAX_PATTERNS {
            return Err(serde::de::Error::custom(format!(
                "more than {MAX_PATTERNS} patterns"
            )));
        }
        Ok(Patterns(list.iter().map(|s| Pattern::new(s)).collect()))
    }
}

impl Serialize for Patterns {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The `tailcast` claim: what a token may do. Missing keys grant nothing.
///
/// Unknown keys are ignored, so a token made for a newer server still
/// works here with the rights this server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rights {
    /// Channels the bearer may subscribe to (`log:NAME` for log streams).
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    pub subscribe: Patterns,
    /// Channels the bearer may publish to.
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    pub publish: Patterns,
    /// Whether the bearer may use `POST /api/broadcast`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broadcast: bool,
    /// `/metrics`, and file paths in `/api/streams`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// One thing a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right<'a> {
    /// Read a channel (`log:NAME` for a log stream).
    Subscribe(&'a str),
    /// Read what every stream carries (the `broadcast` channel's history):
    /// granted to whoever may subscribe to anything.
    AnyStream,
    /// Publish to a channel.
    Publish(&'a str),
    /// Publish to some channel (an ingest request, whose channels come
    /// from its records, checked from its head): granted to whoever may
    /// publish anywhere; each channel is checked again once known.
    PublishAny,
    /// `POST /api/broadcast`.
    Broadcast,
    /// `/metrics`, file paths.
    Admin,
}

impl std::fmt::Display for Right<'_> {
    /// The end of a refusal: "may not subscribe to news".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Right::Subscribe(c) => write!(f, "subscribe to {c}"),
            Right::AnyStream => f.write_str("subscribe to any channel"),
            Right::Publish(c) => write!(f, "publish to {c}"),
            Right::PublishAny => f.write_str("publish"),
            Right::Broadcast => f.write_str("broadcast"),
            Right::Admin => f.write_str("use admin endpoints"),
        }
    }
}

impl Rights {
    /// Whether these rights grant `right`.
    pub fn grants(&self, right: Right<'_>) -> bool {
        match right {
            Right::Subscribe(c) => self.subscribe.allows(c),
            Right::AnyStream => !self.subscribe.is_empty(),
            Right::Publish(c) => self.publish.allows(c),
            Right::PublishAny => !self.publish.is_empty(),
            Right::Broadcast => self.broadcast,
            Right::Admin => self.admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Pattern::new(p).matches(n)
    }

    #[test]
    fn stars_match_any_run_of_characters() {
        assert!(m("*", "news"));
        assert!(m("*", ""));
        assert!(m("news", "news"));
        assert!(!m("news", "news2"));
        assert!(!m("news", "new"));
        assert!(m("log:*", "log:app.log"));
        assert!(m("log:*", "log:"));
        assert!(!m("log:*", "news"));
        assert!(!m("log:*", "xlog:a"));
        assert!(m("*.log", "log:app.log"));
        assert!(!m("*.log", "log:app.log.1"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("**", "x"));
        assert!(m("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("a*a*a*a*b", &"a".repeat(128)));
        // Case matters, as in channel names.
        assert!(!m("News", "news"));
    }

    #[test]
    fn operator_patterns_are_checked() {
        assert!(Pattern::parse("log:*").is_ok());
        assert!(Pattern::parse("team-a.*").is_ok());
        for bad in ["", "news feed", "a/b", "naïve", &"x".repeat(257)] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_claim_parses_and_missing_keys_grant_nothing() {
        let rights: Rights = serde_json::from_value(serde_json::json!({
            "subscribe": ["log:*", "news"], "publish": ["news"], "broadcast": true, "admin": false
        }))
        .unwrap();
        assert!(rights.grants(Right::Subscribe("log:app.log")));
        assert!(rights.grants(Right::Subscribe("news")));
        assert!(!rights.grants(Right::Subscribe("sports")));
        assert!(rights.grants(Right::Publish("news")));
        assert!(!rights.grants(Right::Publish("log:app.log")));
        assert!(rights.grants(Right::Broadcast));
        assert!(!rights.grants(Right::Admin));
        assert!(rights.grants(Right::AnyStream));

        let none: Rights = serde_json::from_value(serde_json::json!({})).unwrap();
        for right in [
            Right::Subscribe("a"),
            Right::AnyStream,
            Right::Publish("a"),
            Right::Broadcast,
            Right::Admin,
        ] {
            assert!(!none.grants(right), "{right:?}");
        }
    }

    #[test]
    fn malformed_claims_are_errors() {
        for bad in [
            serde_json::json!({"subscribe": "news"}),
            serde_json::json!({"subscribe": [1]}),
            serde_json::json!({"broadcast": "yes"}),
            serde_json::json!({"subscribe": vec!["a"; MAX_PATTERNS + 1]}),
        ] {
            assert!(
                serde_json::from_value::<Rights>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rights_serialize_back_compactly() {
        let rights = Rights {
            subscribe: Patterns::new(vec![Pattern::new("news")]),
            broadcast: true,
            ..Rights::default()
        };
        assert_eq!(
            serde_json::to_value(&rights).unwrap(),
            serde_json::json!({"subscribe": ["news"], "broadcast": true})
        );
    }
}
