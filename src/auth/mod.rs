//! Access control: who is calling (`Caller`) and what they may do
//! ([`Rights`]).
//!
//! Off unless a key is configured (`--jwt-secret-file`, `--jwt-public-key`
//! or `--jwks-url`); then every request that is not public carries a JWT
//! and is authenticated once, in one place (`Auth::authenticate`, called
//! by the HTTP extractor that both SSE paths go through), into a `Caller`
//! whose rights the handlers check with `Auth::authorize`. A token is
//! taken from, in this order, `Authorization: Bearer`, the session cookie
//! (`__Host-tailcast_token` or `tailcast_token`, see `cookie_name`), and
//! `?access_token=`, and on the Loki push path only (`BASIC_AUTH_PATHS`)
//! the password of `Authorization: Basic` (what Promtail, Grafana Alloy,
//! Vector and winston-loki send); the first one found is the one used, and
//! a bad one is refused, never treated as no token. Channel names are validated before
//! any right is matched against them (`Auth::authorize`).
//!
//! What this module does not do: HTTP statuses and JSON (the `http` module
//! turns `AuthError` into 401/403 answers), and anything per event: a
//! stream's rights are checked when it opens, and its token's expiry is one
//! timer (`Caller::expires_in`).
//!
//! No token value is ever logged: errors describe tokens without quoting
//! them, and `redact` hides `access_token=` in any URI that is logged.

pub mod jwks;
pub mod keys;
pub mod mint;
pub mod rights;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, Uri};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use tokio_util::sync::CancellationToken;

pub use rights::{Pattern, Patterns, Right, Rights};

use jwks::{Jwks, Lookup};
use keys::VerifyKey;

/// Name of the session cookie set by `POST /api/session` over plain HTTP.
pub(crate) const COOKIE_NAME: &str = "tailcast_token";

/// Name of the session cookie over HTTPS or with `--cookie-secure`: the
/// `__Host-` prefix makes browsers take it only with `Secure`, `Path=/`
/// and no `Domain`, so no other host or plain-HTTP page can set it.
pub(crate) const SECURE_COOKIE_NAME: &str = "__Host-tailcast_token";

/// The session cookie's name: [`SECURE_COOKIE_NAME`] when `secure` (served
/// over HTTPS, or `--cookie-secure`), else [`COOKIE_NAME`]. Both are read.
pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// Query parameter that may carry a token.
pub(crate) const QUERY_PARAM: &str = "access_token";

/// Clock leeway for `exp` and `nbf`, in seconds.
pub(crate) const LEEWAY_SECS: u64 = 5;

/// Longest token accepted, in bytes (a request head is at most 16 KiB on
/// the lean path anyway); a longer one is refused before any parsing.
pub(crate) const MAX_TOKEN: usize = 8 * 1024;

/// Longest wait armed for a stream's expiry; tokens valid for longer are
/// still refused at their `exp` on the next connection.
const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(366 * 24 * 3600);

/// The access-control settings of `tailcast serve`.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `--jwt-secret-file`: HMAC secret.
    pub jwt_secret_file: Option<PathBuf>,
    /// `--jwt-public-key`: PEM public key.
    pub jwt_public_key: Option<PathBuf>,
    /// `--jwks-url`: JWKS document.
    pub jwks_url: Option<String>,
    /// `--jwt-audience`: required `aud`.
    pub jwt_audience: Option<String>,
    /// `--jwt-issuer`: required `iss`.
    pub jwt_issuer: Option<String>,
    /// `--anonymous-subscribe`: channels anyone may subscribe to.
    pub anonymous_subscribe: Vec<String>,
    /// `--no-query-token`: refuse `?access_token=`.
    pub no_query_token: bool,
    /// `--metrics-public`: `/metrics` needs no token.
    pub metrics_public: bool,
    /// `--cors-origin` values: explicit origins may send the cookie.
    pub cors_origins: Vec<String>,
    /// How often the JWKS is fetched again (`jwks::REFRESH_INTERVAL`).
    pub jwks_refresh: Option<Duration>,
}

impl AuthSettings {
    /// Whether a key is configured, i.e. access control is on.
    pub fn enabled(&self) -> bool {
        self.jwt_secret_file.is_some() || self.jwt_public_key.is_some() || self.jwks_url.is_some()
    }

