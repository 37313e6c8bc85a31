//! How the data directory's files are made: owner-only (directories 0700,
//! files 0600, before the umask), and never through a symbolic link
//! (`O_NOFOLLOW` on every open; new files created with `O_EXCL`, which
//! fails on anything already at the path, a link included).
//!
//! Directories and files that exist already keep their mode.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// `O_NOFOLLOW`, as `OpenOptionsExt::custom_flags` takes it.
const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Creates `path` and its missing parents, each 0700.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// Open options with mode 0600 for a created file and `O_NOFOLLOW`: set
/// read, write, append or create on them.
pub(crate) fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(NOFOLLOW);
    options
}

/// Creates `path` for writing; fails if anything (a file, a link) is there.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    options().write(true).create_new(true).open(path)
}

/// The whole of `path`, never read through a symbolic link (one is an
/// error, see [`is_symlink_error`]).
pub(crate) fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut options().read(true).open(path)?, &mut bytes)?;
    Ok(bytes)
}

/// Whether `err` is the refusal of `O_NOFOLLOW` to open a symbolic link.
pub(crate) fn is_symlink_error(err: &io::Error) -> bool {
    err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}
