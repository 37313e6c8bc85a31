//! One segment file: its header, the scan that validates it at open (and
//! finds where a torn tail starts), and the in-memory index kept per
//! segment.
//!
//! ```text
//! segment = header record*
//! header  = magic:"tcwal\0v1" epoch:u32 first_seq:u64 crc:u32   (24 bytes)
//! ```
//!
//! `crc` is the CRC32C of the 20 bytes before it. A segment is named after
//! its first sequence number (`00000000000000000001.wal`) so the directory
//! listing sorts in log order. A new segment is written under a temporary
//! name and renamed into place, so a segment file always has a whole header.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Damage};

/// Bytes of a segment header.
pub(crate) const HEADER_LEN: u64 = 24;
const MAGIC: &[u8; 8] = b"tcwal\0v1";
/// File name extension of segments.
pub(crate) const EXTENSION: &str = "wal";
/// One sparse index entry per this many bytes of records: the most a
/// positioned read scans before it reaches its first wanted record.
pub(crate) const SPARSE_EVERY: u64 = 64 * 1024;
/// Read buffer of the open-time scan.
const SCAN_BUFFER: usize = 1 << 20;

/// The fixed facts of a segment, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Random number of the log incarnation that wrote it; part of ids.
    pub epoch: u32,
    /// Sequence number its first record has (or will have).
    pub first_seq: u64,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0; HEADER_LEN as usize];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.epoch.to_le_bytes());
        out[12..20].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_LEN as usize || &bytes[0..8] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(bytes[20..24].try_into().ok()?);
        if crc32c::crc32c(&bytes[0..20]) != crc {
            return None;
        }
        Some(Header {
            epoch: u32::from_le_bytes(bytes[8..12].try_into().ok()?),
            first_seq: u64::from_le_bytes(bytes[12..20].try_into().ok()?),
        })
    }
}

/// The file name of the segment starting at `first_seq`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{EXTENSION}")
}

/// The first sequence number a segment file name announces, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// What one segment holds of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelStats {
    /// Records of the channel in the segment.
    pub count: u64,
    /// Sequence number of its newest record there.
    pub last_seq: u64,
}

/// What is known about a segment's valid records, kept in memory: enough
/// to find a sequence number's neighbourhood and to skip segments that
/// hold nothing of a channel, and little enough that a gigabyte of log
/// costs about a megabyte of index.
#[derive(Debug, Default, Clone)]
pub(crate) struct SegmentIndex {
    /// Bytes from the file start that hold whole, checked records. Readers
    /// never look past it.
    pub valid_len: u64,
    /// Records in the segment.
    pub count: u64,
    /// Newest record's sequence number (0: none).
    pub last_seq: u64,
    /// `(seq, offset)` of a record at least every [`SPARSE_EVERY`] bytes,
    /// starting with the first.
    pub sparse: Vec<(u64, u64)>,
    /// Per channel, how many records and the newest one.
    pub channels: HashMap<Arc<str>, ChannelStats>,
}

impl SegmentIndex {
    /// An index of a segment with no records yet.
    pub(crate) fn empty() -> Self {
        SegmentIndex {
            valid_len: HEADER_LEN,
            ..SegmentIndex::default()
        }
    }

    /// Notes a record of `len` bytes at `offset`. `channel` is interned by
    /// the caller so that every segment shares one copy of each name.
    pub(crate) fn add(&mut self, seq: u64, offset: u64, len: u64, channel: &Arc<str>) {
        let due = self
            .sparse
            .last()
            .is_none_or(|&(_, at)| offset >= at + SPARSE_EVERY);
        if due {
            self.sparse.push((seq, offset));
        }
        self.count += 1;
        self.last_seq = seq;
        self.valid_len = offset + len;
        match self.channels.get_mut(&**channel) {
            Some(stats) => {
                stats.count += 1;
                stats.last_seq = seq;
            }
            None => {
                self.channels.insert(
                    channel.clone(),
                    ChannelStats {
                        count: 1,
                        last_seq: seq,
                    },
                );
            }
        }
    }
}

/// What the open-time scan of a segment found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub header: Header,
    pub index: SegmentIndex,
    /// Where and why the valid records end before the file does.
    pub damage: Option<(u64, Damage)>,
    /// The file's length.
    pub file_len: u64,
}

