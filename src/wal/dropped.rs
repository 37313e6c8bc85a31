//! What retention dropped, per channel, kept in `DIR/log/dropped.json` so
//! that it survives a restart: a resume from before the oldest segment is
//! then told `too old` for the channels that had records in the dropped
//! segments only, not for every channel (a `reset` that means nothing
//! teaches users to ignore resets).
//!
//! The file is replaced atomically (temporary file, fsync, rename,
//! directory fsync) before the segment it accounts for is removed, so after
//! a crash it covers at least every segment that is gone. A log without the
//! file (made by an older version, or whose file could not be written or
//! read) falls back to the safe answer: every channel lost everything
//! before the oldest segment.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{io_error, segment, WalError};

/// File name in the log directory.
const FILE_NAME: &str = "dropped.json";
/// Version of the file's format.
const VERSION: u32 = 1;
/// Most channels remembered; past it, the entries dropped longest ago are
/// folded into [`Dropped::base`] (those channels then count as having lost
/// everything up to it, the safe side), so the file stays small.
pub(crate) const MAX_CHANNELS: usize = 10_000;

/// What has been dropped by retention, for telling "too old" from "never".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Every channel counts as dropped up to here: channels are not known
    /// for it (segments dropped before the file existed, or folded).
    pub base: u64,
    /// Dropped segments are accounted for up to this sequence number.
    pub through: u64,
    /// Per channel, the newest record dropped.
    pub channels: HashMap<Arc<str>, u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OnDisk {
    version: u32,
    base: u64,
    through: u64,
    channels: std::collections::BTreeMap<String, u64>,
}

impl Dropped {
    /// The state at open, for a log whose oldest segment starts at
    /// `oldest_first`: what the file in `dir` says, if it accounts for
    /// every segment before that one; otherwise (no file, a damaged one, or
    /// one behind the segments) everything before the oldest segment counts
    /// as dropped for every channel.
    pub(crate) fn load(dir: &Path, oldest_first: u64, intern: impl Fn(&str) -> Arc<str>) -> Self {
        let gone_through = oldest_first.saturating_sub(1);
        let path = dir.join(FILE_NAME);
        // Never read through a link (one is an error, so ignored below).
        let read = super::files::read_no_follow(&path);
        let on_disk = match read {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(d) if d.version == VERSION => Some(d),
                Ok(d) => {
                    tracing::warn!(file = %path.display(), "unknown version {} of the retention record; ignored", d.version);
                    None
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot read the retention record ({e}); ignored");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot read the retention record ({e}); ignored");
                None
            }
        };
        let Some(on_disk) = on_disk else {
            return Dropped {
                base: gone_through,
                through: gone_through,
                channels: HashMap::new(),
            };
        };
        let channels = on_disk
            .channels
            .iter()
            .map(|(name, &seq)| (intern(name), seq))
            .collect();
        Dropped {
            // Segments gone without being recorded: every channel lost them.
            base: if on_disk.through >= gone_through {
                on_disk.base
            } else {
                gone_through
            },
            through: on_disk.through.max(gone_through),
            channels,
        }
    }

    /// Records a dropped segment: its channels' newest records, and that
    /// everything up to `through` is accounted for. Keeps at most
    /// [`MAX_CHANNELS`] channels (see there).
    pub(crate) fn add<'a>(
        &mut self,
        channels: impl IntoIterator<Item = (&'a Arc<str>, u64)>,
        through: u64,
    ) {
        for (name, last) in channels {
            let seq = self.channels.entry(name.clone()).or_default();
            *seq = (*seq).max(last);
        }
        self.through = self.through.max(through);
        if self.channels.len() > MAX_CHANNELS {
            let mut seqs: Vec<u64> = self.channels.values().copied().collect();
            let cut = seqs.len() - MAX_CHANNELS;
            let (_, &mut fold_through, _) = seqs.select_nth_unstable(cut - 1);
            self.base = self.base.max(fold_through);
            self.channels.retain(|_, seq| *seq > fold_through);
        }
    }

    /// The newest dropped record of `channel` (0: none).
    pub(crate) fn through_of(&self, channel: &str) -> u64 {
        self.channels
            .get(channel)
            .copied()
            .unwrap_or(0)
            .max(self.base)
    }

    /// Writes the state to `dir` atomically. Blocking.
    ///
    /// # Errors
    /// Writing failed; the old file is untouched.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), WalError> {
        let on_disk = OnDisk {
            version: VERSION,
            base: self.base,
            through: self.through,
            channels: self
                .channels
                .iter()
                .map(|(name, &seq)| (name.to_string(), seq))
                .collect(),
        };
        let path: PathBuf = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec(&on_disk).expect("the retention record serialises");
        let context = format!("writing {}", tmp.display());
        // As for the checkpoints: a leftover (or a planted link) goes, the
        // new file is created exclusively, owner-only.
        let _ = std::fs::remove_file(&tmp);
        let mut file = super::files::create_new(&tmp).map_err(io_error(context.clone()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error(context))?;
        std::fs::rename(&tmp, &path).map_err(io_error(format!("replacing {}", path.display())))?;
        segment::sync_dir(dir).map_err(io_error(format!("syncing {}", dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn the_record_round_trips_and_covers_only_what_it_accounts_for() {
        let dir = tempfile::tempdir().unwrap();
        // No file: everything before the oldest segment, for every channel.
        let fresh = Dropped::load(dir.path(), 101, name);
        assert_eq!((fresh.base, fresh.through), (100, 100));
        assert_eq!(fresh.through_of("never"), 100);

        let mut dropped = Dropped::default();
        let (a, b) = (name("a"), name("b"));
        dropped.add([(&a, 40), (&b, 7)], 50);
        dropped.add([(&a, 90)], 100);
        dropped.save(dir.path()).unwrap();
        let loaded = Dropped::load(dir.path(), 101, name);
        assert_eq!(loaded, dropped);
        assert_eq!(loaded.through_of("a"), 90);
        assert_eq!(loaded.through_of("b"), 7);
        assert_eq!(loaded.through_of("broadcast"), 0, "never had a record");

        // Segments gone that the file does not account for: every channel.
        let behind = Dropped::load(dir.path(), 201, name);
        assert_eq!(behind.through_of("broadcast"), 200);
        assert_eq!(behind.through_of("a"), 200);

        // A damaged file is the safe answer, not an error.
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert_eq!(Dropped::load(dir.path(), 101, name).through_of("x"), 100);
    }

    #[test]
    fn past_the_channel_limit_the_oldest_entries_fold_into_the_base() {
        let mut dropped = Dropped::default();
        let names: Vec<Arc<str>> = (0..MAX_CHANNELS + 10)
            .map(|i| name(&format!("c{i}")))
            .collect();
        dropped.add(
            names.iter().enumerate().map(|(i, n)| (n, i as u64 + 1)),
            (MAX_CHANNELS + 10) as u64,
        );
        assert_eq!(dropped.channels.len(), MAX_CHANNELS);
        assert_eq!(dropped.base, 10);
        assert_eq!(dropped.through_of("c0"), 10, "folded: the safe side");
        assert_eq!(dropped.through_of("new"), 10);
        assert_eq!(
            dropped.through_of(&format!("c{}", MAX_CHANNELS + 9)),
            (MAX_CHANNELS + 10) as u64
        );
    }
}
