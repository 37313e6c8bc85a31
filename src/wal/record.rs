//! The byte format of one log record, and nothing else: no files, no I/O.
//!
//! ```text
//! record  = len:u32 crc:u32 body            (little endian)
//! crc     = CRC32C over the 4 bytes of len, then body
//! body    = seq:u64 time_ms:i64 channel_len:u8 flags:u8 type_len:u16
//!           [source]                         (when flags bit 0 is set)
//!           channel type data                (UTF-8; data is the rest)
//! source  = dev:u64 ino:u64 offset:u64 fp_len:u32 fp_crc:u32
//! ```
//!
//! The checksum covers the length too, so a length field damaged by a torn
//! write is caught instead of sending the reader on a long skip. A record
//! that does not decode cleanly is never returned: [`decode`] says why it
//! stopped, and the caller cuts the log there.

use std::fmt;

use crate::follow::{FilePosition, Fingerprint};

/// Bytes before the body: length and checksum.
pub(crate) const HEADER_LEN: usize = 8;
/// Fixed part of the body: seq, time, channel length, flags, type length.
const FIXED_LEN: usize = 8 + 8 + 1 + 1 + 2;
/// Bytes of an encoded [`FilePosition`].
const SOURCE_LEN: usize = 8 + 8 + 8 + 4 + 4;
/// Flag bit: the record carries a [`FilePosition`].
const FLAG_SOURCE: u8 = 1;

/// Longest channel name a record can hold (the hub allows 128 characters
/// of ASCII, so this never bites).
pub(crate) const MAX_CHANNEL_LEN: usize = u8::MAX as usize;
/// Longest event type a record can hold.
pub(crate) const MAX_TYPE_LEN: usize = u16::MAX as usize;
/// Largest body accepted when reading: a length above it is damage, not a
/// record (publish bodies and log lines are far smaller).
pub(crate) const MAX_BODY_LEN: usize = 1 << 30;

/// An event to append, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRecord<'a> {
    /// Position in the hub's global order; strictly increasing in the log.
    pub seq: u64,
    /// Publication time, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Channel name.
    pub channel: &'a str,
    /// SSE event type.
    pub event_type: &'a str,
    /// Event data.
    pub data: &'a str,
    /// For log lines: where in the file the line ended.
    pub source: Option<FilePosition>,
}

/// A record read back from the log, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    /// Position in the global order.
    pub seq: u64,
    /// Publication time, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Channel name.
    pub channel: &'a str,
    /// SSE event type.
    pub event_type: &'a str,
    /// Event data.
    pub data: &'a str,
    /// For log lines: where in the file the line ended.
    pub source: Option<FilePosition>,
}

/// A record read back from the log, owning its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Position in the global order.
    pub seq: u64,
    /// Publication time, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Channel name.
    pub channel: Box<str>,
    /// SSE event type.
    pub event_type: Box<str>,
    /// Event data.
    pub data: Box<str>,
    /// For log lines: where in the file the line ended.
    pub source: Option<FilePosition>,
}

impl RecordView<'_> {
    /// An owned copy.
    pub(crate) fn to_record(self) -> Record {
        Record {
            seq: self.seq,
            time_ms: self.time_ms,
            channel: self.channel.into(),
            event_type: self.event_type.into(),
            data: self.data.into(),
            source: self.source,
        }
    }
}

/// Why a record cannot be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The channel name is longer than [`MAX_CHANNEL_LEN`] bytes.
    #[error("channel name of {0} bytes is too long for the log")]
    ChannelTooLong(usize),
    /// The event type is longer than [`MAX_TYPE_LEN`] bytes.
    #[error("event type of {0} bytes is too long for the log")]
    TypeTooLong(usize),
    /// The record is larger than [`MAX_BODY_LEN`].
    #[error("event of {0} bytes is too large for the log")]
    TooLarge(usize),
}

/// Bytes `record` takes in the log.
pub(crate) fn encoded_len(record: &NewRecord<'_>) -> usize {
    HEADER_LEN + body_len(record)
}

fn body_len(record: &NewRecord<'_>) -> usize {
    FIXED_LEN
        + if record.source.is_some() {
            SOURCE_LEN
        } else {
            0
        }
        + record.channel.len()
        + record.event_type.len()
        + record.data.len()
}

