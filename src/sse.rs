//! The Server-Sent Events wire format: how one event becomes bytes.
//!
//! Encoding follows the WHATWG HTML "server-sent events" rules. Data is split
//! on every CR, LF and CRLF into several `data:` lines, so no input can inject
//! a field or an event; `event:` and `id:` values have CR, LF and NUL removed.
//! This module knows nothing of channels, HTTP or sockets.

use bytes::{BufMut, Bytes, BytesMut};

/// The event type a client sees when no `event:` line is sent.
pub(crate) const DEFAULT_EVENT_TYPE: &str = "message";

/// Event types that mean something to clients, sent by the server alone:
/// `reset` (events were missed), `token-expired` (the stream ended because
/// its token expired; the console and `tailcast listen` act on it) and
/// `broadcast` (what `POST /api/broadcast` sends).
pub(crate) const RESERVED_EVENT_TYPES: [&str; 3] = ["reset", "token-expired", "broadcast"];

/// Whether `event_type` is one of [`RESERVED_EVENT_TYPES`]: no client may
/// publish an event of that type, on any publish or ingest path.
pub(crate) fn is_reserved_event_type(event_type: &str) -> bool {
    RESERVED_EVENT_TYPES.contains(&event_type)
}

/// Splits `data` into lines at CRLF, lone CR and lone LF, as an SSE parser
/// would. Always yields at least one (possibly empty) line.
pub(crate) fn split_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match memchr::memchr2(b'\r', b'\n', text.as_bytes()) {
            None => {
                rest = None;
                Some(text)
            }
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
        }
    })
}

/// Appends a field value with the characters that would end a line or a
/// field (CR, LF, NUL) removed.
fn put_field(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    if value.contains(['\r', '\n', '\0']) {
        for c in value.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')) {
            let mut tmp = [0u8; 4];
            buf.put_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
    } else {
        buf.put_slice(value.as_bytes());
    }
    buf.put_u8(b'\n');
}

/// Encodes one event: optional `id:`, `event:` unless the type is
/// `DEFAULT_EVENT_TYPE` (or empty), one `data:` line per line of `data`,
/// then the blank line that dispatches it.
pub fn encode_event(id: Option<&str>, event_type: &str, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + event_type.len() + 32);
    if let Some(id) = id {
        put_field(&mut buf, "id", id);
    }
    if !event_type.is_empty() && event_type != DEFAULT_EVENT_TYPE {
        put_field(&mut buf, "event", event_type);
    }
    put_data(&mut buf, data);
    buf.freeze()
}

/// Room left in front of a [`PendingEvent`] for its `id:` field: `id: `,
/// up to 35 bytes of id, and the LF. tailcast's own ids take at most 29.
pub(crate) const ID_ROOM: usize = 40;

/// An event encoded before its id is known, with [`ID_ROOM`] bytes of room
/// in front for the `id:` field, so that numbering it later
/// ([`PendingEvent::with_id`]) copies nothing but the id.
///
/// The hub encodes events this way outside its commit lock, and only
/// writes the id under it.
#[derive(Debug)]
pub(crate) struct PendingEvent {
    /// `ID_ROOM` bytes of room, then `event:` (unless the default type),
    /// the `data:` lines and the blank line. Allocated to its exact size.
    buf: BytesMut,
}

impl PendingEvent {
    /// Encodes `event_type` and `data` as [`encode_event`] would, minus
    /// the id.
    pub(crate) fn encode(event_type: &str, data: &str) -> PendingEvent {
        let typed = !event_type.is_empty() && event_type != DEFAULT_EVENT_TYPE;
        let type_len = if typed {
            "event: ".len() + field_len(event_type) + 1
        } else {
            0
        };
        // Exact for one line of data (the usual case); more lines grow it.
        let mut buf = BytesMut::with_capacity(ID_ROOM + type_len + "data: \n\n".len() + data.len());
        buf.put_bytes(0, ID_ROOM);
        if typed {
            put_field(&mut buf, "event", event_type);
        }
        put_data(&mut buf, data);
        PendingEvent { buf }
    }

