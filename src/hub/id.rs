//! Event ids: one type, one way to write them, one way to read them.
//!
//! Every backend writes an event's id as `TAG-SEQ`: the [`Tag`] of what
//! numbered it (the memory hub's run, the write-ahead log segment's epoch,
//! the Redis line of history), `-`, then its sequence number in canonical
//! decimal. [`EventId`]'s `Display` is the only formatter and
//! [`EventId::parse`] (also `FromStr`) the only parser; each backend then
//! decides what a parsed id means to it (this run's, a log epoch it still
//! knows, the current Redis line or an earlier one).
//!
//! The grammar, exactly as written and nothing else (an id a client sends
//! back is never read leniently, so an id not exactly of this hub is
//! `unknown`, never a near miss):
//! - the tag: 1 to [`MAX_TAG`] ASCII letters and digits;
//! - then one `-`;
//! - then the number: ASCII digits, no sign, no leading zero (so never
//!   `0`: numbering starts at 1), no spaces, within `u64`.

use std::fmt::{self, Write as _};
use std::str::FromStr;

/// Most bytes of a [`Tag`] (every tag written today has 8).
pub const MAX_TAG: usize = 16;

/// The first part of an id: 1 to [`MAX_TAG`] ASCII letters and digits,
/// kept inline (no allocation; `Copy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    bytes: [u8; MAX_TAG],
    len: u8,
}

impl Tag {
    /// `text` as a tag, if it is one (1 to [`MAX_TAG`] ASCII letters and
    /// digits).
    pub fn new(text: &str) -> Option<Tag> {
        let ok = !text.is_empty()
            && text.len() <= MAX_TAG
            && text.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return None;
        }
        let mut bytes = [0u8; MAX_TAG];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(Tag {
            bytes,
            len: text.len() as u8,
        })
    }

    /// `epoch` as 8 lowercase hex digits (the memory hub's run, a log
    /// segment's epoch, a Redis line).
    pub fn hex(epoch: u32) -> Tag {
        let mut text = String::with_capacity(8);
        write!(text, "{epoch:08x}").expect("writing to a String");
        Tag::new(&text).expect("hex digits make a tag")
    }

    /// A random 8-hex-digit tag (a new run's).
    pub fn random() -> Tag {
        Tag::hex(rand::random::<u32>())
    }

    /// The number of a tag written by [`Tag::hex`]: exactly 8 lowercase
    /// hex digits, else `None`.
    pub fn to_hex(&self) -> Option<u32> {
        let text = self.as_str();
        let hex = text.len() == 8 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        hex.then(|| u32::from_str_radix(text, 16).ok()).flatten()
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("tags are ASCII")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// An event id: the [`Tag`] of what numbered the event and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    /// Which run, log epoch or Redis line numbered it.
    pub tag: Tag,
    /// Its number (at least 1).
    pub seq: u64,
}

/// Most bytes of a written id: a tag, `-`, and `u64::MAX` (20 digits).
const MAX_ID: usize = MAX_TAG + 1 + 20;

/// Text that is not exactly an id (see the module docs for the grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an event id")]
pub struct NotAnId;

impl EventId {
    /// The id of event `seq` numbered under `tag`.
    pub fn new(tag: Tag, seq: u64) -> EventId {
        EventId { tag, seq }
    }

    /// `text` as an id, if it is exactly one as the hub writes them (see
    /// the module docs); `None` for anything else.
    pub fn parse(text: &str) -> Option<EventId> {
        let (tag, seq) = text.split_once('-')?;
        Some(EventId {
            tag: Tag::new(tag)?,
            seq: parse_seq(seq)?,
        })
    }

    /// The id written on the stack (the publish path formats one per
    /// event; this saves the allocation of `to_string`).
    pub(crate) fn text(&self) -> IdText {
        let mut text = IdText {
            buf: [0; MAX_ID],
            len: 0,
        };
        write!(text, "{self}").expect("an id fits in MAX_ID bytes");
        text
    }
}