    /// Checks everything that can be checked without the network (key
    /// files, patterns, the URL), so a bad setting stops the server before
    /// it listens.
    ///
    /// # Errors
    /// As `Auth::start`.
    pub fn check(&self) -> Result<(), SettingsError> {
        prepare(self).map(drop)
    }
}

/// What [`Auth::start`] builds before any network access.
struct Prepared {
    keys: Option<PreparedKeys>,
    anonymous: Patterns,
}

enum PreparedKeys {
    Static(VerifyKey),
    Jwks(reqwest::Url),
}

fn prepare(settings: &AuthSettings) -> Result<Prepared, SettingsError> {
    let err = |setting, message: String| SettingsError { setting, message };
    let sources = [
        settings.jwt_secret_file.is_some(),
        settings.jwt_public_key.is_some(),
        settings.jwks_url.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(err(
            "access control",
            "give one of --jwt-secret-file, --jwt-public-key and --jwks-url".into(),
        ));
    }
    let anonymous = settings
        .anonymous_subscribe
        .iter()
        .map(|p| Pattern::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("--anonymous-subscribe", e.to_string()))?;
    if !settings.enabled() {
        for (set, flag) in [
            (!anonymous.is_empty(), "--anonymous-subscribe"),
            (settings.jwt_audience.is_some(), "--jwt-audience"),
            (settings.jwt_issuer.is_some(), "--jwt-issuer"),
            (settings.no_query_token, "--no-query-token"),
        ] {
            if set {
                return Err(err(
                    flag,
                    "only means something with access control on: \
                     add --jwt-secret-file, --jwt-public-key or --jwks-url"
                        .into(),
                ));
            }
        }
        return Ok(Prepared {
            keys: None,
            anonymous: Patterns::default(),
        });
    }
    let keys = if let Some(path) = &settings.jwt_secret_file {
        let secret =
            keys::read_secret(path).map_err(|e| err("--jwt-secret-file", e.to_string()))?;
        PreparedKeys::Static(keys::hmac_key(&secret))
    } else if let Some(path) = &settings.jwt_public_key {
        PreparedKeys::Static(
            keys::read_public_key(path).map_err(|e| err("--jwt-public-key", e.to_string()))?,
        )
    } else {
        let text = settings.jwks_url.as_deref().unwrap_or_default();
        PreparedKeys::Jwks(jwks_url(text).map_err(|message| err("--jwks-url", message))?)
    };
    Ok(Prepared {
        keys: Some(keys),
        anonymous: Patterns::new(anonymous),
    })
}

/// The URL of `--jwks-url`: `https://`, or `http://` only to a loopback
/// host (a key set fetched in the clear could be replaced on the way).
fn jwks_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| format!("{text:?} is not an https:// URL"))?;
    let loopback = url.host_str().is_some_and(is_loopback_name);
    if url.scheme() == "http" && !loopback {
        return Err(format!(
            "{text:?} is plain http: the key set must come over https:// \
             (http:// only to a loopback host)"
        ));
    }
    Ok(url)
}

/// Whether `host` (a name or an IP address, IPv6 possibly in brackets,
/// no port) is this machine by definition: `localhost`, `*.localhost`
/// (RFC 6761), 127.0.0.0/8 or `::1`.
pub(crate) fn is_loopback_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return ip.to_canonical().is_loopback();
    }
    host.eq_ignore_ascii_case("localhost")
        || host.len() > 10
            && host.is_char_boundary(host.len() - 10)
            && host[host.len() - 10..].eq_ignore_ascii_case(".localhost")
}

/// Settings that cannot be used; the message names the option.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingsError {
    /// The option.
    pub setting: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Where the keys come from.
enum KeySource {
    /// A secret or a PEM key.
    Static(VerifyKey),
    /// A JWKS URL.
    Jwks(Arc<Jwks>),
}

/// The verifier of an access-controlled server.
struct Verifier {
    keys: KeySource,
    audience: Option<String>,
    issuer: Option<String>,
    anonymous: Patterns,
    no_query_token: bool,
    metrics_public: bool,
    /// Origins (other than the server's own) whose requests may use the
    /// cookie: the explicit `--cors-origin` values, never `*`.
    cookie_origins: Vec<String>,
}

