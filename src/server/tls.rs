//! `--tls-cert` / `--tls-key`: the certificate served over HTTPS, re-read
//! when the files change and on SIGHUP.
//!
//! The current rustls configuration sits behind a lock as an `Arc`; every
//! handshake takes the `Arc` of the moment, so a reload changes what new
//! connections get and never touches open ones (their streams go on). A new
//! pair that does not load (unreadable, not PEM, no certificate, no key, or
//! a key that does not match the certificate) is reported on stderr and the
//! old pair is kept. Renewals that replace the files (certbot swaps the
//! symlinks in `live/`) or rewrite them in place are both seen: the parent
//! directories are watched, each burst of events is left to settle for
//! `SETTLE` (0.3 s) before reading, and the files' identity (inode, size, mtime)
//! is also polled every `POLL` (10 s) as a safety net.
//!
//! ALPN offers `h2` then `http/1.1`; the connection code picks HTTP/2 or
//! the HTTP/1.1 lean path from the result.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Quiet time after a file event before the pair is read (a renewal
/// writes the certificate and the key one after the other).
const SETTLE: Duration = Duration::from_millis(300);

/// How often the files' identity is checked without any event.
const POLL: Duration = Duration::from_secs(10);

/// ALPN protocols offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate/key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM item.
    #[error("{what} {path}: {reason}")]
    File {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate {cert} with key {key}: {reason}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: rustls::Error,
    },
}

/// The certificate and key files, and the configuration made from them.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
}

/// One successfully loaded pair.
struct Loaded {
    config: Arc<ServerConfig>,
    /// The files' identity when they were read.
    stamp: Option<Stamp>,
}

/// What identifies a version of the two files without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([(u64, u64, Option<SystemTime>); 2]);

fn stamp(cert: &Path, key: &Path) -> Option<Stamp> {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let ino = 0;
        Some((ino, meta.len(), meta.modified().ok()))
    };
    Some(Stamp([one(cert)?, one(key)?]))
}

/// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private key:
/// PKCS#8, PKCS#1 or SEC1) into a rustls server configuration with ALPN.
///
/// # Errors
/// [`TlsError`] naming the file and the problem.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let file_error = |what, path: &Path, reason: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error("certificate", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            "certificate",
            cert,
            "no CERTIFICATE block found".into(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        let reason = match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block found".into(),
            e => e.to_string(),
        };
        file_error("key", key, reason)
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|reason| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason,
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The pair loaded before listening and the SIGHUP listener taken over at
/// that moment: what [`crate::server::run`] serves from its first
/// connection. Made by [`prepare`].
pub struct PreparedTls {
    certificates: Arc<Certificates>,
    hangup: Option<Hangup>,
}

/// A SIGHUP listener (none off Unix).
#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = std::convert::Infallible;

/// Loads the pair (see [`load`]) once, to be served as it is (a renewal
/// between this check and the first connection is a reload, never a
/// failure), and, on Unix, takes over SIGHUP at once: from here on a SIGHUP
/// reloads the pair instead of ending the process, even if it arrives
/// before the server has started.
///
/// # Errors
/// [`TlsError`] naming the file and the problem.
pub fn prepare(cert: &Path, key: &Path) -> Result<PreparedTls, TlsError> {
    let certificates = Certificates::open(cert.to_path_buf(), key.to_path_buf())?;
    Ok(PreparedTls {
        certificates,
        hangup: hangup_listener(),
    })
}

impl PreparedTls {
    /// Starts the reloader (see [`Certificates::spawn_reloader`]) and
    /// returns the pair in use.
    pub(crate) fn start(
        self,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Certificates> {
        self.certificates
            .spawn_reloader(self.hangup, tracker, shutdown);
        self.certificates
    }
}

/// A new SIGHUP listener (taking SIGHUP over from its default, which ends
/// the process), or `None` with a warning.
#[cfg(unix)]
fn hangup_listener() -> Option<Hangup> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!("cannot handle SIGHUP: {e}");
            None
        }
    }
}

/// No SIGHUP off Unix.
#[cfg(not(unix))]
fn hangup_listener() -> Option<Hangup> {
    None
}

