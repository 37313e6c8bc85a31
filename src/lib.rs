//! tailcast: stream log files and events over Server-Sent Events.
pub mod alerts;
pub mod auth;
pub mod cli_tools;
pub mod client;
pub mod config;
pub mod errors;
pub mod follow;
pub mod generate;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod streams;
pub mod syslog;
pub mod units;
pub mod wal;

/// The floors of the house, checked on the source: what a module may not
/// import (ARCHITECTURE.md, "Invariants").
#[cfg(test)]
mod layers {
    use std::path::{Path, PathBuf};

    /// The `.rs` files under `src/{rel}` (a file or a directory), with
    /// their text.
    fn sources(rel: &str) -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut todo = vec![root.join(rel)];
        let mut out = Vec::new();
        while let Some(path) = todo.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).expect("a source directory") {
                    todo.push(entry.expect("a directory entry").path());
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                out.push((path, text));
            }
        }
        assert!(!out.is_empty(), "no sources under src/{rel}");
        out
    }

    fn assert_none(rel: &str, forbidden: &[&str]) {
        for (path, text) in sources(rel) {
            for word in forbidden {
                assert!(
                    !text.contains(word),
                    "{} uses {word}: {rel} must not",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn follow_knows_nothing_of_http_or_the_hub() {
        for rel in ["follow.rs", "follow"] {
            assert_none(
                rel,
                &[
                    "crate::hub",
                    "crate::http",
                    "crate::server",
                    "axum",
                    "hyper",
                ],
            );
        }
    }

    #[test]
    fn the_hub_knows_nothing_of_http_or_followed_files() {
        // A line's file position is a value it stores with the line in
        // the WAL; nothing else of `follow` reaches the hub.
        for (path, text) in sources("hub") {
            let rest = text.replace("crate::follow::FilePosition", "");
            for word in [
                "crate::http",
                "crate::server",
                "crate::streams",
                "crate::follow",
                "axum",
                "hyper",
                "StatusCode",
            ] {
                assert!(!rest.contains(word), "{} uses {word}", path.display());
            }
        }
    }

    #[test]
    fn only_http_knows_status_codes_and_error_shapes() {
        for rel in [
            "hub",
            "follow",
            "follow.rs",
            "streams.rs",
            "wal",
            "ingest",
            "syslog.rs",
        ] {
            assert_none(rel, &["StatusCode", "ApiError", "axum::"]);
        }
    }
}
