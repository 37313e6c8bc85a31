//! `tailcast token`: HS256 tokens for operators, signed with the same
//! secret file the server reads.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::keys::{read_secret, KeyError};
use super::rights::Rights;

/// What to put in a token.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// The rights (the `tailcast` claim).
    pub rights: Rights,
    /// Lifetime from now.
    pub ttl: Duration,
    /// `aud`, if any.
    pub audience: Option<String>,
    /// `iss`, if any.
    pub issuer: Option<String>,
    /// `sub`, if any.
    pub subject: Option<String>,
}

/// The claims written.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    tailcast: &'a Rights,
}

/// Signs `spec` with `secret` (HS256).
///
/// # Errors
/// Signing failed (it does not with an HMAC key).
pub(crate) fn mint(secret: &[u8], spec: &TokenSpec) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        iat: now,
        exp: now.saturating_add(spec.ttl.as_secs().max(1)),
        sub: spec.subject.as_deref(),
        aud: spec.audience.as_deref(),
        iss: spec.issuer.as_deref(),
        tailcast: &spec.rights,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

/// Reads the secret file and signs `spec`.
///
/// # Errors
/// The secret file is unreadable or too short.
pub fn mint_with_file(secret_file: &Path, spec: &TokenSpec) -> Result<String, KeyError> {
    let secret = read_secret(secret_file)?;
    mint(&secret, spec).map_err(KeyError::Invalid)
}
