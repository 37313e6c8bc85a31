//! Bytes in, lines out: the framing half of the follower.
//!
//! [`LineSplitter`] knows line endings, UTF-8 and the `--max-line` limit. It
//! does no I/O and keeps no timers; whoever feeds it decides when a held
//! partial line has waited long enough to be flushed.

/// Turns a byte stream into lines.
///
/// - LF ends a line; a CR just before the LF is dropped, any other CR is kept.
/// - A line longer than `max_line` bytes is cut into pieces of at most
///   `max_line` raw bytes. A cut that would fall inside a valid UTF-8
///   character moves back to the start of that character, so splitting never
///   damages text; only when `max_line` is smaller than the character itself
///   is the character cut.
/// - Invalid UTF-8 becomes U+FFFD. Each replacement takes 3 bytes, so a piece
///   of binary data can come out longer than `max_line` bytes of text, up to
///   3 × `max_line`; valid UTF-8 never does.
/// - NUL and other control characters pass through unchanged.
/// - The bytes after the last LF are held as a partial line until more
///   bytes arrive or [`LineSplitter::flush`] is called.
///
/// Pieces depend only on the bytes, never on how they were chunked: feeding
/// `b"ab"` then `b"c\n"` gives the same output as `b"abc\n"`. Memory held
/// stays below `max_line` plus a few bytes, whatever the input.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max_line: usize,
    /// The current line's bytes not yet emitted. Reused across lines so that
    /// steady-state splitting allocates only the `String`s it hands out.
    pending: Vec<u8>,
    /// The last thing that happened was a flush of a partial line, so an LF
    /// (or CRLF) arriving next ends that already-emitted line, not a new one.
    after_flush: bool,
    /// Position in the source of the next byte fed (see
    /// [`LineSplitter::push_at`]).
    offset: u64,
}

/// Bytes beyond `max_line` that must be seen before the first piece of a long
/// line is cut: up to 3 to judge whether a character straddles the cut, and
/// 1 more so the byte at the cut cannot be the CR of a closing CRLF.
const LOOKAHEAD: usize = 4;

impl LineSplitter {
    /// Creates a splitter that cuts lines longer than `max_line` bytes.
    /// A `max_line` of 0 is treated as 1.
    pub(crate) fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line: max_line.max(1),
            pending: Vec::new(),
            after_flush: false,
            offset: 0,
        }
    }

    /// Feeds `bytes` and calls `emit` with each line they complete, in order.
    pub(crate) fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(String)) {
        self.push_raw(bytes, |piece, _| emit(to_text(piece)));
    }

    /// Like [`LineSplitter::push`], with each line's end: the source
    /// position from which reading again gives exactly the lines after
    /// this one (just after the LF, or after a piece's last byte for a cut
    /// or flushed line). Positions count from [`LineSplitter::start_at`].
    pub(crate) fn push_at(&mut self, bytes: &[u8], mut emit: impl FnMut(String, u64)) {
        self.push_raw(bytes, |piece, end| emit(to_text(piece), end));
    }

    /// Emits the held partial line, if any, as a line of its own.
    ///
    /// If the next bytes fed are an LF or a CRLF, they are taken as the end of
    /// this flushed line and produce no empty line.
    pub(crate) fn flush(&mut self, mut emit: impl FnMut(String)) {
        self.flush_raw(|piece, _| emit(to_text(piece)));
    }

    /// [`LineSplitter::flush`] with each line's end, as [`LineSplitter::push_at`].
    pub(crate) fn flush_at(&mut self, mut emit: impl FnMut(String, u64)) {
        self.flush_raw(|piece, end| emit(to_text(piece), end));
    }

    /// Whether bytes of an unfinished line are held.
    pub(crate) fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Forgets the held partial line, as when its source has gone.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.after_flush = false;
    }

    /// Forgets any held bytes and takes the next byte fed to be at
    /// `offset` of the source. `mid_line`: the byte before `offset` is not
    /// an LF, so `offset` is the end of a piece emitted before (a flushed
    /// partial line or a cut long line), and an LF or CRLF right there ends
    /// that line rather than making an empty one.
    pub(crate) fn start_at(&mut self, offset: u64, mid_line: bool) {
        self.clear();
        self.offset = offset;
        self.after_flush = mid_line;
    }

    /// [`LineSplitter::push`] before UTF-8 conversion: `emit` sees raw
    /// pieces and their end positions.
    pub(crate) fn push_raw(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8], u64)) {
        // Source position of `bytes[0]`.
        let mut at = self.offset;
        self.offset += bytes.len() as u64;
        if self.after_flush && !bytes.is_empty() {
            self.after_flush = false;
            if bytes.starts_with(b"\n") {
                bytes = &bytes[1..];
                at += 1;
            } else if bytes.starts_with(b"\r\n") {
                bytes = &bytes[2..];
                at += 2;
            }
        }
        while let Some(lf) = memchr::memchr(b'\n', bytes) {
            let (line, rest) = (&bytes[..lf], &bytes[lf + 1..]);
            let end = at + lf as u64 + 1;
            if self.pending.is_empty() {
                split_line(strip_cr(line), at, end, self.max_line, &mut emit);
            } else {
                let start = at - self.pending.len() as u64;
                self.pending.extend_from_slice(line);
                split_line(
                    strip_cr(&self.pending),
                    start,
                    end,
                    self.max_line,
                    &mut emit,
                );
                self.pending.clear();
            }
            bytes = rest;
            at = end;
        }
        if bytes.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            let start = emit_leading_pieces(bytes, at, self.max_line, &mut emit);
            self.pending.extend_from_slice(&bytes[start..]);
        } else {
            let from = at - self.pending.len() as u64;
            self.pending.extend_from_slice(bytes);
            let start = emit_leading_pieces(&self.pending, from, self.max_line, &mut emit);
            self.pending.drain(..start);
        }
    }

    /// [`LineSplitter::flush`] before UTF-8 conversion.
    pub(crate) fn flush_raw(&mut self, mut emit: impl FnMut(&[u8], u64)) {
        if self.pending.is_empty() {
            return;
        }
        let start = self.offset - self.pending.len() as u64;
        let end = self.offset;
        split_line(
            strip_cr(&self.pending),
            start,
            end,
            self.max_line,
            &mut emit,
        );
        self.pending.clear();
        self.after_flush = true;
    }
}