impl Certificates {
    /// Loads the pair once.
    ///
    /// # Errors
    /// The pair cannot be served (see [`load`]).
    pub fn open(cert: PathBuf, key: PathBuf) -> Result<Arc<Self>, TlsError> {
        let stamp = stamp(&cert, &key);
        let config = load(&cert, &key)?;
        Ok(Arc::new(Certificates {
            cert,
            key,
            current: RwLock::new(Loaded { config, stamp }),
        }))
    }

    /// The configuration for a new handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config
            .clone()
    }

    /// Reads the pair again and serves it from now on; on failure reports
    /// it and keeps the one in use. `force`: even if the files look the
    /// same as when last read.
    pub fn reload(&self, force: bool) {
        let stamp = stamp(&self.cert, &self.key);
        if !force && stamp.is_some() && self.loaded_stamp() == stamp {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Loaded { config, stamp };
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Remember the stamp: the same broken files are reported
                // once, not on every poll.
                self.current
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .stamp = stamp;
                tracing::error!("TLS reload failed, keeping the previous certificate: {e}");
            }
        }
    }

    fn loaded_stamp(&self) -> Option<Stamp> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .stamp
            .clone()
    }

    /// Starts the task that reloads the pair on SIGHUP (`hangup`, taken
    /// over when the pair was first loaded), when the files' directories
    /// report a change, and when a poll sees new files.
    fn spawn_reloader(
        self: &Arc<Self>,
        hangup: Option<Hangup>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let wake = Arc::new(Notify::new());
        let watcher = watch_dirs(&[&self.cert, &self.key], wake.clone());
        let certificates = self.clone();
        #[cfg_attr(not(unix), allow(unused_mut, unused_variables))]
        let mut hangup = hangup;
        tracker.spawn(async move {
            let _watcher = watcher;
            let mut poll = tokio::time::interval(POLL);
            poll.tick().await;
            loop {
                #[cfg(unix)]
                let sighup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let sighup = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sighup => {
                        tracing::info!("SIGHUP: reloading the TLS certificate");
                        certificates.reload(true);
                    }
                    _ = wake.notified() => {
                        // Let the writer finish both files.
                        loop {
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(SETTLE) => break,
                                _ = wake.notified() => {}
                            }
                        }
                        certificates.reload(false);
                    }
                    _ = poll.tick() => certificates.reload(false),
                }
            }
        });
    }
}

/// Watches the directories of `files` (non-recursively: renewals replace
/// files and symlinks) and wakes `wake` on any change there. `None` when
/// notifications are unavailable (the poll remains).
fn watch_dirs(files: &[&Path], wake: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let handler = move |event: notify::Result<notify::Event>| {
        if !matches!(event, Ok(ref e) if matches!(e.kind, EventKind::Access(_))) {
            wake.notify_one();
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("file notifications unavailable, TLS files polled only: {e}");
            return None;
        }
    };
    for file in files {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), "cannot watch for TLS renewals, polling: {e}");
        }
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn a_good_pair_loads_with_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("localhost");
        let (c, k) = write(dir.path(), &cert, &key);
        let config = load(&c, &k).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn bad_pairs_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("localhost");
        let (_, other_key) = pair("other");
        let (c, k) = write(dir.path(), &cert, &other_key);
        let e = load(&c, &k).unwrap_err().to_string();
        assert!(e.contains("key"), "{e}");
        let (c, k) = write(dir.path(), "not pem", &key);
        let e = load(&c, &k).unwrap_err().to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let (c, k) = write(dir.path(), &cert, &cert);
        let e = load(&c, &k).unwrap_err().to_string();
        assert!(e.contains("no PRIVATE KEY"), "{e}");
        let e = load(&dir.path().join("nope.pem"), &k)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.pem"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_old_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("localhost");
        let (c, k) = write(dir.path(), &cert, &key);
        let certs = Certificates::open(c, k).unwrap();
        let before = certs.current();
        write(dir.path(), "garbage", &key);
        certs.reload(true);
        assert!(Arc::ptr_eq(&before, &certs.current()));
        let (cert2, key2) = pair("localhost");
        write(dir.path(), &cert2, &key2);
        certs.reload(true);
        assert!(!Arc::ptr_eq(&before, &certs.current()));
    }
}