/// Access control of one server: off, or a verifier.
#[derive(Clone)]
pub(crate) struct Auth {
    verifier: Option<Arc<Verifier>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.verifier.is_some() {
            "Auth(on)"
        } else {
            "Auth(off)"
        })
    }
}

/// Who is calling, as far as rights go.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Access control is off: everything is allowed.
    Unrestricted,
    /// No token: only `--anonymous-subscribe` channels.
    Anonymous,
    /// A verified token.
    Token(Arc<TokenInfo>),
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    /// `sub`, if any (for logs; never the token itself).
    pub sub: Option<String>,
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    /// The `tailcast` claim.
    pub rights: Rights,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No token, and the request needs one.
    #[error("{0}")]
    Missing(String),
    /// A token was given and is not good: malformed, bad signature, wrong
    /// algorithm, expired, not yet valid, wrong audience or issuer, unknown
    /// key, or sent where it is refused.
    #[error("{0}")]
    Invalid(String),
    /// A good token (or none) without the right.
    #[error("{0}")]
    Forbidden(String),
    /// The channel name of a right breaks the naming rules: refused before
    /// any right is matched against it.
    #[error("{0}")]
    BadName(String),
}

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenOrigin {
    /// `Authorization: Bearer`.
    Header,
    /// The session cookie (either name).
    Cookie,
    /// `?access_token=`.
    Query,
}

/// The claims tailcast reads; `exp`, `nbf`, `aud` and `iss` are checked by
/// `jsonwebtoken` before these are looked at.
#[derive(serde::Deserialize)]
struct Claims {
    /// A NumericDate: an integer or a float. Required, but optional here
    /// so that its absence is reported by the validation, clearly.
    exp: Option<f64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    tailcast: Option<Rights>,
}

impl Auth {
    /// Access control off.
    pub(crate) fn off() -> Auth {
        Auth { verifier: None }
    }

    /// Builds access control from `settings` (off when no key is set). A
    /// JWKS is fetched once before this returns (a failure is logged and
    /// retried in the background) and refreshed until `shutdown`.
    ///
    /// # Errors
    /// Two key sources, an unreadable or unusable key, a bad URL or
    /// pattern, or `--anonymous-subscribe` without a key.
    pub(crate) async fn start(
        settings: &AuthSettings,
        shutdown: CancellationToken,
    ) -> Result<Auth, SettingsError> {
        let prepared = prepare(settings)?;
        let keys = match prepared.keys {
            None => return Ok(Auth::off()),
            Some(PreparedKeys::Static(key)) => KeySource::Static(key),
            Some(PreparedKeys::Jwks(url)) => {
                let jwks = Arc::new(Jwks::new(url).map_err(|message| SettingsError {
                    setting: "--jwks-url",
                    message,
                })?);
                jwks.start(
                    settings.jwks_refresh.unwrap_or(jwks::REFRESH_INTERVAL),
                    shutdown,
                )
                .await;
                KeySource::Jwks(jwks)
            }
        };
        Ok(Auth {
            verifier: Some(Arc::new(Verifier {
                keys,
                audience: settings.jwt_audience.clone(),
                issuer: settings.jwt_issuer.clone(),
                anonymous: prepared.anonymous,
                no_query_token: settings.no_query_token,
                metrics_public: settings.metrics_public,
                cookie_origins: settings
                    .cors_origins
                    .iter()
                    .filter(|o| *o != "*")
                    .cloned()
                    .collect(),
            })),
        })
    }

    /// Whether access control is on.
    pub(crate) fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Whether `/metrics` is public (`--metrics-public`, or access control off).
    pub(crate) fn metrics_public(&self) -> bool {
        self.verifier.as_ref().is_none_or(|v| v.metrics_public)
    }

