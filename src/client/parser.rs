//! The reading half of the SSE wire format: bytes in, events out.
//!
//! [`Parser`] follows the WHATWG HTML "interpreting an event stream" rules
//! exactly: an optional UTF-8 BOM at the start, CR, LF and CRLF line ends
//! (also when a CRLF or a multi-byte character is split across reads),
//! comments, fields without a colon, one leading space removed after the
//! colon, `data:` lines appended with LF, unknown fields ignored, an `id`
//! containing NUL ignored, a `retry` with anything but ASCII digits ignored,
//! and dispatch on a blank line only. Invalid UTF-8 becomes U+FFFD, as in a
//! browser.
//!
//! It is written here rather than taken from a crate because the
//! candidates checked (`eventsource-stream` 0.2, which `reqwest-eventsource`
//! builds on) drop a `retry:` that arrives in a block without `data`
//! (tailcast's first frame is exactly that), accept `retry: +5` because
//! they use `u64::from_str`, fail the whole stream on invalid UTF-8 instead
//! of replacing it, and hold back an event ended by a lone CR until the next
//! read arrives.
//!
//! The parser does no I/O and knows nothing of HTTP: the caller feeds it
//! chunks and, on reconnecting, calls [`Parser::reconnect`].
//!
//! What it buffers is bounded (a client protection the WHATWG rules do not
//! have): a line longer than [`Limits::max_line`] is not kept but skipped to
//! its end, and the event it belongs to is dropped; an event whose data
//! grows past [`Limits::max_event`] is dropped too. Both are counted
//! ([`Parser::take_skipped`]) so the caller can say so; the stream goes on.

use std::time::Duration;

/// The UTF-8 byte order mark, skipped once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The event type given to events that have no `event:` field.
pub(crate) const DEFAULT_EVENT_TYPE: &str = crate::sse::DEFAULT_EVENT_TYPE;

/// Default [`Limits::max_line`]: 1 MiB.
pub(crate) const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// Default [`Limits::max_event`]: 16 MiB.
pub(crate) const DEFAULT_MAX_EVENT: usize = 16 * 1024 * 1024;

/// The most a [`Parser`] buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (field name, colon and value) kept, in bytes; a longer
    /// one is skipped to its end and its event dropped.
    pub max_line: usize,
    /// Largest data of one event, in bytes; a larger event is dropped.
    pub max_event: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: DEFAULT_MAX_LINE,
            max_event: DEFAULT_MAX_EVENT,
        }
    }
}

/// What a [`Parser`] left out since it was last asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Lines longer than [`Limits::max_line`] (each drops its event),
    /// counted as soon as they pass the limit.
    pub long_lines: u64,
    /// Events dropped because their data passed [`Limits::max_event`].
    pub long_events: u64,
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The last event id at dispatch time: the latest `id:` seen on the
    /// stream, even from an earlier event; empty when none was ever set.
    pub id: String,
    /// The `event:` field, or `DEFAULT_EVENT_TYPE`.
    pub event_type: String,
    /// The `data:` lines joined with LF.
    pub data: String,
}

/// An incremental event-stream parser. Feed it bytes as they arrive with
/// [`Parser::push`]; it keeps the partial line between reads.
#[derive(Debug, Clone)]
pub struct Parser {
    /// Bytes of the line being read, not yet ended.
    line: Vec<u8>,
    /// While the stream's first bytes could still be a BOM, they wait here.
    head: Option<Vec<u8>>,
    /// The previous read ended with CR: an LF at the start of the next one
    /// belongs to that line end.
    skip_lf: bool,
    /// The data buffer of the event being built.
    data: String,
    /// The event type buffer of the event being built.
    event_type: String,
    /// The last event id buffer, set by `id:` fields.
    id_buffer: String,
    /// The source's last event id string, updated on dispatch: what a
    /// reconnection sends as `Last-Event-ID`.
    last_event_id: String,
    /// The reconnection time set by the latest valid `retry:` field.
    retry: Option<Duration>,
    limits: Limits,
    /// The line being read passed `max_line`: its bytes are dropped up to
    /// its end.
    skipping_line: bool,
    /// The event being built is dropped at its dispatch (too long, or a
    /// line of it was).
    dropping_event: bool,
    skipped: Skipped,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser at the start of a stream, with no last event id.
    pub fn new() -> Self {
        Parser {
            line: Vec::new(),
            head: Some(Vec::new()),
            skip_lf: false,
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry: None,
            limits: Limits::default(),
            skipping_line: false,
            dropping_event: false,
            skipped: Skipped::default(),
        }
    }