    /// The event's type and data read back (no id yet), e.g. for a
    /// write-ahead log that stores them as fields.
    pub(crate) fn fields(&self) -> FrameFields<'_> {
        FrameFields::read(&self.buf[ID_ROOM..])
    }

    /// Bytes allocated for the frame, room included (exact for one line
    /// of data; several lines may leave some spare room).
    pub(crate) fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The finished frame, `id: ID` first. Writes the id into the room in
    /// front when it fits (no copy of the rest); a longer id, or one
    /// holding CR, LF or NUL, costs one copy.
    pub(crate) fn with_id(mut self, id: &str) -> Bytes {
        let field = "id: ".len() + id.len() + 1;
        if field > ID_ROOM || id.contains(['\r', '\n', '\0']) {
            let mut out = BytesMut::with_capacity(field + self.buf.len() - ID_ROOM);
            put_field(&mut out, "id", id);
            out.put_slice(&self.buf[ID_ROOM..]);
            return out.freeze();
        }
        let start = ID_ROOM - field;
        let room = &mut self.buf[start..ID_ROOM];
        room[..4].copy_from_slice(b"id: ");
        room[4..4 + id.len()].copy_from_slice(id.as_bytes());
        room[field - 1] = b'\n';
        // Only moves the start: no allocation, no copy.
        bytes::Buf::advance(&mut self.buf, start);
        self.buf.freeze()
    }
}

/// Length of a field value once CR, LF and NUL are removed.
fn field_len(value: &str) -> usize {
    value.len()
        - value
            .bytes()
            .filter(|b| matches!(b, b'\r' | b'\n' | 0))
            .count()
}

/// Appends one `data:` line per line of `data`, then the blank line.
fn put_data(buf: &mut BytesMut, data: &str) {
    for line in split_lines(data) {
        if line.is_empty() {
            buf.put_slice(b"data:\n");
        } else {
            buf.put_slice(b"data: ");
            buf.put_slice(line.as_bytes());
            buf.put_u8(b'\n');
        }
    }
    buf.put_u8(b'\n');
}

/// The fields of one event frame made by this module ([`encode_event`],
/// [`PendingEvent`]), read back. The frame is the only copy the hub keeps
/// of an event: its id, type and data are read from it when needed. Reading
/// the id or the type looks at the first lines only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameFields<'a> {
    /// The `id:` value, if the frame has one.
    pub id: Option<&'a str>,
    /// The event type ([`DEFAULT_EVENT_TYPE`] when the frame has none).
    pub event_type: &'a str,
    /// The `data:` lines, each with its LF.
    data_lines: &'a [u8],
}

impl<'a> FrameFields<'a> {
    /// Reads a frame made by this module. Anything else reads as well as
    /// it can: no id, the default type, empty data.
    pub(crate) fn read(frame: &'a [u8]) -> FrameFields<'a> {
        let mut fields = FrameFields {
            id: None,
            event_type: DEFAULT_EVENT_TYPE,
            data_lines: b"",
        };
        let Some(mut rest) = frame.strip_suffix(b"\n") else {
            return fields;
        };
        let take = |name: &[u8], rest: &mut &'a [u8]| -> Option<&'a str> {
            let line_end = memchr::memchr(b'\n', rest)?;
            let value = rest[..line_end].strip_prefix(name)?;
            let value = std::str::from_utf8(value).ok()?;
            *rest = &rest[line_end + 1..];
            Some(value)
        };
        fields.id = take(b"id: ", &mut rest);
        if let Some(event_type) = take(b"event: ", &mut rest) {
            fields.event_type = event_type;
        }
        fields.data_lines = rest;
        fields
    }

    /// The event's data: the `data:` lines joined with LF. Borrowed from
    /// the frame when it is a single line.
    pub(crate) fn data(&self) -> std::borrow::Cow<'a, str> {
        let Ok(text) = std::str::from_utf8(self.data_lines) else {
            return std::borrow::Cow::Borrowed("");
        };
        let strip = |line: &'a str| {
            line.strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"))
                .unwrap_or(line)
        };
        let lines = text.strip_suffix('\n').unwrap_or(text);
        if !lines.contains('\n') {
            return std::borrow::Cow::Borrowed(strip(lines));
        }
        let mut data = String::with_capacity(lines.len());
        for (i, line) in lines.split('\n').enumerate() {
            if i > 0 {
                data.push('\n');
            }
            data.push_str(strip(line));
        }
        std::borrow::Cow::Owned(data)
    }
}