    /// Authenticates a request from its headers and URI (query string;
    /// authority for HTTP/2's cookie origin check): no token is
    /// [`Caller::Anonymous`], a good one [`Caller::Token`].
    ///
    /// # Errors
    /// [`AuthError::Invalid`] for a token that is not good: it is never
    /// treated as no token.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Caller, AuthError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Caller::Unrestricted);
        };
        let host = request_host(uri, headers);
        let found = match find_token(headers, uri.query(), host, &verifier.cookie_origins)? {
            None if BASIC_AUTH_PATHS.contains(&uri.path()) => {
                basic_password(headers)?.map(|token| (token, TokenOrigin::Header))
            }
            found => found,
        };
        match found {
            None => Ok(Caller::Anonymous),
            Some((_, TokenOrigin::Query)) if verifier.no_query_token => Err(AuthError::Invalid(
                "tokens in the URL (?access_token=) are refused by this server \
                 (--no-query-token); send Authorization: Bearer <token>"
                    .into(),
            )),
            Some((token, _)) => Ok(Caller::Token(Arc::new(verifier.verify(&token).await?))),
        }
    }

    /// Verifies one token (for `POST /api/session`, which takes it from the
    /// bearer header only).
    ///
    /// # Errors
    /// [`AuthError::Invalid`] saying what is wrong; [`AuthError::Missing`]
    /// when access control is off (there is nothing to sign in to).
    pub(crate) async fn verify(&self, token: &str) -> Result<TokenInfo, AuthError> {
        match &self.verifier {
            Some(verifier) => verifier.verify(token).await,
            None => Err(AuthError::Missing(
                "access control is off on this server: no sign-in needed".into(),
            )),
        }
    }

    /// Checks that `caller` may do `right`. A channel name is validated
    /// first: no right is ever matched against a name the hub would refuse.
    ///
    /// # Errors
    /// [`AuthError::BadName`] for a name that breaks the naming rules,
    /// [`AuthError::Missing`] for an anonymous caller (a token may help),
    /// [`AuthError::Forbidden`] for a token without the right.
    pub(crate) fn authorize(&self, caller: &Caller, right: Right<'_>) -> Result<(), AuthError> {
        self.authorize_as(caller, right, &right.to_string())
    }

    /// [`Auth::authorize`], with the refusal naming the action `shown`
    /// instead of `right` (e.g. "open the first log stream", so that a
    /// stranger does not learn the name of what it was refused).
    ///
    /// # Errors
    /// As [`Auth::authorize`].
    pub(crate) fn authorize_as(
        &self,
        caller: &Caller,
        right: Right<'_>,
        shown: &str,
    ) -> Result<(), AuthError> {
        if let Right::Subscribe(name) | Right::Publish(name) = right {
            if let Err(e) = crate::hub::ChannelName::parse(name) {
                return Err(AuthError::BadName(e.to_string()));
            }
        }
        if self.may(caller, right) {
            return Ok(());
        }
        match caller {
            Caller::Token(info) => Err(AuthError::Forbidden(match &info.sub {
                Some(sub) => format!("the token of {sub:?} may not {shown}"),
                None => format!("this token may not {shown}"),
            })),
            _ => Err(AuthError::Missing(format!(
                "a token is needed to {shown}: send Authorization: Bearer <token>, \
                 the session cookie (POST /api/session) or ?{QUERY_PARAM}="
            ))),
        }
    }

    /// Whether `caller` may do `right` (for filtering lists).
    pub(crate) fn may(&self, caller: &Caller, right: Right<'_>) -> bool {
        let Some(verifier) = &self.verifier else {
            return true;
        };
        match caller {
            Caller::Unrestricted => true,
            Caller::Anonymous => match right {
                Right::Subscribe(channel) => verifier.anonymous.allows(channel),
                Right::AnyStream => !verifier.anonymous.is_empty(),
                Right::Admin => false,
                Right::Publish(_) | Right::PublishAny | Right::Broadcast => false,
            },
            Caller::Token(info) => info.rights.grants(right),
        }
    }

    /// Checks that `caller` may list streams (`/api/streams`): anyone with
    /// a token (the list is filtered), and anonymous callers only when some
    /// channels are open to them.
    ///
    /// # Errors
    /// [`AuthError::Missing`] for an anonymous caller who could see nothing.
    pub(crate) fn authorize_listing(&self, caller: &Caller) -> Result<(), AuthError> {
        match (&self.verifier, caller) {
            (Some(v), Caller::Anonymous) if v.anonymous.is_empty() => {
                Err(AuthError::Missing(format!(
                    "a token is needed to list streams: send Authorization: Bearer <token>, \
                     the session cookie (POST /api/session) or ?{QUERY_PARAM}="
                )))
            }
            _ => Ok(()),
        }
    }

    /// Checks that `caller` may read `/metrics`: `admin`, unless
    /// `--metrics-public`.
    ///
    /// # Errors
    /// As [`Auth::authorize`].
    pub(crate) fn authorize_metrics(&self, caller: &Caller) -> Result<(), AuthError> {
        if self.metrics_public() {
            return Ok(());
        }
        self.authorize(caller, Right::Admin)
    }
}