    /// The same parser with other [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// What was left out since the last call (and resets the counts).
    pub fn take_skipped(&mut self) -> Skipped {
        std::mem::take(&mut self.skipped)
    }

    /// A parser whose last event id is already `id`, to resume a stream.
    pub fn with_last_event_id(id: &str) -> Self {
        let mut parser = Parser::new();
        parser.id_buffer = id.to_string();
        parser.last_event_id = id.to_string();
        parser
    }

    /// The id to send as `Last-Event-ID` when reconnecting (empty: none).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time from the latest valid `retry:` field, if any.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Prepares for a new response after the previous one ended: an event
    /// that was not ended by a blank line is discarded, and the new stream
    /// may start with its own BOM. The last event id and the reconnection
    /// time are kept.
    pub fn reconnect(&mut self) {
        self.line.clear();
        self.head = Some(Vec::new());
        self.skip_lf = false;
        self.data.clear();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
        self.skipping_line = false;
        self.dropping_event = false;
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        let Some(head) = &mut self.head else {
            self.push_lines(chunk, out);
            return;
        };
        head.extend_from_slice(chunk);
        if head.len() < BOM.len() && BOM.starts_with(head) {
            return; // could still be a BOM split across reads
        }
        let head = self.head.take().unwrap_or_default();
        self.push_lines(head.strip_prefix(BOM).unwrap_or(&head), out);
    }

    /// Splits `chunk` into lines, continuing the partial line from before.
    fn push_lines(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) {
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.skipping_line {
                // The end of a line already counted as too long.
                self.skipping_line = false;
            } else if self.line.len() + end > self.limits.max_line {
                self.line.clear();
                self.skip_long_line();
                self.skipping_line = false;
            } else if self.line.is_empty() {
                self.process_line(&chunk[..end], out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.process_line(&line, out);
                line.clear();
                self.line = line; // keep the allocation
            }
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            chunk = &chunk[next..];
        }
        if self.skipping_line {
            return;
        }
        if self.line.len() + chunk.len() > self.limits.max_line {
            self.line = Vec::new();
            self.skip_long_line();
            return;
        }
        self.line.extend_from_slice(chunk);
    }

    /// A line passed `max_line`: it is counted, and dropped with its event.
    fn skip_long_line(&mut self) {
        self.skipping_line = true;
        self.skipped.long_lines += 1;
        self.drop_event();
    }

    /// The event being built will not be dispatched; its data is freed.
    fn drop_event(&mut self) {
        self.dropping_event = true;
        self.data = String::new();
    }

