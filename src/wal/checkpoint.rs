//! Follower checkpoints: how far each log stream's file has been read,
//! kept in `DIR/checkpoints.json`.
//!
//! The file is replaced atomically (written to a temporary file, fsynced,
//! renamed over the old one, directory fsynced), so after any crash it
//! holds either the previous or the new set, never a mix. It is a summary:
//! every log line's record in the event log also carries its file position,
//! and the newer of the two wins at start (see [`FileCheckpoint::seq`]), so
//! a checkpoint saved a second late never causes a line to be published
//! twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{io_error, segment, WalError};
use crate::follow::FilePosition;

/// File name of the checkpoints in the data directory.
const FILE_NAME: &str = "checkpoints.json";
/// Version of the file's format.
const VERSION: u32 = 1;

/// Where one log stream stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FileCheckpoint {
    /// The followed path (for the reader of the file; the stream name is
    /// the key).
    pub path: String,
    /// The file (device, inode, fingerprint) and the offset after the last
    /// line published.
    pub position: FilePosition,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OnDisk {
    version: u32,
    streams: BTreeMap<String, FileCheckpoint>,
}

#[derive(Default)]
struct State {
    streams: BTreeMap<String, FileCheckpoint>,
    /// Changed since the last save.
    dirty: bool,
}

/// The checkpoints of every log stream, by stream name.
pub(crate) struct Checkpoints {
    path: PathBuf,
    /// std mutex: held only to read or change the map.
    state: Mutex<State>,
    /// Serialises saves (std mutex; a save does blocking I/O and is run off
    /// the async runtime by the caller).
    saving: Mutex<()>,
}

impl Checkpoints {
    /// Reads `DIR/checkpoints.json`. A missing file is an empty set; a file
    /// that cannot be parsed is renamed `checkpoints.json.damaged` with a
    /// warning and treated as empty (the event log's positions still apply).
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub(crate) fn load(data_dir: &Path) -> Result<Checkpoints, WalError> {
        let path = data_dir.join(FILE_NAME);
        let read = super::files::read_no_follow(&path);
        let streams = match read {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(on_disk) if on_disk.version == VERSION => on_disk.streams,
                Ok(on_disk) => {
                    set_aside(&path, &format!("unknown version {}", on_disk.version));
                    BTreeMap::new()
                }
                Err(e) => {
                    set_aside(&path, &e.to_string());
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) if super::files::is_symlink_error(&e) => {
                set_aside(&path, "it is a symbolic link");
                BTreeMap::new()
            }
            Err(source) => {
                return Err(WalError::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })
            }
        };
        Ok(Checkpoints {
            path,
            state: Mutex::new(State {
                streams,
                dirty: false,
            }),
            saving: Mutex::new(()),
        })
    }

    /// The checkpoint of `stream`.
    pub(crate) fn get(&self, stream: &str) -> Option<FileCheckpoint> {
        self.state
            .lock()
            .expect("checkpoints lock")
            .streams
            .get(stream)
            .cloned()
    }

    /// Records where `stream` stands (saved by the next [`Checkpoints::save`]).
    pub(crate) fn set(&self, stream: &str, checkpoint: FileCheckpoint) {
        let mut state = self.state.lock().expect("checkpoints lock");
        if state.streams.get(stream) != Some(&checkpoint) {
            state.streams.insert(stream.to_string(), checkpoint);
            state.dirty = true;
        }
    }

    /// Whether something changed since the last save.
    pub(crate) fn is_dirty(&self) -> bool {
        self.state.lock().expect("checkpoints lock").dirty
    }

    /// Writes the set if it changed since the last save: temporary file,
    /// fsync, rename, directory fsync. Blocking; returns whether it wrote.
    ///
    /// # Errors
    /// Writing failed; the old file is untouched and the next save retries.
    pub(crate) fn save(&self) -> Result<bool, WalError> {
        let _saving = self.saving.lock().expect("saving lock");
        let streams = {
            let mut state = self.state.lock().expect("checkpoints lock");
            if !state.dirty {
                return Ok(false);
            }
            state.dirty = false;
            state.streams.clone()
        };
        let result = self.write(&OnDisk {
            version: VERSION,
            streams,
        });
        if result.is_err() {
            self.state.lock().expect("checkpoints lock").dirty = true;
        }
        result.map(|()| true)
    }

    fn write(&self, on_disk: &OnDisk) -> Result<(), WalError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(on_disk).expect("checkpoints serialise");
        let context = format!("writing {}", tmp.display());
        // A leftover temporary file (or a link planted there) goes; the new
        // one is created exclusively, never written through a link. (The
        // rename below replaces a link at the final path, never follows it.)
        let _ = std::fs::remove_file(&tmp);
        let mut file = super::files::create_new(&tmp).map_err(io_error(context.clone()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_error(context))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(io_error(format!("replacing {}", self.path.display())))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        segment::sync_dir(dir).map_err(io_error(format!("syncing {}", dir.display())))
    }
}