/// Encodes a `retry:` field telling the client how long to wait before
/// reconnecting, in milliseconds.
pub(crate) fn encode_retry(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

/// The heartbeat comment sent on idle streams.
pub(crate) const PING: &[u8] = b": ping\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(id: Option<&str>, ty: &str, data: &str) -> String {
        String::from_utf8(encode_event(id, ty, data).to_vec()).unwrap()
    }

    #[test]
    fn single_line_message_has_no_event_field() {
        assert_eq!(enc(None, "message", "hello"), "data: hello\n\n");
    }

    #[test]
    fn id_and_event_type_come_before_data() {
        assert_eq!(
            enc(Some("a-7"), "sensor", "{\"t\":1}"),
            "id: a-7\nevent: sensor\ndata: {\"t\":1}\n\n"
        );
    }

    #[test]
    fn multi_line_data_becomes_several_data_lines() {
        assert_eq!(
            enc(None, "message", "a\nb\nc"),
            "data: a\ndata: b\ndata: c\n\n"
        );
    }

    #[test]
    fn cr_lf_and_crlf_all_split_lines() {
        assert_eq!(
            enc(None, "message", "a\rb\nc\r\nd"),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn cr_then_lf_in_separate_positions_is_one_break_each() {
        assert_eq!(
            enc(None, "message", "a\r\rb"),
            "data: a\ndata:\ndata: b\n\n"
        );
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(enc(None, "message", ""), "data:\n\n");
    }

    #[test]
    fn trailing_newline_is_an_empty_last_line() {
        assert_eq!(enc(None, "message", "z\n"), "data: z\ndata:\n\n");
    }

    #[test]
    fn unicode_is_passed_through() {
        assert_eq!(
            enc(Some("1"), "message", "héllo wörld — 日本語 🎉"),
            "id: 1\ndata: héllo wörld — 日本語 🎉\n\n"
        );
    }

    #[test]
    fn injection_attempt_stays_inside_one_event() {
        assert_eq!(
            enc(None, "message", "x\n\nevent: evil\ndata: y"),
            "data: x\ndata:\ndata: event: evil\ndata: data: y\n\n"
        );
    }

    #[test]
    fn line_breaks_and_nul_are_removed_from_id_and_event() {
        assert_eq!(
            enc(Some("1\n2\0"), "a\r\nb", "d"),
            "id: 12\nevent: ab\ndata: d\n\n"
        );
    }

    #[test]
    fn leading_space_in_data_is_kept_after_the_separator_space() {
        assert_eq!(enc(None, "message", " x"), "data:  x\n\n");
    }

    #[test]
    fn retry_and_comment_frames() {
        assert_eq!(&encode_retry(3000)[..], b"retry: 3000\n\n");
        assert_eq!(PING, b": ping\n\n");
    }

    #[test]
    fn pending_event_numbered_later_is_the_same_frame() {
        let long_id = "x".repeat(60);
        for (id, ty, data) in [
            ("5f3a9c01-1", "message", "hello"),
            ("5f3a9c01-18446744073709551615", "sensor", "a\r\nb\rc\n"),
            ("7", "", ""),
            ("1\n2\0", "a\r\nb", "d"),
            (long_id.as_str(), "message", "long id"),
        ] {
            let pending = PendingEvent::encode(ty, data);
            let allocated = pending.allocated();
            let frame = pending.with_id(id);
            assert_eq!(
                frame,
                encode_event(Some(id), ty, data),
                "{id:?} {ty:?} {data:?}"
            );
            if id.len() < 30 && !id.contains('\n') {
                assert!(allocated >= ID_ROOM + frame.len() - 5 - id.len());
                if !data.is_empty() && !data.contains(['\r', '\n']) {
                    assert_eq!(allocated, ID_ROOM + frame.len() - 5 - id.len());
                }
            }
        }
    }

    #[test]
    fn frames_read_back_into_their_fields() {
        for (id, ty, data, want) in [
            (Some("a-1"), "message", "hello", "hello"),
            (Some("a-2"), "sensor", "", ""),
            (None, "message", " x", " x"),
            (Some("a-3"), "t", "a\r\nb\rc\n", "a\nb\nc\n"),
            (
                None,
                "message",
                "x\n\nevent: evil\ndata: y",
                "x\n\nevent: evil\ndata: y",
            ),
            (Some("a-4"), "message", "data: data:", "data: data:"),
        ] {
            let frame = encode_event(id, ty, data);
            let fields = FrameFields::read(&frame);
            assert_eq!(fields.id, id);
            assert_eq!(fields.event_type, ty);
            assert_eq!(fields.data(), want, "{data:?}");
        }
        let single = encode_event(Some("1"), "message", "borrowed");
        assert!(matches!(
            FrameFields::read(&single).data(),
            std::borrow::Cow::Borrowed("borrowed")
        ));
    }

    #[test]
    fn split_lines_matches_parser_rules() {
        let v: Vec<_> = split_lines("a\r\n\r\nb\r").collect();
        assert_eq!(v, ["a", "", "b", ""]);
    }
}