impl Caller {
    /// How long until the caller's token stops being accepted, capped at a
    /// year; `None` without a token. Validation compares whole seconds
    /// (`exp < now - leeway` refuses), so the first refused instant is
    /// `exp + leeway + 1`.
    pub(crate) fn expires_in(&self) -> Option<Duration> {
        let Caller::Token(info) = self else {
            return None;
        };
        Some(time_until(info.exp.saturating_add(LEEWAY_SECS + 1)).min(MAX_EXPIRY_WAIT))
    }

    /// Whether this caller has admin rights (or access control is off).
    pub(crate) fn is_admin(&self) -> bool {
        match self {
            Caller::Unrestricted => true,
            Caller::Anonymous => false,
            Caller::Token(info) => info.rights.admin,
        }
    }
}

/// Time from now until `epoch_secs` (zero if past).
fn time_until(epoch_secs: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(epoch_secs).saturating_sub(now)
}

impl Verifier {
    async fn verify(&self, token: &str) -> Result<TokenInfo, AuthError> {
        let invalid = |why: String| Err(AuthError::Invalid(why));
        if token.len() > MAX_TOKEN {
            return invalid(format!("the token is longer than {MAX_TOKEN} bytes"));
        }
        let header = match jsonwebtoken::decode_header(token) {
            Ok(header) => header,
            Err(e) => {
                let why = match e.kind() {
                    ErrorKind::Json(json) if json.to_string().contains("unknown variant") => {
                        return invalid(
                            "the header's alg is not a signature algorithm this server knows \
                             (alg none is never accepted)"
                                .into(),
                        )
                    }
                    ErrorKind::Json(json) => format!("bad header: {json}"),
                    _ => describe(&e),
                };
                return invalid(format!(
                    "malformed token ({why}); expected a signed JWT (header.payload.signature)"
                ));
            }
        };
        let candidates = match &self.keys {
            KeySource::Static(key) => vec![key.clone()],
            KeySource::Jwks(jwks) => match jwks.lookup(header.kid.as_deref()).await {
                Lookup::Found(keys) => keys,
                Lookup::UnknownKid => {
                    return invalid(match &header.kid {
                        Some(kid) => format!("no key with kid {kid:?} in the JWKS"),
                        None => "no key in the JWKS verifies this token".into(),
                    })
                }
                Lookup::NoKeys => {
                    return invalid(
                        "the server has no keys yet (the JWKS could not be fetched)".into(),
                    )
                }
            },
        };
        let usable: Vec<&VerifyKey> = candidates
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .collect();
        if usable.is_empty() {
            let accepted: Vec<String> = candidates
                .iter()
                .flat_map(|k| k.algorithms.iter().map(|a| format!("{a:?}")))
                .collect();
            return invalid(format!(
                "algorithm {:?} is not accepted here; this server's key verifies {}",
                header.alg,
                accepted.join(", ")
            ));
        }
        let validation = self.validation(header.alg);
        let mut last = None;
        for key in usable {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    return Ok(TokenInfo {
                        sub: data.claims.sub,
                        exp: data.claims.exp.unwrap_or_default().max(0.0) as u64,
                        rights: data.claims.tailcast.unwrap_or_default(),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("at least one key was tried");
        invalid(describe(&e))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(aud) = &self.audience {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// A token error for people, never quoting the token.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => {
            "the token's audience (aud) does not match --jwt-audience (or the server has none \
             and the token names one)"
                .into()
        }
        ErrorKind::InvalidIssuer => "the token's issuer (iss) does not match --jwt-issuer".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        ErrorKind::InvalidAlgorithm => "the algorithm does not fit the key".into(),
        ErrorKind::InvalidAlgorithmName => "unknown or forbidden algorithm (alg)".into(),
        ErrorKind::Json(e) => format!("bad claims: {e}"),
        ErrorKind::Base64(_) => "bad base64url encoding".into(),
        ErrorKind::Utf8(_) => "invalid UTF-8".into(),
        ErrorKind::InvalidToken => "not a JWT".into(),
        _ => "the token cannot be verified".into(),
    }
}

/// Finds the token of a request: bearer header, then cookie (only from
/// the server's own origin, compared with `host` (see [`request_host`]),
/// or an explicit `--cors-origin`; `__Host-tailcast_token` before
/// `tailcast_token`), then query.
///
/// # Errors
/// [`AuthError::Invalid`] for an empty bearer token.
pub(crate) fn find_token(
    headers: &HeaderMap,
    query: Option<&str>,
    host: Option<&str>,
    cookie_origins: &[String],
) -> Result<Option<(String, TokenOrigin)>, AuthError> {
    for value in headers.get_all(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        let value = value.trim();
        let Some((scheme, rest)) = value.split_once(' ').or(Some((value, ""))) else {
            continue;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            if token.is_empty() {
                return Err(AuthError::Invalid("empty bearer token".into()));
            }
            return Ok(Some((token.to_string(), TokenOrigin::Header)));
        }
    }
    if cookie_allowed(headers, host, cookie_origins) {
        for name in [SECURE_COOKIE_NAME, COOKIE_NAME] {
            if let Some(token) = cookie_value(headers, name) {
                if !token.is_empty() {
                    return Ok(Some((token.to_string(), TokenOrigin::Cookie)));
                }
            }
        }
    }
    if let Some(query) = query {
        if let Some((_, token)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == QUERY_PARAM)
        {
            return Ok(Some((token.into_owned(), TokenOrigin::Query)));
        }
    }
    Ok(None)
}

/// Paths where `Authorization: Basic` carries a token as its password
/// (the user name is ignored): Loki push, whose clients can send Basic
/// credentials but not a bearer token. Nowhere else: a browser may keep
/// Basic credentials and send them on its own, cross-site too, which
/// bearer tokens never are.
pub(crate) const BASIC_AUTH_PATHS: [&str; 1] = ["/loki/api/v1/push"];

/// The password of the request's `Authorization: Basic` credentials, if it
/// has any.
///
/// # Errors
/// [`AuthError::Invalid`] for credentials that are not base64 of
/// `user:password` or have an empty password (never quoting them).
pub(crate) fn basic_password(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    use base64::Engine as _;
    for value in headers.get_all(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            continue;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            continue;
        }
        let rest = rest.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(rest))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                AuthError::Invalid("the Basic credentials are not base64 of user:password".into())
            })?;
        let password = decoded.split_once(':').map_or("", |(_, p)| p);
        if password.is_empty() {
            return Err(AuthError::Invalid(
                "the Basic credentials have no password: send the token as the password".into(),
            ));
        }
        return Ok(Some(password.to_string()));
    }
    Ok(None)
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Whether the cookie may be used: no `Origin` (a same-origin GET, curl),
/// the server's own origin (compared with `host`), or an origin listed
/// explicitly in `--cors-origin`. With `--cors-origin '*'` any other
/// origin's request is cross-origin and its cookie is ignored.
fn cookie_allowed(headers: &HeaderMap, host: Option<&str>, cookie_origins: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    cookie_origins.iter().any(|o| o == origin) || host.is_some_and(|h| same_origin(origin, h))
}