/// Appends the encoded record to `out`.
///
/// # Errors
/// A field too long for the format; `out` is left as it was.
pub(crate) fn encode(record: &NewRecord<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if record.channel.len() > MAX_CHANNEL_LEN {
        return Err(EncodeError::ChannelTooLong(record.channel.len()));
    }
    if record.event_type.len() > MAX_TYPE_LEN {
        return Err(EncodeError::TypeTooLong(record.event_type.len()));
    }
    let body = body_len(record);
    if body > MAX_BODY_LEN {
        return Err(EncodeError::TooLarge(body));
    }
    out.reserve(HEADER_LEN + body);
    let start = out.len();
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.time_ms.to_le_bytes());
    out.push(record.channel.len() as u8);
    out.push(if record.source.is_some() {
        FLAG_SOURCE
    } else {
        0
    });
    out.extend_from_slice(&(record.event_type.len() as u16).to_le_bytes());
    if let Some(source) = &record.source {
        out.extend_from_slice(&source.dev.to_le_bytes());
        out.extend_from_slice(&source.ino.to_le_bytes());
        out.extend_from_slice(&source.offset.to_le_bytes());
        out.extend_from_slice(&source.fingerprint.len.to_le_bytes());
        out.extend_from_slice(&source.fingerprint.crc.to_le_bytes());
    }
    out.extend_from_slice(record.channel.as_bytes());
    out.extend_from_slice(record.event_type.as_bytes());
    out.extend_from_slice(record.data.as_bytes());
    let crc = checksum(&out[start..start + 4], &out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), body)
}

/// Why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The bytes end inside the record's header or body: a torn write.
    Truncated,
    /// The length is impossible (below the fixed part or above the limit).
    BadLength,
    /// The checksum does not match.
    BadChecksum,
    /// The checksum matches but the fields do not fit together or are not
    /// UTF-8 (a writer bug, never a torn write).
    BadFields,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Damage::Truncated => "record cut short",
            Damage::BadLength => "impossible record length",
            Damage::BadChecksum => "checksum mismatch",
            Damage::BadFields => "malformed record fields",
        })
    }
}

/// The length of the record starting `bytes`, from its header alone.
///
/// # Errors
/// [`Damage::Truncated`] if fewer than [`HEADER_LEN`] bytes are given,
/// [`Damage::BadLength`] for an impossible length.
pub(crate) fn peek_len(bytes: &[u8]) -> Result<usize, Damage> {
    if bytes.len() < HEADER_LEN {
        return Err(Damage::Truncated);
    }
    let body = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    if !(FIXED_LEN..=MAX_BODY_LEN).contains(&body) {
        return Err(Damage::BadLength);
    }
    Ok(HEADER_LEN + body)
}

