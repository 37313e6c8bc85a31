//! Finding the files a glob pattern names, now and as they appear.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::watch::DirWatch;
use super::FollowOptions;

/// Whether `pattern` contains glob syntax (`*`, `?` or `[`) and so names a
/// set of files rather than one path.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Calls `on_match` with every file matching `pattern`: once for each match
/// present at start, then once for each new match, until `shutdown` is
/// cancelled.
///
/// A path is reported once while it keeps matching. A path seen missing by
/// a scan and found again later is reported again: a caller that still
/// follows it (following a file through deletion and re-creation is the
/// follower's job) ignores the repeat, one that forgot it follows it anew.
/// Directories that match are skipped.
///
/// The directory holding the pattern's first glob component is watched for
/// changes, so new files there are found within milliseconds; matches in
/// deeper directories (as with `/var/log/*/app.log`) are found by the rescan
/// every `opts.poll_interval`.
///
/// An invalid pattern is logged and the function returns at once; check
/// patterns up front with [`glob::Pattern::new`] to report them to the user.
pub async fn watch_glob(
    pattern: String,
    opts: FollowOptions,
    mut on_match: impl FnMut(PathBuf) + Send + 'static,
    shutdown: CancellationToken,
) {
    if let Err(err) = glob::Pattern::new(&pattern) {
        tracing::error!(%pattern, %err, "invalid glob pattern");
        return;
    }
    let wake = Arc::new(Notify::new());
    let mut watch = DirWatch::new(glob_base(&pattern), wake.clone(), |_| true);
    let poll_interval = opts.poll_interval.max(super::MIN_POLL);
    let mut seen = HashSet::new();
    loop {
        let scan = tokio::task::spawn_blocking({
            let pattern = pattern.clone();
            move || scan(&pattern)
        });
        let found = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            found = scan => found.unwrap_or_default(),
        };
        let present: HashSet<&PathBuf> = found.iter().collect();
        seen.retain(|path| present.contains(path));
        for path in found {
            if seen.insert(path.clone()) {
                on_match(path);
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll_interval) => watch.refresh(),
        }
    }
}

fn scan(pattern: &str) -> Vec<PathBuf> {
    match glob::glob(pattern) {
        Ok(paths) => paths
            .filter_map(Result::ok)
            .filter(|path| !path.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The deepest directory of `pattern` that has no glob syntax in its path.
fn glob_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    let mut components = Path::new(pattern).components().peekable();
    while let Some(component) = components.next() {
        let is_last = components.peek().is_none();
        if is_last || matches!(component, Component::Normal(c) if is_glob(&c.to_string_lossy())) {
            break;
        }
        base.push(component);
    }
    if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_syntax_is_recognised() {
        assert!(is_glob("/var/log/*.log"));
        assert!(is_glob("app?.log"));
        assert!(is_glob("app[0-9].log"));
        assert!(!is_glob("/var/log/app.log"));
        assert!(!is_glob("-"));
    }

    #[test]
    fn base_is_the_last_literal_directory() {
        assert_eq!(glob_base("/var/log/*.log"), Path::new("/var/log"));
        assert_eq!(glob_base("/var/*/app.log"), Path::new("/var"));
        assert_eq!(glob_base("*.log"), Path::new("."));
        assert_eq!(glob_base("logs/a?.log"), Path::new("logs"));
        assert_eq!(glob_base("/var/log/app.log"), Path::new("/var/log"));
    }
}
