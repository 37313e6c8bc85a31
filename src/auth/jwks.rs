//! The JWKS cache: keys fetched from `--jwks-url`, refreshed in the
//! background, looked up by `kid`.
//!
//! Rules (the anchors' trackers show what goes wrong without them):
//! - the set is fetched at start and every `REFRESH_INTERVAL`; a failed
//!   or empty fetch keeps the last good set (and is logged), so an identity
//!   provider that is down for a minute locks nobody out;
//! - a token whose `kid` is not in the set triggers one fetch at once (keys
//!   are rotated before tokens signed with them arrive, but not always long
//!   before), at most once per `REFETCH_MIN_INTERVAL` however many such
//!   tokens arrive: a flood of made-up `kid`s costs the identity provider
//!   one request per 30 s, not one per request;
//! - one fetch at a time; requests that wait for it then use its result;
//! - a fetch is bounded: `FETCH_TIMEOUT`, `MAX_DOCUMENT` bytes.
//!
//! Entries that cannot verify tokens (encryption keys, symmetric keys,
//! unknown curves) are skipped with a debug log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::keys::{jwk_key, VerifyKey};

/// How often the set is fetched again in the background.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// Least time between two fetches caused by unknown `kid`s.
pub(crate) const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// Longest a fetch may take.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest JWKS document accepted.
pub(crate) const MAX_DOCUMENT: usize = 1 << 20;

/// The keys of one fetched document.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    /// Keys with a `kid`.
    by_kid: HashMap<String, VerifyKey>,
    /// Keys without one, tried in turn for tokens without a `kid`.
    unnamed: Vec<VerifyKey>,
}

impl KeySet {
    /// Parses a JWKS document, skipping entries that cannot verify tokens.
    ///
    /// # Errors
    /// The document is not a JWKS, or has no usable key.
    pub(crate) fn parse(body: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut set = KeySet::default();
        for (i, value) in document.keys.into_iter().enumerate() {
            let key = serde_json::from_value::<Jwk>(value)
                .map_err(|e| e.to_string())
                .and_then(|jwk| jwk_key(&jwk).map(|key| (jwk.common.key_id, key)));
            match key {
                Ok((Some(kid), key)) => {
                    set.by_kid.insert(kid, key);
                }
                Ok((None, key)) => set.unnamed.push(key),
                Err(why) => tracing::debug!("JWKS key #{i} skipped: {why}"),
            }
        }
        if set.is_empty() {
            return Err("the JWKS document has no usable signing key".into());
        }
        Ok(set)
    }

    /// Number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// Whether there is no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The candidate keys for a token: the one named by `kid`, or, without
    /// a `kid`, every key.
    fn candidates(&self, kid: Option<&str>) -> Vec<VerifyKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned().into_iter().collect(),
            None => self
                .unnamed
                .iter()
                .chain(self.by_kid.values())
                .cloned()
                .collect(),
        }
    }
}

/// The cache of one JWKS URL.
pub struct Jwks {
    url: reqwest::Url,
    client: reqwest::Client,
    /// The last good set. std lock: never held across `.await`.
    keys: RwLock<Arc<KeySet>>,
    /// When an unknown `kid` last caused a fetch. std lock, as above.
    last_refetch: Mutex<Option<Instant>>,
    /// Held while a fetch runs, so there is one at a time.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches done (successful or not), for the logs and tests.
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// What a key lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// Keys to try.
    Found(Vec<VerifyKey>),
    /// No key has this `kid`, even after a fetch (or a fetch was not
    /// allowed yet).
    UnknownKid,
    /// No key set was ever fetched.
    NoKeys,
}