/// Decodes the record at the start of `bytes`; returns it and the bytes it
/// took.
///
/// # Errors
/// The [`Damage`] found. Nothing damaged is ever returned as a record.
pub(crate) fn decode(bytes: &[u8]) -> Result<(RecordView<'_>, usize), Damage> {
    let total = peek_len(bytes)?;
    if bytes.len() < total {
        return Err(Damage::Truncated);
    }
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..total];
    if checksum(&bytes[0..4], body) != stored {
        return Err(Damage::BadChecksum);
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let seq = u64_at(0);
    let time_ms = u64_at(8) as i64;
    let channel_len = body[16] as usize;
    let flags = body[17];
    let type_len = u16::from_le_bytes([body[18], body[19]]) as usize;
    if flags & !FLAG_SOURCE != 0 {
        return Err(Damage::BadFields);
    }
    let mut at = FIXED_LEN;
    let source = if flags & FLAG_SOURCE != 0 {
        if body.len() < at + SOURCE_LEN {
            return Err(Damage::BadFields);
        }
        let source = FilePosition {
            dev: u64_at(at),
            ino: u64_at(at + 8),
            offset: u64_at(at + 16),
            fingerprint: Fingerprint {
                len: u32_at(at + 24),
                crc: u32_at(at + 28),
            },
        };
        at += SOURCE_LEN;
        Some(source)
    } else {
        None
    };
    if body.len() < at + channel_len + type_len {
        return Err(Damage::BadFields);
    }
    let text = |range: std::ops::Range<usize>| {
        std::str::from_utf8(&body[range]).map_err(|_| Damage::BadFields)
    };
    let channel = text(at..at + channel_len)?;
    let event_type = text(at + channel_len..at + channel_len + type_len)?;
    let data = text(at + channel_len + type_len..body.len())?;
    Ok((
        RecordView {
            seq,
            time_ms,
            channel,
            event_type,
            data,
            source,
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(source: Option<FilePosition>) -> NewRecord<'static> {
        NewRecord {
            seq: 42,
            time_ms: 1_700_000_000_123,
            channel: "log:app.log",
            event_type: "message",
            data: "hello\nwörld",
            source,
        }
    }

    fn round_trip(record: &NewRecord<'_>) -> Record {
        let mut out = Vec::new();
        encode(record, &mut out).unwrap();
        assert_eq!(out.len(), encoded_len(record));
        let (view, used) = decode(&out).unwrap();
        assert_eq!(used, out.len());
        view.to_record()
    }

    #[test]
    fn golden_bytes() {
        let record = NewRecord {
            seq: 1,
            time_ms: 2,
            channel: "a",
            event_type: "t",
            data: "x",
            source: None,
        };
        let mut out = Vec::new();
        encode(&record, &mut out).unwrap();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[23, 0, 0, 0]), &out[8..]);
        let mut expected = vec![23, 0, 0, 0];
        expected.extend_from_slice(&crc.to_le_bytes());
        expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 1, 0, b'a', b't', b'x']);
        assert_eq!(out, expected);
    }

    #[test]
    fn records_round_trip_with_and_without_source() {
        let source = FilePosition {
            dev: 7,
            ino: u64::MAX,
            offset: 1 << 40,
            fingerprint: Fingerprint::of(b"2024-01-01 first line"),
        };
        for rec in [sample(None), sample(Some(source))] {
            let back = round_trip(&rec);
            assert_eq!(back.seq, rec.seq);
            assert_eq!(back.time_ms, rec.time_ms);
            assert_eq!(&*back.channel, rec.channel);
            assert_eq!(&*back.event_type, rec.event_type);
            assert_eq!(&*back.data, rec.data);
            assert_eq!(back.source, rec.source);
        }
    }

    #[test]
    fn every_cut_and_every_flipped_bit_is_detected() {
        let mut out = Vec::new();
        encode(&sample(None), &mut out).unwrap();
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[byte] ^= 1 << bit;
                if let Ok((view, _)) = decode(&bad) {
                    panic!("flipped bit {bit} of byte {byte} decoded as {view:?}");
                }
            }
        }
    }

    #[test]
    fn oversized_fields_are_refused() {
        let long = "c".repeat(MAX_CHANNEL_LEN + 1);
        let mut rec = sample(None);
        rec.channel = &long;
        let mut out = vec![9];
        assert_eq!(
            encode(&rec, &mut out),
            Err(EncodeError::ChannelTooLong(MAX_CHANNEL_LEN + 1))
        );
        assert_eq!(out, [9]);
        assert_eq!(
            peek_len(&[0, 0, 0, 0x80, 0, 0, 0, 0]),
            Err(Damage::BadLength)
        );
        assert_eq!(peek_len(&[1, 0, 0, 0, 0, 0, 0, 0]), Err(Damage::BadLength));
    }

    proptest! {
        #[test]
        fn any_record_round_trips(
            seq in any::<u64>(),
            time_ms in any::<i64>(),
            channel in "[a-z:._-]{1,128}",
            event_type in "\\PC{0,40}",
            data in "\\PC{0,300}",
            offset in proptest::option::of(any::<u64>()),
        ) {
            let source = offset.map(|offset| FilePosition {
                dev: 1, ino: 2, offset, fingerprint: Fingerprint { len: 3, crc: 4 },
            });
            let rec = NewRecord { seq, time_ms, channel: &channel, event_type: &event_type, data: &data, source };
            let back = round_trip(&rec);
            prop_assert_eq!(back, Record {
                seq, time_ms, channel: channel.as_str().into(), event_type: event_type.as_str().into(),
                data: data.as_str().into(), source,
            });
        }

        #[test]
        fn garbage_never_decodes_as_a_record(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            // A random header whose checksum happens to match is a 1 in 2^32 event.
            if let Ok((view, used)) = decode(&bytes) {
                let mut again = Vec::new();
                encode(&NewRecord {
                    seq: view.seq, time_ms: view.time_ms, channel: view.channel,
                    event_type: view.event_type, data: view.data, source: view.source,
                }, &mut again).unwrap();
                prop_assert_eq!(&again[..], &bytes[..used]);
            }
        }
    }
}