fn set_aside(path: &Path, why: &str) {
    let aside = path.with_extension("json.damaged");
    tracing::warn!(
        file = %path.display(),
        "cannot use the follower checkpoints ({why}); moved aside to {}, \
         positions come from the event log alone",
        aside.display()
    );
    let _ = std::fs::rename(path, aside);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::Fingerprint;

    fn checkpoint(offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            path: "/var/log/app.log".into(),
            position: FilePosition {
                dev: 1,
                ino: 2,
                offset,
                fingerprint: Fingerprint::of(b"first line\n"),
            },
        }
    }

    #[test]
    fn saved_checkpoints_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let cps = Checkpoints::load(dir.path()).unwrap();
        assert_eq!(cps.get("app"), None);
        assert!(!cps.save().unwrap(), "nothing to save");
        cps.set("app", checkpoint(5));
        cps.set("other", checkpoint(7));
        assert!(cps.is_dirty());
        assert!(cps.save().unwrap());
        assert!(!cps.is_dirty());
        cps.set("app", checkpoint(5));
        assert!(!cps.is_dirty(), "an unchanged value does not dirty the set");
        let again = Checkpoints::load(dir.path()).unwrap();
        assert_eq!(again.get("app"), Some(checkpoint(5)));
        assert_eq!(again.get("other"), Some(checkpoint(7)));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_set_aside_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for junk in [
            &b"{\"version\": 1, \"streams\": {\"app\": "[..],
            b"{\"version\": 99, \"streams\": {}}",
        ] {
            std::fs::write(&path, junk).unwrap();
            let cps = Checkpoints::load(dir.path()).unwrap();
            assert_eq!(cps.get("app"), None);
            assert!(!path.exists());
            assert_eq!(
                std::fs::read(dir.path().join("checkpoints.json.damaged")).unwrap(),
                junk
            );
        }
    }

    #[test]
    fn a_failed_save_keeps_the_old_file_and_retries() {
        let dir = tempfile::tempdir().unwrap();
        let cps = Checkpoints::load(dir.path()).unwrap();
        cps.set("app", checkpoint(1));
        cps.save().unwrap();
        cps.set("app", checkpoint(2));
        // A directory where the temporary file goes makes the write fail.
        std::fs::create_dir(dir.path().join("checkpoints.json.tmp")).unwrap();
        assert!(cps.save().is_err());
        assert!(cps.is_dirty());
        assert_eq!(
            Checkpoints::load(dir.path()).unwrap().get("app"),
            Some(checkpoint(1))
        );
        std::fs::remove_dir(dir.path().join("checkpoints.json.tmp")).unwrap();
        assert!(cps.save().unwrap());
        assert_eq!(
            Checkpoints::load(dir.path()).unwrap().get("app"),
            Some(checkpoint(2))
        );
    }
}