/// Why a segment could not be scanned at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScanError {
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The header is missing or damaged.
    #[error("no valid segment header")]
    BadHeader,
}

/// Reads a segment from start to end, checking every record, and builds
/// its index. Records must have strictly increasing sequence numbers, the
/// first at least `header.first_seq`, all below `below` (the next
/// segment's first) when given; the first one that is damaged or out of
/// order ends the valid part. `intern` maps a channel name to the shared
/// copy.
pub(crate) fn scan(
    path: &Path,
    mut intern: impl FnMut(&str) -> Arc<str>,
    below: Option<u64>,
) -> Result<Scan, ScanError> {
    let mut file = super::files::options().read(true).open(path)?;
    let file_len = file.metadata()?.len();
    let mut head = [0u8; HEADER_LEN as usize];
    if file.read_exact(&mut head).is_err() {
        return Err(ScanError::BadHeader);
    }
    let header = Header::decode(&head).ok_or(ScanError::BadHeader)?;
    let mut index = SegmentIndex::empty();
    let mut buf: Vec<u8> = Vec::with_capacity(SCAN_BUFFER);
    // `buf[start..]` holds unparsed bytes beginning at file offset `at`.
    let mut start = 0;
    let mut at = HEADER_LEN;
    let mut eof = false;
    let mut prev_seq = header.first_seq.saturating_sub(1);
    let mut channel: Option<Arc<str>> = None;
    let damage = loop {
        let pending = &buf[start..];
        let want = match record::peek_len(pending) {
            Ok(len) => len,
            Err(Damage::Truncated) if !eof => record::HEADER_LEN,
            Err(Damage::Truncated) if pending.is_empty() => break None,
            Err(damage) => break Some((at, damage)),
        };
        if pending.len() < want {
            if eof {
                break Some((at, Damage::Truncated));
            }
            if (want as u64) > file_len.saturating_sub(at) {
                // The length points past the end of the file: torn (or
                // damaged); never allocate for it.
                break Some((at, Damage::Truncated));
            }
            buf.drain(..start);
            start = 0;
            let need = want.max(SCAN_BUFFER);
            let had = buf.len();
            buf.resize(need, 0);
            let mut filled = had;
            while filled < need {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            buf.truncate(filled);
            continue;
        }
        let (view, used) = match record::decode(pending) {
            Ok(decoded) => decoded,
            Err(damage) => break Some((at, damage)),
        };
        if view.seq <= prev_seq || below.is_some_and(|b| view.seq >= b) {
            break Some((at, Damage::BadFields));
        }
        prev_seq = view.seq;
        let name = match &channel {
            Some(c) if **c == *view.channel => c.clone(),
            _ => {
                let c = intern(view.channel);
                channel = Some(c.clone());
                c
            }
        };
        index.add(view.seq, at, used as u64, &name);
        start += used;
        at += used as u64;
    };
    Ok(Scan {
        header,
        index,
        damage,
        file_len,
    })
}

/// Creates a segment file with only its header: written under a temporary
/// name, renamed into place, so that a crash of the process leaves either
/// no segment or a whole header. With `sync`, the file and then the
/// directory are synced too, so that a power loss does the same; a roll
/// leaves that to the syncer (a segment whose header a power loss cut is
/// set aside at open: its records were never reported durable).
pub(crate) fn create(dir: &Path, header: Header, sync: bool) -> io::Result<(PathBuf, File)> {
    let path = dir.join(file_name(header.first_seq));
    let tmp = dir.join(format!("{}.tmp", file_name(header.first_seq)));
    {
        // A leftover (or anything planted there) goes; the new file is
        // created exclusively, so nothing at the path is written through.
        let _ = std::fs::remove_file(&tmp);
        let mut file = super::files::create_new(&tmp)?;
        io::Write::write_all(&mut file, &header.encode())?;
        if sync {
            file.sync_all()?;
        }
    }
    if path.exists() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("segment {} exists already", path.display()),
        ));
    }
    std::fs::rename(&tmp, &path)?;
    if sync {
        sync_dir(dir)?;
    }
    let file = super::files::options().append(true).open(&path)?;
    Ok((path, file))
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::{encode, NewRecord};
    use std::io::Write;

    fn intern(name: &str) -> Arc<str> {
        name.into()
    }

    fn write_records(path: &Path, seqs: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        let mut ends = Vec::new();
        let mut len = file.metadata().unwrap().len();
        for seq in seqs {
            let mut out = Vec::new();
            let data = format!("event {seq}");
            encode(
                &NewRecord {
                    seq,
                    time_ms: 0,
                    channel: if seq % 2 == 0 { "even" } else { "odd" },
                    event_type: "message",
                    data: &data,
                    source: None,
                },
                &mut out,
            )
            .unwrap();
            file.write_all(&out).unwrap();
            len += out.len() as u64;
            ends.push(len);
        }
        ends
    }

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        assert_eq!(file_name(1), "00000000000000000001.wal");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("1.wal"), None);
        assert_eq!(parse_file_name("00000000000000000001.wal.tmp"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn header_round_trips_and_damage_is_seen() {
        let h = Header {
            epoch: 0xdead_beef,
            first_seq: 77,
        };
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes), Some(h));
        for i in 0..bytes.len() {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert_eq!(Header::decode(&bad), None, "byte {i}");
        }
        assert_eq!(Header::decode(&bytes[..10]), None);
    }

    #[test]
    fn scan_indexes_whole_records_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let header = Header {
            epoch: 1,
            first_seq: 1,
        };
        let (path, _) = create(dir.path(), header, true).unwrap();
        let ends = write_records(&path, 1..=5000);
        let scan = scan(&path, intern, None).unwrap();
        assert_eq!(scan.header, header);
        assert_eq!(scan.damage, None);
        assert_eq!(scan.index.count, 5000);
        assert_eq!(scan.index.last_seq, 5000);
        assert_eq!(scan.index.valid_len, *ends.last().unwrap());
        assert_eq!(scan.index.channels["even"].count, 2500);
        assert_eq!(scan.index.channels["odd"].last_seq, 4999);
        assert!(scan.index.sparse.len() > 1);
        assert_eq!(scan.index.sparse[0], (1, HEADER_LEN));

        // Cut inside the last record: everything before it is kept.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(ends[4999] - 3).unwrap();
        let scan = super::scan(&path, intern, None).unwrap();
        assert_eq!(scan.index.count, 4999);
        assert_eq!(scan.damage, Some((ends[4998], Damage::Truncated)));
        // Garbage after a cut.
        file.set_len(ends[4000]).unwrap();
        drop(file);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&[0x55; 1000]).unwrap();
        let scan = super::scan(&path, intern, None).unwrap();
        assert_eq!(scan.index.count, 4001);
        assert_eq!(scan.index.valid_len, ends[4000]);
        assert!(scan.damage.is_some());
    }

    #[test]
    fn out_of_order_sequence_numbers_end_the_valid_part() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = create(
            dir.path(),
            Header {
                epoch: 1,
                first_seq: 10,
            },
            true,
        )
        .unwrap();
        let ends = write_records(&path, [10, 11, 11, 12]);
        let scan = scan(&path, intern, None).unwrap();
        assert_eq!(scan.index.count, 2);
        assert_eq!(scan.damage, Some((ends[1], Damage::BadFields)));
        let (path, _) = create(
            dir.path(),
            Header {
                epoch: 1,
                first_seq: 20,
            },
            true,
        )
        .unwrap();
        write_records(&path, [19]);
        assert_eq!(scan_count(&path), 0);
    }

    fn scan_count(path: &Path) -> u64 {
        scan(path, intern, None).unwrap().index.count
    }

    #[test]
    fn a_huge_length_in_a_garbage_tail_allocates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = create(
            dir.path(),
            Header {
                epoch: 1,
                first_seq: 1,
            },
            true,
        )
        .unwrap();
        write_records(&path, [1]);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // A length of almost 1 GiB, then nothing.
        file.write_all(&[0, 0, 0, 0x3f, 1, 2, 3, 4]).unwrap();
        let scan = scan(&path, intern, None).unwrap();
        assert_eq!(scan.index.count, 1);
        assert_eq!(scan.damage.map(|d| d.1), Some(Damage::Truncated));
    }

    #[test]
    fn bad_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(1));
        std::fs::write(&path, b"tcwal").unwrap();
        assert!(matches!(
            scan(&path, intern, None),
            Err(ScanError::BadHeader)
        ));
        std::fs::write(&path, [0u8; 64]).unwrap();
        assert!(matches!(
            scan(&path, intern, None),
            Err(ScanError::BadHeader)
        ));
    }
}
