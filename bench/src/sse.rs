//! Incremental decoding of an SSE response body: HTTP/1.1 chunked transfer
//! coding (when the server uses it) and the SSE line format on top.
//!
//! Both decoders are push-based state machines fed with whatever a socket
//! read returned, so one small read buffer per connection is enough. Only
//! what the load tool needs is parsed: `event:` and `data:` fields and the
//! blank line that dispatches an event; `id:`, `retry:` and comments are
//! skipped.

/// Most bytes one SSE line may hold before the stream is declared broken.
const MAX_LINE: usize = 1 << 20;

/// Decodes the chunked transfer coding, handing out body bytes.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: ChunkState,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of a chunk size.
    #[default]
    Size,
    /// Skipping a chunk extension up to the line end.
    Extension,
    /// Expecting the LF that ends the size line.
    SizeLf,
    /// Inside chunk data, `size` bytes left.
    Data,
    /// Expecting the CR LF after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// The last chunk was seen.
    Done,
}

impl Dechunker {
    /// Feeds raw bytes; calls `out` with each run of body bytes. Returns
    /// `Err` on a framing error, `Ok(true)` once the final chunk was seen.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<bool, &'static str> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                            self.size =
                                self.size.checked_mul(16).ok_or("chunk size overflow")? + digit;
                        }
                        b';' | b' ' | b'\t' => self.state = ChunkState::Extension,
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' => self.after_size(),
                        _ => return Err("bad chunk size"),
                    }
                }
                ChunkState::Extension => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' => self.after_size(),
                        _ => {}
                    }
                }
                ChunkState::SizeLf => {
                    if input[0] != b'\n' {
                        return Err("bad chunk size line end");
                    }
                    input = &input[1..];
                    self.after_size();
                }
                ChunkState::Data => {
                    let n = (self.size as usize).min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    match input[0] {
                        b'\r' => self.state = ChunkState::DataLf,
                        b'\n' => self.state = ChunkState::Size,
                        _ => return Err("missing CRLF after chunk data"),
                    }
                    input = &input[1..];
                }
                ChunkState::DataLf => {
                    if input[0] != b'\n' {
                        return Err("missing LF after chunk data");
                    }
                    input = &input[1..];
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => return Ok(true),
            }
        }
        Ok(self.state == ChunkState::Done)
    }

    fn after_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data
        };
    }
}

/// Parses SSE lines into events.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event_type: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// A CR ended the previous line; a LF right after it is part of it.
    after_cr: bool,
}

impl SseParser {
    /// Feeds body bytes; calls `on_event(type, data)` for each complete
    /// event (`type` is empty when the event had no `event:` field).
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on_event: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), &'static str> {
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    if self.line.len() + input.len() > MAX_LINE {
                        return Err("SSE line too long");
                    }
                    self.line.extend_from_slice(input);
                    return Ok(());
                }
                Some(at) => {
                    self.after_cr = input[at] == b'\r';
                    if self.line.is_empty() {
                        self.process_line(&input[..at], on_event);
                    } else {
                        self.line.extend_from_slice(&input[..at]);
                        let line = std::mem::take(&mut self.line);
                        self.process_line(&line, on_event);
                        self.line = line;
                        self.line.clear();
                    }
                    input = &input[at + 1..];
                }
            }
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8], &[u8])) {
        if line.is_empty() {
            if self.has_data {
                on_event(&self.event_type, &self.data);
            }
            self.event_type.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &[u8], split: usize) -> Vec<(String, String)> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for part in body.chunks(split.max(1)) {
            parser
                .feed(part, &mut |t, d| {
                    out.push((
                        String::from_utf8_lossy(t).into_owned(),
                        String::from_utf8_lossy(d).into_owned(),
                    ))
                })
                .unwrap();
        }
        out
    }

    #[test]
    fn parses_events_across_any_split() {
        let body = b"retry: 3000\n\nid: 1\ndata: a b\n\n: ping\n\nevent: reset\ndata: {}\n\ndata: x\r\ndata: y\r\n\r\n";
        for split in 1..body.len() {
            assert_eq!(
                events(body, split),
                [
                    ("".into(), "a b".into()),
                    ("reset".into(), "{}".into()),
                    ("".into(), "x\ny".into())
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn dechunks_across_any_split() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 1..raw.len() {
            let mut d = Dechunker::default();
            let mut body = Vec::new();
            let mut done = false;
            for part in raw.chunks(split) {
                done = d.feed(part, &mut |b| body.extend_from_slice(b)).unwrap();
            }
            assert!(done);
            assert_eq!(body, b"hello, world");
        }
    }

    #[test]
    fn bad_chunk_size_is_an_error() {
        let mut d = Dechunker::default();
        assert!(d.feed(b"zz\r\n", &mut |_| {}).is_err());
    }
}