fn to_text(piece: &[u8]) -> String {
    String::from_utf8_lossy(piece).into_owned()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Emits every piece of a complete line (an empty line is one empty piece).
/// The line starts at source position `start`; its last piece ends at `end`
/// (after its line ending), the others just after their last byte.
fn split_line(
    mut line: &[u8],
    mut start: u64,
    end: u64,
    max_line: usize,
    emit: &mut impl FnMut(&[u8], u64),
) {
    while line.len() > max_line {
        let cut = cut_point(line, max_line);
        start += cut as u64;
        emit(&line[..cut], start);
        line = &line[cut..];
    }
    emit(line, end);
}

/// Emits the pieces of an unfinished line (starting at source position
/// `from`) that no later byte can change, and returns how many bytes of
/// `partial` they used.
fn emit_leading_pieces(
    partial: &[u8],
    from: u64,
    max_line: usize,
    emit: &mut impl FnMut(&[u8], u64),
) -> usize {
    let mut start = 0;
    while partial.len() - start > max_line + LOOKAHEAD {
        let cut = cut_point(&partial[start..], max_line);
        emit(&partial[start..start + cut], from + (start + cut) as u64);
        start += cut;
    }
    start
}

/// Where to end the first piece of `line`, which is longer than `max_line`:
/// at `max_line`, or earlier at the start of a valid UTF-8 character that
/// would otherwise straddle the cut. Reads at most `max_line + 3` bytes.
fn cut_point(line: &[u8], max_line: usize) -> usize {
    if !is_continuation(line[max_line]) {
        return max_line;
    }
    let lowest = max_line.saturating_sub(3);
    let Some(start) = (lowest..max_line)
        .rev()
        .find(|&i| !is_continuation(line[i]))
    else {
        return max_line;
    };
    let len = match line[start] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return max_line,
    };
    let straddles = start + len > max_line;
    let valid = line
        .get(start..start + len)
        .is_some_and(|ch| std::str::from_utf8(ch).is_ok());
    if start > 0 && straddles && valid {
        start
    } else {
        max_line
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(max_line: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new(max_line);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |line| out.push(line));
        }
        out
    }

    /// Splits `data` fed in `chunks`-sized pieces, flushing at `flushes`
    /// (byte indexes) and at the end; returns each line with its end.
    fn with_ends(
        splitter: &mut LineSplitter,
        data: &[u8],
        chunk: usize,
        flushes: &[usize],
    ) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let mut end = (at + chunk).min(data.len());
            if let Some(&f) = flushes.iter().filter(|&&f| f > at && f < end).min() {
                end = f;
            }
            splitter.push_at(&data[at..end], |l, e| out.push((l, e)));
            if flushes.contains(&end) {
                splitter.flush_at(|l, e| out.push((l, e)));
            }
            at = end;
        }
        splitter.flush_at(|l, e| out.push((l, e)));
        out
    }

    #[test]
    fn line_ends_are_source_positions() {
        let mut splitter = LineSplitter::new(4);
        splitter.start_at(100, false);
        let out = with_ends(&mut splitter, b"ab\r\nabcdefgh\n\nxy", 3, &[]);
        assert_eq!(
            out,
            [
                ("ab".to_string(), 104),
                ("abcd".to_string(), 108),
                ("efgh".to_string(), 113),
                (String::new(), 114),
                ("xy".to_string(), 116),
            ]
        );
    }

    proptest! {
        /// Reading again from any line's end gives exactly the lines after
        /// it: what a follower resuming from a checkpoint relies on.
        #[test]
        fn resuming_at_a_line_end_gives_exactly_the_following_lines(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0xE6u8), Just(0xBCu8), Just(0xA2u8), b'a'..b'e'],
                0..200,
            ),
            max_line in 1usize..12,
            chunk in 1usize..40,
            flushes in proptest::collection::vec(0usize..200, 0..3),
        ) {
            let mut splitter = LineSplitter::new(max_line);
            let all = with_ends(&mut splitter, &data, chunk, &flushes);
            let mut last_end = 0;
            for (i, (_, end)) in all.iter().enumerate() {
                prop_assert!(*end >= last_end && *end <= data.len() as u64);
                last_end = *end;
                let end = *end as usize;
                let mid_line = end > 0 && data[end - 1] != b'\n';
                let mut again = LineSplitter::new(max_line);
                again.start_at(end as u64, mid_line);
                let later: Vec<_> = flushes.iter().copied().filter(|&f| f > end).map(|f| f - end).collect();
                let rest = with_ends(&mut again, &data[end..], chunk, &later);
                prop_assert_eq!(&rest[..], &all[i + 1..], "resumed at {}", end);
            }
        }
    }

    #[test]
    fn lf_ends_lines_and_partial_is_held() {
        let mut splitter = LineSplitter::new(100);
        let mut out = Vec::new();
        splitter.push(b"one\ntwo\n\nthr", |l| out.push(l));
        assert_eq!(out, ["one", "two", ""]);
        assert!(splitter.has_partial());
        splitter.push(b"ee\n", |l| out.push(l));
        assert_eq!(out, ["one", "two", "", "three"]);
        assert!(!splitter.has_partial());
    }

    #[test]
    fn crlf_is_stripped_but_other_cr_kept() {
        assert_eq!(lines(100, &[b"a\r\nb\rc\r\n\r\n"]), ["a", "b\rc", ""]);
        assert_eq!(lines(100, &[b"a\r", b"\nb\n"]), ["a", "b"]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        assert_eq!(lines(100, &[b"ok\xff\xfe\n"]), ["ok\u{FFFD}\u{FFFD}"]);
    }

    #[test]
    fn nul_and_control_chars_pass_through() {
        assert_eq!(lines(100, &[b"a\0b\x1b[31mc\x07\n"]), ["a\0b\x1b[31mc\x07"]);
    }

    #[test]
    fn long_ascii_line_is_cut_at_max_line() {
        assert_eq!(lines(4, &[b"abcdefghij\n"]), ["abcd", "efgh", "ij"]);
        assert_eq!(lines(4, &[b"abcdefgh\n"]), ["abcd", "efgh"]);
        assert_eq!(lines(4, &[b"abcd\r\n"]), ["abcd"]);
    }

    #[test]
    fn long_line_cut_moves_back_to_char_start() {
        // "é" is 2 bytes, "漢" 3, "😀" 4.
        let text = "aé漢😀b漢字";
        let out = lines(5, &[format!("{text}\n").as_bytes()]);
        assert_eq!(out, ["aé", "漢", "😀b", "漢", "字"]);
        assert!(out.iter().all(|p| p.len() <= 5));
        assert_eq!(out.concat(), text);
    }

    #[test]
    fn char_wider_than_max_line_is_cut_lossily() {
        assert_eq!(lines(2, &["漢\n".as_bytes()]), ["\u{FFFD}", "\u{FFFD}"]);
    }

    #[test]
    fn long_partial_line_is_emitted_before_its_newline() {
        let mut splitter = LineSplitter::new(4);
        let mut out = Vec::new();
        splitter.push(b"abcdefghijkl", |l| out.push(l));
        assert_eq!(out, ["abcd"]);
        assert!(splitter.pending.len() <= 4 + LOOKAHEAD);
        splitter.push(b"\n", |l| out.push(l));
        assert_eq!(out, ["abcd", "efgh", "ijkl"]);
    }

    #[test]
    fn flush_emits_partial_and_swallows_its_late_newline() {
        let mut splitter = LineSplitter::new(100);
        let mut out = Vec::new();
        splitter.push(b"done\npart", |l| out.push(l));
        splitter.flush(|l| out.push(l));
        assert_eq!(out, ["done", "part"]);
        splitter.flush(|l| out.push(l));
        splitter.push(b"\r\nnext\n", |l| out.push(l));
        assert_eq!(out, ["done", "part", "next"]);
    }

    #[test]
    fn flush_then_more_text_starts_a_new_line() {
        let mut splitter = LineSplitter::new(100);
        let mut out = Vec::new();
        splitter.push(b"hel", |l| out.push(l));
        splitter.flush(|l| out.push(l));
        splitter.push(b"lo\n\n", |l| out.push(l));
        assert_eq!(out, ["hel", "lo", ""]);
    }

    fn raw_pieces(max_line: usize, data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::new(max_line);
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
            let end = cut.clamp(start, data.len());
            splitter.push_raw(&data[start..end], |p, _| out.push(p.to_vec()));
            start = end;
        }
        splitter.flush_raw(|p, _| out.push(p.to_vec()));
        out
    }

    fn byte_soup() -> impl Strategy<Value = Vec<u8>> {
        let atom = prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just("é".as_bytes().to_vec()),
            Just("漢".as_bytes().to_vec()),
            Just("😀".as_bytes().to_vec()),
            Just(vec![0xff]),
            Just(vec![0xe6, 0xbc]),
            proptest::collection::vec(any::<u8>(), 1..4),
            "[a-z ]{1,12}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(atom, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_pieces(
            data in byte_soup(),
            mut cuts in proptest::collection::vec(0usize..400, 0..12),
            max_line in 1usize..16,
        ) {
            cuts.sort_unstable();
            let whole = raw_pieces(max_line, &data, &[]);
            let chunked = raw_pieces(max_line, &data, &cuts);
            prop_assert_eq!(&whole, &chunked);
            prop_assert!(whole.iter().all(|p| p.len() <= max_line));

            let text_pieces: Vec<String> = whole.iter().map(|p| to_text(p)).collect();
            let mut splitter = LineSplitter::new(max_line);
            let mut text = Vec::new();
            splitter.push(&data, |l| text.push(l));
            splitter.flush(|l| text.push(l));
            prop_assert_eq!(text_pieces, text);
        }

        #[test]
        fn pieces_keep_every_byte_but_line_endings(data in byte_soup(), max_line in 1usize..16) {
            let joined = raw_pieces(max_line, &data, &[]).concat();
            let mut expected = Vec::new();
            let mut lines = data.split(|&b| b == b'\n').peekable();
            while let Some(line) = lines.next() {
                expected.extend_from_slice(strip_cr(line));
                if lines.peek().is_none() {
                    break;
                }
            }
            prop_assert_eq!(joined, expected);
        }

        #[test]
        fn valid_utf8_is_never_damaged(text in "[a-zé漢😀\n]{0,80}", max_line in 4usize..16) {
            let mut splitter = LineSplitter::new(max_line);
            let mut out = Vec::new();
            splitter.push(text.as_bytes(), |l| out.push(l));
            splitter.flush(|l| out.push(l));
            let intact = out.iter().all(|p| p.len() <= max_line && !p.contains(char::REPLACEMENT_CHARACTER));
            prop_assert!(intact);
            prop_assert_eq!(out.concat(), text.replace('\n', ""));
        }
    }
}