impl Jwks {
    /// A cache of `url` with no keys yet; [`Jwks::start`] fetches them.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(url: reqwest::Url) -> Result<Jwks, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("tailcast/", env!("CARGO_PKG_VERSION")))
            // A redirect could lead off the checked https:// URL: it is a
            // failed fetch, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(Jwks {
            url,
            client,
            keys: RwLock::new(Arc::new(KeySet::default())),
            last_refetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Fetches the set once (a failure is logged, not fatal: the server
    /// starts and keeps trying), then refreshes it every `every` until
    /// `shutdown`.
    pub async fn start(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(
                "JWKS {}: {e}; tokens are refused until a fetch succeeds",
                self.url
            );
        }
        let jwks = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                if let Err(e) = jwks.refresh().await {
                    tracing::warn!("JWKS {}: {e}; keeping the last good key set", jwks.url);
                }
            }
        });
    }

    /// Number of fetches so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches the document and, if it is good, replaces the set.
    ///
    /// # Errors
    /// Why the fetch failed; the previous set is kept.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        self.fetch_and_replace().await
    }

    async fn fetch_and_replace(&self) -> Result<usize, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let set = self.fetch().await?;
        let n = set.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        tracing::debug!("JWKS {}: {n} key(s) loaded", self.url);
        Ok(n)
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("fetch failed: {}", crate::errors::chain(&e)))?;
        if response.status().is_redirection() {
            return Err(format!(
                "answered {}: redirects are not followed; give the final URL in --jwks-url",
                response.status()
            ));
        }
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the document failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("the document is larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body)
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The keys for a token's `kid`. An unknown `kid` fetches the set again
    /// if no such fetch happened in the last `REFETCH_MIN_INTERVAL`.
    pub async fn lookup(&self, kid: Option<&str>) -> Lookup {
        let set = self.current();
        let found = set.candidates(kid);
        if !found.is_empty() {
            return Lookup::Found(found);
        }
        if kid.is_some() || set.is_empty() {
            let _one = self.fetching.lock().await;
            // Someone else's fetch may have brought the key meanwhile.
            let set = self.current();
            let found = set.candidates(kid);
            if !found.is_empty() {
                return Lookup::Found(found);
            }
            if self.may_refetch() {
                if let Err(e) = self.fetch_and_replace().await {
                    tracing::warn!("JWKS {}: {e}; keeping the last good key set", self.url);
                }
                let found = self.current().candidates(kid);
                if !found.is_empty() {
                    return Lookup::Found(found);
                }
            }
        }
        if self.current().is_empty() {
            Lookup::NoKeys
        } else {
            Lookup::UnknownKid
        }
    }

    /// Whether an unknown `kid` may cause a fetch now (and, if so, records
    /// that it does).
    fn may_refetch(&self) -> bool {
        let mut last = self.last_refetch.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *last {
            Some(at) if now.duration_since(at) < REFETCH_MIN_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_without_usable_keys_are_errors() {
        assert!(KeySet::parse(b"nope").is_err());
        assert!(KeySet::parse(b"{\"keys\": []}").is_err());
        let only_secret = br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#;
        assert!(KeySet::parse(only_secret)
            .unwrap_err()
            .contains("no usable"));
        let mixed = br#"{"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "s"},
            {"kty": "weird"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "w2m6RsSt42bJart21ZXJ12d3IP6qF1yu5evXGVg4fXs"}
        ]}"#;
        let set = KeySet::parse(mixed).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.candidates(Some("ed")).len(), 1);
        assert!(set.candidates(Some("s")).is_empty());
        assert_eq!(set.candidates(None).len(), 1);
    }

    /// A local server: `/keys` answers a good document, any other path a
    /// 302 to `/keys`.
    async fn redirecting_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = if head.starts_with(b"GET /keys ") {
                    let body = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "w2m6RsSt42bJart21ZXJ12d3IP6qF1yu5evXGVg4fXs"}]}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://{addr}/keys\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_redirect_is_a_failed_fetch() {
        let addr = redirecting_server().await;
        let direct = Jwks::new(format!("http://{addr}/keys").parse().unwrap()).unwrap();
        assert_eq!(direct.refresh().await, Ok(1));
        let moved = Jwks::new(format!("http://{addr}/moved").parse().unwrap()).unwrap();
        let e = moved.refresh().await.unwrap_err();
        assert!(
            e.contains("302") && e.contains("redirects are not followed"),
            "{e}"
        );
        assert!(moved.current().is_empty());
    }
}