/// The authority a request was sent to: the URI's (HTTP/2 `:authority`, an
/// HTTP/1.1 absolute-form target), else the `Host` header.
pub(crate) fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
}

/// Whether `origin` (`scheme://host[:port]`) is the origin of a page
/// served from `host` (`host[:port]`, as in `Host`): same host name (any
/// case, a final `.` ignored) and port (the scheme's default when none is
/// written). The scheme itself is not compared: one port serves one
/// scheme, and behind a TLS proxy the server cannot see it. `null` is
/// never anyone's own origin.
pub(crate) fn same_origin(origin: &str, host: &str) -> bool {
    let (authority, default_port) = if let Some(a) = origin.strip_prefix("https://") {
        (a, 443)
    } else if let Some(a) = origin.strip_prefix("http://") {
        (a, 80)
    } else {
        return false;
    };
    match (
        split_authority(authority, default_port),
        split_authority(host, default_port),
    ) {
        (Some((oh, op)), Some((hh, hp))) => op == hp && oh.eq_ignore_ascii_case(hh),
        _ => false,
    }
}

/// `host[:port]` (host possibly a bracketed IPv6 address) split into the
/// host without brackets or final `.`, and the port (`default` when
/// none); `None` when the port is not a number.
pub(crate) fn split_authority(authority: &str, default: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((host.strip_suffix('.').unwrap_or(host), port))
}

