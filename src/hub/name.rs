//! Channel names, parsed once: [`ChannelName`] and its [`ChannelKind`].
//!
//! Every naming rule lives here: which characters a name may hold, how long
//! it may be, and which names are special (`log:` streams, the `broadcast`
//! channel). Code that needs to know what a channel is asks
//! [`ChannelName::kind`] instead of looking at the text.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use super::HubError;

/// The channel that carries broadcasts; every subscription includes it.
pub(crate) const BROADCAST_CHANNEL: &str = "broadcast";

/// Prefix of the read-only channels that carry log streams.
pub(crate) const LOG_PREFIX: &str = "log:";

/// Longest allowed channel name, in characters (all of them ASCII, so also
/// in bytes).
pub(crate) const MAX_CHANNEL_NAME: usize = 128;

/// What a channel is, decided from its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// `log:NAME`: the lines of a followed file. Read-only for clients.
    Log,
    /// `broadcast`: part of every subscription; written only through the
    /// broadcast API.
    Broadcast,
    /// Any other name: created on first use, published to by clients.
    Ordinary,
}

impl ChannelKind {
    /// Whether the channel stays in the hub while it has no events and no
    /// subscribers: log streams are listed before their first line, and
    /// every subscription includes the broadcast channel. Ordinary channels
    /// are dropped as soon as they are empty and unsubscribed.
    pub fn is_pinned(self) -> bool {
        !matches!(self, ChannelKind::Ordinary)
    }

    /// Whether the channel counts against `--max-channels`: only ordinary
    /// channels, which clients create by publishing or subscribing. Log
    /// streams and `broadcast` are made by the server and are never refused
    /// because clients created many channels.
    pub fn counts_toward_max_channels(self) -> bool {
        matches!(self, ChannelKind::Ordinary)
    }

    /// Whether clients may publish to it directly (`POST /channels/{c}`):
    /// only ordinary channels. Log channels carry files; broadcasts go
    /// through the broadcast API so that nobody can make an ordinary event
    /// appear inside every stream.
    pub fn accepts_client_publish(self) -> bool {
        matches!(self, ChannelKind::Ordinary)
    }

    /// A short lowercase name: `log`, `broadcast` or `channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Log => "log",
            ChannelKind::Broadcast => "broadcast",
            ChannelKind::Ordinary => "channel",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ChannelKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A valid channel name: 1–128 characters of `A-Z a-z 0-9 _ . : -`,
/// starting with a letter or digit. Parse it once at the edge with
/// [`ChannelName::parse`]; everything past that takes this type.
///
/// Cheap to clone (a shared `Arc<str>`). It dereferences to `str`, compares
/// with strings, and serialises as its text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

static BROADCAST: LazyLock<ChannelName> =
    LazyLock::new(|| ChannelName(Arc::from(BROADCAST_CHANNEL)));

impl ChannelName {
    /// Checks `name` against the naming rules.
    ///
    /// # Errors
    /// [`HubError::InvalidName`] saying which rule the name breaks.
    pub fn parse(name: &str) -> Result<ChannelName, HubError> {
        check(name)?;
        Ok(ChannelName(Arc::from(name)))
    }

    /// The `broadcast` channel.
    pub fn broadcast() -> ChannelName {
        BROADCAST.clone()
    }

    /// The channel of log stream `stream`: `log:STREAM`.
    ///
    /// # Errors
    /// [`HubError::InvalidName`] if `log:STREAM` breaks the naming rules.
    pub fn log(stream: &str) -> Result<ChannelName, HubError> {
        ChannelName::parse(&format!("{LOG_PREFIX}{stream}"))
    }

    /// What this channel is. The only place where the `log:` prefix and the
    /// `broadcast` name are looked at.
    pub fn kind(&self) -> ChannelKind {
        if self.0.starts_with(LOG_PREFIX) {
            ChannelKind::Log
        } else if &*self.0 == BROADCAST_CHANNEL {
            ChannelKind::Broadcast
        } else {
            ChannelKind::Ordinary
        }
    }