    /// Applies one complete line (without its line end).
    fn process_line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => self.event_type = value.into_owned(),
            b"data" if self.dropping_event => {}
            b"data" if self.data.len() + value.len() + 1 > self.limits.max_event => {
                self.skipped.long_events += 1;
                self.drop_event();
            }
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            b"id" if !value.contains('\0') => self.id_buffer = value.into_owned(),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits: only overflow can fail; a huge value saturates
                // instead of being ignored. Anything else is ignored.
                let millis = value.parse::<u64>().unwrap_or(u64::MAX);
                self.retry = Some(Duration::from_millis(millis));
            }
            _ => {} // unknown fields, a bad id or retry: ignored
        }
    }

    /// The blank-line step: hands over the event being built, if it has
    /// data, and starts a new one.
    fn dispatch(&mut self, out: &mut Vec<Event>) {
        self.last_event_id.clone_from(&self.id_buffer);
        if std::mem::take(&mut self.dropping_event) {
            self.data.clear();
            self.event_type.clear();
            return;
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = match std::mem::take(&mut self.event_type) {
            t if t.is_empty() => DEFAULT_EVENT_TYPE.to_string(),
            t => t,
        };
        out.push(Event {
            id: self.last_event_id.clone(),
            event_type,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses `input` in one read.
    fn parse(input: &[u8]) -> Vec<Event> {
        parse_chunks(&[input])
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        out
    }

    fn ev(id: &str, event_type: &str, data: &str) -> Event {
        Event {
            id: id.into(),
            event_type: event_type.into(),
            data: data.into(),
        }
    }

    fn msg(data: &str) -> Event {
        ev("", "message", data)
    }

    #[test]
    fn leading_bom_is_skipped() {
        assert_eq!(parse(b"\xEF\xBB\xBFdata: a\n\n"), [msg("a")]);
    }

    #[test]
    fn bom_split_across_reads_is_skipped() {
        assert_eq!(
            parse_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]),
            [msg("a")]
        );
    }

    #[test]
    fn only_the_first_bom_is_skipped() {
        // A second BOM is part of the field name, which is then unknown.
        assert_eq!(
            parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"),
            [msg("b")]
        );
    }

    #[test]
    fn bom_later_in_the_stream_is_data() {
        assert_eq!(parse("data: \u{feff}x\n\n".as_bytes()), [msg("\u{feff}x")]);
    }

    #[test]
    fn lf_cr_and_crlf_all_end_lines() {
        let expected = [msg("a\nb"), msg("c")];
        assert_eq!(parse(b"data: a\ndata: b\n\ndata: c\n\n"), expected);
        assert_eq!(parse(b"data: a\rdata: b\r\rdata: c\r\r"), expected);
        assert_eq!(
            parse(b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"),
            expected
        );
        assert_eq!(parse(b"data: a\rdata: b\r\n\ndata: c\n\r"), expected);
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        assert_eq!(
            parse_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
            [msg("a\nb")]
        );
    }

    #[test]
    fn lone_cr_at_the_end_of_a_read_dispatches_at_once() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(b"data: a\r\r", &mut out);
        assert_eq!(out, [msg("a")], "must not wait for the next read");
        parser.push(b"data: b\r\r", &mut out);
        assert_eq!(out, [msg("a"), msg("b")]);
    }

    #[test]
    fn lines_and_characters_split_across_reads() {
        let input = "id: 7\nevent: größe\ndata: 日本語\n\n".as_bytes();
        for size in 1..input.len() {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(
                parse_chunks(&chunks),
                [ev("7", "größe", "日本語")],
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn comments_are_ignored() {
        assert_eq!(
            parse(b": ping\n\n:\ndata: a\n: in the middle\ndata: b\n\n"),
            [msg("a\nb")]
        );
    }

    #[test]
    fn field_without_colon_has_an_empty_value() {
        // `data` alone appends an empty line; `event` alone resets the type.
        assert_eq!(parse(b"data\n\n"), [msg("")]);
        assert_eq!(parse(b"data\ndata\n\n"), [msg("\n")]);
        assert_eq!(parse(b"event: x\nevent\ndata: a\n\n"), [msg("a")]);
    }

    #[test]
    fn one_leading_space_is_removed_after_the_colon() {
        assert_eq!(
            parse(b"data:a\n\ndata: a\n\ndata:  a\n\ndata:\ta\n\n"),
            [msg("a"), msg("a"), msg(" a"), msg("\ta")]
        );
    }

    #[test]
    fn only_the_first_colon_separates_name_and_value() {
        assert_eq!(parse(b"data: a: b:c\n\n"), [msg("a: b:c")]);
    }

    #[test]
    fn empty_data_lines_are_kept() {
        assert_eq!(parse(b"data:\n\n"), [msg("")]);
        assert_eq!(parse(b"data: a\ndata:\ndata: b\n\n"), [msg("a\n\nb")]);
        assert_eq!(parse(b"data: z\ndata:\n\n"), [msg("z\n")]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            parse(b"foo: bar\ndata: a\nDATA: b\nData: c\n\n"),
            [msg("a")]
        );
    }

    #[test]
    fn id_with_nul_is_ignored() {
        assert_eq!(
            parse(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"),
            [ev("1", "message", "a"), ev("1", "message", "b")]
        );
    }

    #[test]
    fn empty_id_clears_the_last_event_id() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(b"id: 1\ndata: a\n\nid\ndata: b\n\n", &mut out);
        assert_eq!(out, [ev("1", "message", "a"), msg("b")]);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn retry_sets_the_reconnection_time() {
        let mut parser = Parser::new();
        parser.push(b"retry: 2500\n\n", &mut Vec::new());
        assert_eq!(parser.retry(), Some(Duration::from_millis(2500)));
        parser.push(b"retry:0\n", &mut Vec::new());
        assert_eq!(parser.retry(), Some(Duration::ZERO));
    }

    #[test]
    fn retry_with_non_digits_is_ignored() {
        for bad in ["+5", "-5", "5s", " 5", "5 ", "1.5", "", "٣"] {
            let mut parser = Parser::new();
            parser.push(b"retry: 100\n", &mut Vec::new());
            parser.push(format!("retry: {bad}\n").as_bytes(), &mut Vec::new());
            assert_eq!(
                parser.retry(),
                Some(Duration::from_millis(100)),
                "retry: {bad:?}"
            );
        }
    }

    #[test]
    fn retry_alone_dispatches_no_event() {
        assert_eq!(parse(b"retry: 3000\n\n"), []);
    }

    #[test]
    fn dispatch_happens_on_a_blank_line_only() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(b"data: a\ndata: b\n", &mut out);
        assert_eq!(out, []);
        parser.push(b"\n", &mut out);
        assert_eq!(out, [msg("a\nb")]);
    }

    #[test]
    fn unfinished_event_is_discarded_on_reconnect() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(b"id: 1\ndata: a\n\nid: 2\nevent: x\ndata: half", &mut out);
        parser.reconnect();
        assert_eq!(
            parser.last_event_id(),
            "1",
            "the id of an undispatched block is not used"
        );
        parser.push(b"data: b\n\n", &mut out);
        assert_eq!(out, [ev("1", "message", "a"), ev("1", "message", "b")]);
    }

    #[test]
    fn event_with_only_type_and_id_dispatches_nothing_but_keeps_the_id() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(b"event: x\nid: 9\n\ndata: a\n\n", &mut out);
        assert_eq!(
            out,
            [ev("9", "message", "a")],
            "the type buffer is reset too"
        );
        assert_eq!(parser.last_event_id(), "9");
    }

    #[test]
    fn last_event_id_is_kept_across_events_without_an_id() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(
            b"id: 5\ndata: a\n\ndata: b\n\nevent: t\ndata: c\n\n",
            &mut out,
        );
        assert_eq!(
            out,
            [
                ev("5", "message", "a"),
                ev("5", "message", "b"),
                ev("5", "t", "c")
            ]
        );
        assert_eq!(parser.last_event_id(), "5");
    }

    #[test]
    fn resumed_parser_starts_from_the_given_id() {
        let mut parser = Parser::with_last_event_id("41");
        let mut out = Vec::new();
        parser.push(b"data: a\n\n", &mut out);
        assert_eq!(out, [ev("41", "message", "a")]);
    }

    #[test]
    fn event_type_applies_to_one_event_only() {
        assert_eq!(
            parse(b"event: add\ndata: 1\n\ndata: 2\n\n"),
            [ev("", "add", "1"), msg("2")]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(parse(b"data: a\xFFb\n\n"), [msg("a\u{fffd}b")]);
    }

    #[test]
    fn whatwg_spec_examples() {
        assert_eq!(
            parse(b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"),
            [ev("1", "message", "first event"), msg("second event"), msg(" third event")]
        );
        assert_eq!(parse(b"data\n\ndata\ndata\n\ndata:"), [msg(""), msg("\n")]);
    }

    #[test]
    fn tailcast_first_frame_and_heartbeat() {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        parser.push(&crate::sse::encode_retry(3000), &mut out);
        parser.push(crate::sse::PING, &mut out);
        parser.push(
            &crate::sse::encode_event(Some("e-1"), "message", "x"),
            &mut out,
        );
        assert_eq!(out, [ev("e-1", "message", "x")]);
        assert_eq!(parser.retry(), Some(Duration::from_millis(3000)));
    }

    /// Data made of arbitrary text pieces joined by any mix of CR, LF and
    /// CRLF.
    fn limited(limits: Limits, chunks: &[&[u8]]) -> (Vec<Event>, Skipped, Parser) {
        let mut parser = Parser::new().with_limits(limits);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        let skipped = parser.take_skipped();
        (out, skipped, parser)
    }

    #[test]
    fn a_line_past_max_line_is_skipped_with_its_event_and_not_kept() {
        let limits = Limits {
            max_line: 16,
            max_event: 1024,
        };
        // Within one read and across reads: nothing of it is buffered.
        let long = format!("data: {}", "x".repeat(100));
        let (out, skipped, parser) = limited(
            limits,
            &[
                b"data: a\n",
                &long.as_bytes()[..50],
                &long.as_bytes()[50..],
                b"\ndata: b\n\nid: 7\ndata: ",
                "y".repeat(40).as_bytes(),
                b"\n\ndata: after\n\n",
            ],
        );
        assert_eq!(out, [ev("7", "message", "after")]);
        assert_eq!(
            skipped,
            Skipped {
                long_lines: 2,
                long_events: 0
            }
        );
        assert!(parser.line.capacity() <= 16, "{}", parser.line.capacity());
        // Exactly max_line is fine.
        let (out, skipped, _) = limited(limits, &[b"data: 0123456789\n\n"]);
        assert_eq!(
            (out, skipped),
            (vec![msg("0123456789")], Skipped::default())
        );
    }

    #[test]
    fn an_event_past_max_event_is_dropped_and_the_stream_goes_on() {
        let limits = Limits {
            max_line: 64,
            max_event: 10,
        };
        let (out, skipped, parser) = limited(
            limits,
            &[b"data: 12345\ndata: 67890\ndata: more\n\ndata: 1234\ndata: 5\n\n"],
        );
        assert_eq!(out, [msg("1234\n5")]);
        assert_eq!(skipped.long_events, 1);
        assert!(parser.data.capacity() <= 10);
    }

    fn data_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => any::<String>(),
            1 => Just(String::new()),
            2 => prop::sample::select(vec!["\r", "\n", "\r\n", "\n\r", "\r\r", "\n\n"]).prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    /// An id or type: the encoder drops CR, LF and NUL from them.
    fn field_strategy() -> impl Strategy<Value = String> {
        any::<String>().prop_map(|s| s.replace(['\r', '\n', '\0'], ""))
    }

    fn normalise_line_breaks(data: &str) -> String {
        data.replace("\r\n", "\n").replace('\r', "\n")
    }

    proptest! {
        #[test]
        fn encoder_then_parser_returns_every_event_unchanged(
            events in prop::collection::vec((prop::option::of(field_strategy()), field_strategy(), data_strategy()), 1..6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut wire = Vec::new();
            for (id, event_type, data) in &events {
                wire.extend_from_slice(&crate::sse::encode_event(id.as_deref(), event_type, data));
            }
            // Feed the bytes in pieces cut anywhere, even inside a character.
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            at.push(0);
            at.push(wire.len());
            at.sort_unstable();
            let mut parser = Parser::new();
            let mut out = Vec::new();
            for pair in at.windows(2) {
                parser.push(&wire[pair[0]..pair[1]], &mut out);
            }
            prop_assert_eq!(out.len(), events.len());
            let mut last_id = String::new();
            for ((id, event_type, data), got) in events.iter().zip(&out) {
                if let Some(id) = id {
                    last_id.clone_from(id);
                }
                let expected_type = if event_type.is_empty() { DEFAULT_EVENT_TYPE } else { event_type.as_str() };
                prop_assert_eq!(&got.id, &last_id);
                prop_assert_eq!(&got.event_type, expected_type);
                prop_assert_eq!(&got.data, &normalise_line_breaks(data));
            }
        }
    }
}