/// `uri` with the value of every `access_token=` query parameter replaced
/// by `REDACTED`, for logging.
pub(crate) fn redact(uri: &str) -> std::borrow::Cow<'_, str> {
    let Some((path, query)) = uri.split_once('?') else {
        return uri.into();
    };
    if !query.split('&').any(is_token_param) {
        return uri.into();
    }
    let query: Vec<&str> = query
        .split('&')
        .map(|p| {
            if is_token_param(p) {
                "access_token=REDACTED"
            } else {
                p
            }
        })
        .collect();
    format!("{path}?{}", query.join("&")).into()
}

fn is_token_param(pair: &str) -> bool {
    let key = pair.split('=').next().unwrap_or("");
    key == QUERY_PARAM
        || (key.contains('%')
            && form_urlencoded::parse(key.as_bytes())
                .next()
                .is_some_and(|(k, _)| k == QUERY_PARAM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn tokens_come_from_header_then_cookie_then_query() {
        let all = headers(&[
            ("authorization", "Bearer h"),
            ("cookie", "a=1; tailcast_token=c"),
        ]);
        let q = Some("x=1&access_token=q");
        assert_eq!(
            find_token(&all, q, None, &[]).unwrap(),
            Some(("h".into(), TokenOrigin::Header))
        );
        let cookie = headers(&[("cookie", "a=1; tailcast_token=c")]);
        assert_eq!(
            find_token(&cookie, q, None, &[]).unwrap(),
            Some(("c".into(), TokenOrigin::Cookie))
        );
        assert_eq!(
            find_token(&HeaderMap::new(), q, None, &[]).unwrap(),
            Some(("q".into(), TokenOrigin::Query))
        );
        assert_eq!(
            find_token(&HeaderMap::new(), Some("x=1"), None, &[]).unwrap(),
            None
        );
        // Other schemes are not tokens; an empty bearer is an error.
        let basic = headers(&[("authorization", "Basic dTpw")]);
        assert_eq!(find_token(&basic, None, None, &[]).unwrap(), None);
        let empty = headers(&[("authorization", "Bearer ")]);
        assert!(find_token(&empty, q, None, &[]).is_err());
        let lower = headers(&[("authorization", "bearer  t ")]);
        assert_eq!(find_token(&lower, None, None, &[]).unwrap().unwrap().0, "t");
    }

    #[test]
    fn basic_credentials_carry_a_token_as_password() {
        // "loki:tok.en" and "user:" in base64.
        let basic = headers(&[("authorization", "Basic bG9raTp0b2suZW4=")]);
        assert_eq!(basic_password(&basic).unwrap().as_deref(), Some("tok.en"));
        let unpadded = headers(&[("authorization", "basic bG9raTp0b2suZW4")]);
        assert_eq!(
            basic_password(&unpadded).unwrap().as_deref(),
            Some("tok.en")
        );
        assert!(basic_password(&headers(&[("authorization", "Basic dXNlcjo=")])).is_err());
        assert!(basic_password(&headers(&[("authorization", "Basic !!")])).is_err());
        assert_eq!(
            basic_password(&headers(&[("authorization", "Bearer t")])).unwrap(),
            None
        );
        assert_eq!(basic_password(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn cookies_count_only_from_the_own_origin_or_an_explicit_one() {
        let own = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
            ("cookie", "tailcast_token=c"),
        ]);
        assert!(find_token(&own, None, Some("127.0.0.1:8000"), &[])
            .unwrap()
            .is_some());
        // No Host header over HTTP/2: the authority is passed instead.
        assert!(find_token(&own, None, None, &[]).unwrap().is_none());
        let other = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://evil.example"),
            ("cookie", "tailcast_token=c"),
        ]);
        assert_eq!(
            find_token(&other, None, Some("127.0.0.1:8000"), &[]).unwrap(),
            None
        );
        assert_eq!(
            find_token(&other, Some("access_token=q"), Some("127.0.0.1:8000"), &[]).unwrap(),
            Some(("q".into(), TokenOrigin::Query))
        );
        let listed = ["http://evil.example".to_string()];
        assert!(find_token(&other, None, Some("127.0.0.1:8000"), &listed)
            .unwrap()
            .is_some());
        let null = headers(&[
            ("host", "h"),
            ("origin", "null"),
            ("cookie", "tailcast_token=c"),
        ]);
        assert_eq!(find_token(&null, None, Some("h"), &[]).unwrap(), None);
    }

    #[test]
    fn the_host_prefixed_cookie_is_read_first() {
        let both = headers(&[(
            "cookie",
            "tailcast_token=plain; __Host-tailcast_token=secure",
        )]);
        assert_eq!(
            find_token(&both, None, None, &[]).unwrap(),
            Some(("secure".into(), TokenOrigin::Cookie))
        );
        assert_eq!(cookie_name(true), "__Host-tailcast_token");
        assert_eq!(cookie_name(false), "tailcast_token");
    }

    #[test]
    fn own_origins_compare_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8000", "127.0.0.1:8000"));
        assert!(same_origin("https://Logs.Example", "logs.example:443"));
        assert!(same_origin("http://localhost", "localhost."));
        assert!(same_origin("http://[::1]:8000", "[::1]:8000"));
        assert!(!same_origin("http://127.0.0.1:8001", "127.0.0.1:8000"));
        assert!(!same_origin("http://evil.example", "127.0.0.1"));
        assert!(!same_origin("null", "127.0.0.1"));
        assert!(!same_origin("http://a:x", "a"));
        assert_eq!(split_authority("[::1]:9", 80), Some(("::1", 9)));
        assert_eq!(split_authority("h", 80), Some(("h", 80)));
    }

    #[test]
    fn names_are_validated_before_rights_are_matched() {
        let auth = Auth::off();
        let e = auth
            .authorize(&Caller::Unrestricted, Right::Subscribe("bad name"))
            .unwrap_err();
        assert!(matches!(e, AuthError::BadName(_)), "{e:?}");
        assert!(auth
            .authorize(&Caller::Unrestricted, Right::Publish("news"))
            .is_ok());
    }

    #[test]
    fn access_tokens_are_redacted_in_uris() {
        assert_eq!(redact("/events?channel=a"), "/events?channel=a");
        assert_eq!(
            redact("/events?access_token=abc.def.ghi&channel=a"),
            "/events?access_token=REDACTED&channel=a"
        );
        assert_eq!(
            redact("/x?a=1&access_token=t&access_token=u"),
            "/x?a=1&access_token=REDACTED&access_token=REDACTED"
        );
        assert_eq!(redact("/x?access%5Ftoken=t"), "/x?access_token=REDACTED");
        assert_eq!(redact("/x?access_tokens=t"), "/x?access_tokens=t");
        assert_eq!(redact("/plain"), "/plain");
    }

    #[tokio::test]
    async fn settings_are_checked() {
        let token = CancellationToken::new();
        let off = Auth::start(&AuthSettings::default(), token.clone())
            .await
            .unwrap();
        assert!(!off.enabled());
        let lonely = AuthSettings {
            anonymous_subscribe: vec!["news".into()],
            ..AuthSettings::default()
        };
        let e = Auth::start(&lonely, token.clone()).await.err().unwrap();
        assert!(e.to_string().contains("--anonymous-subscribe"), "{e}");
        let two = AuthSettings {
            jwt_secret_file: Some("/a".into()),
            jwks_url: Some("http://127.0.0.1:1/".into()),
            ..AuthSettings::default()
        };
        assert!(Auth::start(&two, token.clone()).await.is_err());
        for bad in [
            "ftp://x/",
            "http://keys.example/jwks.json",
            "http://10.0.0.1/k",
        ] {
            let bad_url = AuthSettings {
                jwks_url: Some(bad.into()),
                ..AuthSettings::default()
            };
            let e = bad_url.check().err().unwrap();
            assert!(e.to_string().contains("--jwks-url"), "{e}");
        }
        for good in [
            "https://keys.example/jwks.json",
            "http://127.0.0.1:9/k",
            "http://[::1]:9/k",
            "http://localhost:9/k",
        ] {
            assert!(jwks_url(good).is_ok(), "{good}");
        }
        drop(token);
    }
}