    /// For a log channel, the stream name (without `log:`).
    pub fn log_stream(&self) -> Option<&str> {
        match self.kind() {
            ChannelKind::Log => Some(&self.0[LOG_PREFIX.len()..]),
            _ => None,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The naming rules; see [`ChannelName`].
fn check(name: &str) -> Result<(), HubError> {
    let bad = |why| {
        Err(HubError::InvalidName {
            name: name.chars().take(MAX_CHANNEL_NAME + 8).collect(),
            why,
        })
    };
    let Some(first) = name.chars().next() else {
        return bad("it is empty");
    };
    if name.chars().count() > MAX_CHANNEL_NAME {
        return bad("it is longer than 128 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
    {
        return bad("only letters, digits and _ . : - are allowed");
    }
    Ok(())
}

impl Deref for ChannelName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets a map keyed by `ChannelName` be searched with a `&str`.
impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl FromStr for ChannelName {
    type Err = HubError;
    fn from_str(s: &str) -> Result<Self, HubError> {
        ChannelName::parse(s)
    }
}

impl TryFrom<&str> for ChannelName {
    type Error = HubError;
    fn try_from(s: &str) -> Result<Self, HubError> {
        ChannelName::parse(s)
    }
}

impl TryFrom<String> for ChannelName {
    type Error = HubError;
    fn try_from(s: String) -> Result<Self, HubError> {
        check(&s)?;
        Ok(ChannelName(Arc::from(s)))
    }
}

impl From<ChannelName> for String {
    fn from(name: ChannelName) -> String {
        name.0.to_string()
    }
}

impl PartialEq<str> for ChannelName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ChannelName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for ChannelName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<ChannelName> for str {
    fn eq(&self, other: &ChannelName) -> bool {
        self == &*other.0
    }
}

impl PartialEq<ChannelName> for &str {
    fn eq(&self, other: &ChannelName) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<ChannelName> for String {
    fn eq(&self, other: &ChannelName) -> bool {
        **self == *other.0
    }
}

impl serde::Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ChannelName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ChannelName::try_from(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_names() {
        for ok in [
            "a",
            "news",
            "log:app.log",
            "A_b-c.d:e",
            "9lives",
            &"x".repeat(128),
        ] {
            assert_eq!(ChannelName::parse(ok).map(String::from), Ok(ok.into()));
        }
        for bad in [
            "",
            "-a",
            ".a",
            ":a",
            "a b",
            "a/b",
            "é",
            "a\n",
            &"x".repeat(129),
        ] {
            assert!(ChannelName::parse(bad).is_err(), "{bad:?}");
            assert!(ChannelName::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_are_decided_by_the_name() {
        let kind = |n: &str| ChannelName::parse(n).unwrap().kind();
        assert_eq!(kind("log:app.log"), ChannelKind::Log);
        assert_eq!(kind("broadcast"), ChannelKind::Broadcast);
        assert_eq!(ChannelName::broadcast().kind(), ChannelKind::Broadcast);
        for ordinary in ["news", "broadcast2", "Broadcast", "logs", "log", "x:log:y"] {
            assert_eq!(kind(ordinary), ChannelKind::Ordinary, "{ordinary}");
        }
        assert!(ChannelKind::Log.is_pinned() && ChannelKind::Broadcast.is_pinned());
        assert!(ChannelKind::Ordinary.counts_toward_max_channels());
        assert!(!ChannelKind::Log.counts_toward_max_channels());
        assert!(!ChannelKind::Broadcast.counts_toward_max_channels());
        assert!(!ChannelKind::Ordinary.is_pinned());
        assert!(ChannelKind::Ordinary.accepts_client_publish());
        assert!(!ChannelKind::Log.accepts_client_publish());
        assert!(!ChannelKind::Broadcast.accepts_client_publish());
    }

    #[test]
    fn log_channels_name_their_stream() {
        let log = ChannelName::log("app.log").unwrap();
        assert_eq!(log, "log:app.log");
        assert_eq!(log.log_stream(), Some("app.log"));
        assert_eq!(ChannelName::parse("news").unwrap().log_stream(), None);
        assert!(ChannelName::log("a b").is_err());
    }

    #[test]
    fn serialises_as_text_and_deserialises_checked() {
        let name = ChannelName::parse("news").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"news\"");
        let back: ChannelName = serde_json::from_str("\"news\"").unwrap();
        assert_eq!(back, name);
        assert!(serde_json::from_str::<ChannelName>("\"a b\"").is_err());
        assert_eq!(
            serde_json::to_string(&ChannelKind::Ordinary).unwrap(),
            "\"channel\""
        );
    }

    #[test]
    fn a_map_keyed_by_names_is_searched_with_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(ChannelName::parse("news").unwrap(), 1);
        assert_eq!(map.get("news"), Some(&1));
    }
}
