//! The Server-Sent Events wire format: how one event becomes bytes.
//!
//! Encoding follows the WHATWG HTML "server-sent events" rules. Data is split
//! on every CR, LF and CRLF into several `data:` lines, so no input can inject
//! a field or an event; `event:` and `id:` values have CR, LF and NUL removed.
//! This module knows nothing of channels, HTTP or sockets.

use bytes::{BufMut, Bytes, BytesMut};

/// The event type a client sees when no `event:` line is sent.
pub const DEFAULT_EVENT_TYPE: &str = "message";

/// Splits `data` into lines at CRLF, lone CR and lone LF, as an SSE parser
/// would. Always yields at least one (possibly empty) line.
pub fn split_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
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
/// [`DEFAULT_EVENT_TYPE`] (or empty), one `data:` line per line of `data`,
/// then the blank line that dispatches it.
pub fn encode_event(id: Option<&str>, event_type: &str, data: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(data.len() + event_type.len() + 32);
    if let Some(id) = id {
        put_field(&mut buf, "id", id);
    }
    if !event_type.is_empty() && event_type != DEFAULT_EVENT_TYPE {
        put_field(&mut buf, "event", event_type);
    }
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
    buf.freeze()
}

/// Encodes a `retry:` field telling the client how long to wait before
/// reconnecting, in milliseconds.
pub fn encode_retry(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

/// The heartbeat comment sent on idle streams.
pub const PING: &[u8] = b": ping\n\n";

/// Encodes a comment line (ignored by clients), line breaks removed.
pub fn encode_comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 4);
    buf.put_slice(b": ");
    for line in split_lines(text) {
        buf.put_slice(line.as_bytes());
    }
    buf.put_slice(b"\n\n");
    buf.freeze()
}

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
        assert_eq!(&encode_comment("hi\nthere")[..], b": hithere\n\n");
        assert_eq!(PING, b": ping\n\n");
    }

    #[test]
    fn split_lines_matches_parser_rules() {
        let v: Vec<_> = split_lines("a\r\n\r\nb\r").collect();
        assert_eq!(v, ["a", "", "b", ""]);
    }
}