impl fmt::Display for EventId {
    /// `TAG-SEQ`: the one formatter of ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tag, self.seq)
    }
}

impl FromStr for EventId {
    type Err = NotAnId;

    /// See [`EventId::parse`].
    fn from_str(text: &str) -> Result<EventId, NotAnId> {
        EventId::parse(text).ok_or(NotAnId)
    }
}

/// An id written into a buffer on the stack (see [`EventId::text`]).
pub(crate) struct IdText {
    buf: [u8; MAX_ID],
    len: usize,
}

impl IdText {
    /// The id's text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("ids are ASCII")
    }
}

impl fmt::Write for IdText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The number of an id: ASCII digits, no sign, no leading zero (so never
/// `0`), no spaces, within `u64`.
fn parse_seq(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn id_numbers_parse_only_as_written() {
        assert_eq!(parse_seq("5"), Some(5));
        assert_eq!(parse_seq("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "+5",
            "-5",
            "05",
            "0",
            " 5",
            "5 ",
            "5\n",
            "18446744073709551616",
            "",
            "5é",
            "٥",
        ] {
            assert_eq!(parse_seq(bad), None, "{bad:?}");
            assert_eq!(EventId::parse(&format!("0a1b2c3d-{bad}")), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_parse_only_exactly_as_written() {
        let id = EventId::parse("0a1b2c3d-5").unwrap();
        assert_eq!((id.tag.as_str(), id.seq), ("0a1b2c3d", 5));
        assert_eq!(id.to_string(), "0a1b2c3d-5");
        assert_eq!("0a1b2c3d-5".parse::<EventId>(), Ok(id));
        let max = EventId::parse("0a1b2c3d-18446744073709551615").unwrap();
        assert_eq!(max.seq, u64::MAX);
        assert_eq!(max.text().as_str(), "0a1b2c3d-18446744073709551615");
        for bad in [
            // The Redis replica's rejects.
            "0a1b2c3d-+5",
            "0a1b2c3d-05",
            "0a1b2c3d-0",
            " 0a1b2c3d-5",
            "0a1b2c3d-5 ",
            "0a1b2c3d- 5",
            "0a1b2c3d-5\t",
            "0a1b2c3d-18446744073709551616",
            "0a1b2c3d-",
            "0a1b2c3d--5",
            "0a1b2c3d-5é",
            "-5",
            "0a1b2c3d",
            "",
            // The memory hub's bad ids.
            "garbage",
            "x-y",
            "00000000-",
            "00000000",
            "é-1",
            "0a1b_2c3d-1",
            "01234567890123456-1",
            "0a1b2c3d-1\u{fffd}",
            "0a1b2c3d-٥",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
            assert_eq!(bad.parse::<EventId>(), Err(NotAnId), "{bad:?}");
        }
    }

    #[test]
    fn hex_tags_are_eight_lowercase_digits() {
        assert_eq!(Tag::hex(0xab).as_str(), "000000ab");
        assert_eq!(Tag::hex(0xab).to_hex(), Some(0xab));
        assert_eq!(Tag::hex(0xdead_beef).to_hex(), Some(0xdead_beef));
        for not_hex in ["DEADBEEF", "ab", "0000000g", "000000000"] {
            assert_eq!(Tag::new(not_hex).unwrap().to_hex(), None, "{not_hex}");
        }
    }

    proptest! {
        #[test]
        fn every_id_reads_back_as_written(tag in "[A-Za-z0-9]{1,16}", seq in 1u64..) {
            let id = EventId::new(Tag::new(&tag).unwrap(), seq);
            let text = id.to_string();
            prop_assert_eq!(&text, &format!("{tag}-{seq}"));
            let on_stack = id.text();
            prop_assert_eq!(on_stack.as_str(), text.as_str());
            prop_assert_eq!(EventId::parse(&text), Some(id));
        }

        #[test]
        fn whatever_parses_is_written_back_the_same(text in "[A-Za-z0-9+ -]{0,24}") {
            if let Some(id) = EventId::parse(&text) {
                prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
