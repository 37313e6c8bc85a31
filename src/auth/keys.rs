//! Verification keys, each pinned to the algorithms its type allows.
//!
//! An HMAC secret verifies HS256/384/512 only; an RSA key RS*/PS*; an EC
//! key ES256 (P-256) or ES384 (P-384); an Ed25519 key EdDSA. The algorithm
//! named in a token's header must be one of its key's: this is what stops
//! algorithm confusion (an HS256 token "signed" with an RSA public key) and
//! `alg: none` (not an algorithm at all).

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// Shortest HMAC secret accepted, in bytes (256 bits, the size of HS256's
/// hash: a shorter secret is the weak point of the token).
pub(crate) const MIN_SECRET: usize = 32;

/// A key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyKey {
    /// The key material.
    pub key: DecodingKey,
    /// The algorithms accepted with it (never empty).
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// A key file or JWKS entry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key is unusable; the message says why and what to do.
    #[error("{0}")]
    Invalid(String),
}

/// Reads an HMAC secret: the file's bytes, less trailing whitespace (a
/// secret written with `echo` keeps its newline otherwise).
///
/// # Errors
/// The file cannot be read or the secret is shorter than [`MIN_SECRET`].
pub(crate) fn read_secret(path: &Path) -> Result<Vec<u8>, KeyError> {
    let mut secret = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    while secret.last().is_some_and(u8::is_ascii_whitespace) {
        secret.pop();
    }
    if secret.len() < MIN_SECRET {
        return Err(KeyError::Invalid(format!(
            "the secret in {} is {} bytes; use at least {MIN_SECRET} \
             (e.g. `head -c 32 /dev/urandom | base64 > {}`)",
            path.display(),
            secret.len(),
            path.display()
        )));
    }
    Ok(secret)
}

/// The key for an HMAC secret: HS256, HS384, HS512.
pub(crate) fn hmac_key(secret: &[u8]) -> VerifyKey {
    VerifyKey {
        key: DecodingKey::from_secret(secret),
        algorithms: AlgorithmFamily::Hmac.algorithms().to_vec(),
    }
}

/// Reads a PEM public key (RSA, EC P-256/P-384 or Ed25519) and pins the
/// algorithms to its type.
///
/// # Errors
/// The file cannot be read, holds a private key, or a key of another type.
pub(crate) fn read_public_key(path: &Path) -> Result<VerifyKey, KeyError> {
    let pem = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    public_key_from_pem(&pem).map_err(|why| KeyError::Invalid(format!("{}: {why}", path.display())))
}

/// [`read_public_key`] on the PEM text itself.
///
/// # Errors
/// A message saying what the PEM holds instead of a usable public key.
pub(crate) fn public_key_from_pem(pem: &[u8]) -> Result<VerifyKey, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("PRIVATE KEY-----") {
        return Err(
            "this is a private key; give the server the public key only \
             (e.g. `openssl pkey -in key.pem -pubout`)"
                .into(),
        );
    }
    if !text.contains("-----BEGIN ") {
        return Err("not a PEM file (expected -----BEGIN PUBLIC KEY-----)".into());
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(VerifyKey {
            key,
            algorithms: AlgorithmFamily::Rsa.algorithms().to_vec(),
        });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        if key.as_bytes().len() == 32 {
            return Ok(VerifyKey {
                key,
                algorithms: vec![Algorithm::EdDSA],
            });
        }
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The uncompressed point 04 || x || y tells the curve.
        let algorithm = match key.as_bytes().len() {
            65 => Algorithm::ES256,
            97 => Algorithm::ES384,
            _ => return Err("an EC key on a curve other than P-256 or P-384".into()),
        };
        return Ok(VerifyKey {
            key,
            algorithms: vec![algorithm],
        });
    }
    Err("not an RSA, EC (P-256, P-384) or Ed25519 public key".into())
}

/// The key of one JWKS entry, with the algorithms it may verify: its
/// `alg` if it names one (and it fits the key type), else every algorithm
/// of the key type and curve.
///
/// # Errors
/// Why the entry is skipped: an encryption key, a symmetric key (a secret
/// published in a JWKS is a mistake), an unsupported curve, or an `alg`
/// that does not fit the key.
pub(crate) fn jwk_key(jwk: &Jwk) -> Result<VerifyKey, String> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("an encryption key (use: enc)".into());
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err(format!("an EC key on unsupported curve {:?}", ec.curve)),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err(format!("an OKP key on unsupported curve {:?}", okp.curve)),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric (oct) key; JWKS keys must be public keys".into())
        }
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(alg) => {
            let named = key_algorithm(alg)
                .filter(|a| by_type.contains(a))
                .ok_or_else(|| format!("alg {alg} does not fit the key type"))?;
            vec![named]
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerifyKey { key, algorithms })
}

/// The signature algorithm a JWK `alg` names, if any.
fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    alg.to_string().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public keys made with openssl for these tests only.
    const RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoG1XtDXokC6hvM1rclAK
XAWeayo3GVgnPamCrWC1M3u1eX2C0xtVnKNEseSyCDWy5XVKLRzg7WDRsAZ/Yw1P
yA/M7F5M90vBz4Koxr7c7eWR7oXFJWes+g7VwWFNwesDjypnhzzh0NQRmwRYxG+j
HF1fL/y2/A/P3G/0oa3wqX7I8Ihio+cup9SwFEJWc85R7zjMUkSi7zLUDcdmgnMG
iF97fXS4c4M197/Mtmjc6NbD1EY2bKbLobpbni0bM6mW9MnfyzZ7TOPSyPFSOZKZ
t2s8MsPN3L0to9HuNN0jNvDNOmwrgptQ2iEBd9yFEt8Pr1OfOJ6dWRC/AFASKFSh
mQIDAQAB
-----END PUBLIC KEY-----
";
    const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDD+S65lPT42m92eUoEvCVrJMSV6u
q7w3Hxlux8uMLgMweb2ol4xT7KP/RA4MdhuofsN04o5b/PE52tb/H6MG5Q==
-----END PUBLIC KEY-----
";
    const EC384_PUB: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEvVZDj0NdWWIlH01ULo5vqhIsOWYEvLy/
7VqoyJvdgz5wFJ6j4PB+ceHD+2uNDGwhHCQ9AhJe79vNf1y5pik9nSkWCVR/g2aD
7JZAG6eQyqAomF5jURc3GACXHaUKKFDk
-----END PUBLIC KEY-----
";
    const ED_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAw2m6RsSt42bJart21ZXJ12d3IP6qF1yu5evXGVg4fXs=
-----END PUBLIC KEY-----
";

    #[test]
    fn pem_keys_are_pinned_to_their_type() {
        let rsa = public_key_from_pem(RSA_PUB.as_bytes()).unwrap();
        assert!(rsa.algorithms.contains(&Algorithm::RS256));
        assert!(rsa.algorithms.contains(&Algorithm::PS512));
        assert!(!rsa.algorithms.contains(&Algorithm::HS256));
        let ec = public_key_from_pem(EC_PUB.as_bytes()).unwrap();
        assert_eq!(ec.algorithms, [Algorithm::ES256]);
        let ec384 = public_key_from_pem(EC384_PUB.as_bytes()).unwrap();
        assert_eq!(ec384.algorithms, [Algorithm::ES384]);
        let ed = public_key_from_pem(ED_PUB.as_bytes()).unwrap();
        assert_eq!(ed.algorithms, [Algorithm::EdDSA]);
    }

    #[test]
    fn private_keys_and_garbage_are_refused() {
        let e =
            public_key_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err();
        assert!(e.contains("private key"), "{e}");
        assert!(public_key_from_pem(b"hello")
            .unwrap_err()
            .contains("not a PEM"));
        let e =
            public_key_from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(e.contains("not an RSA"), "{e}");
    }

    #[test]
    fn short_secrets_are_refused_and_newlines_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "short\n").unwrap();
        let e = read_secret(&path).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(&path, format!("{}\n", "k".repeat(32))).unwrap();
        assert_eq!(read_secret(&path).unwrap(), "k".repeat(32).as_bytes());
        assert!(read_secret(&dir.path().join("none")).is_err());
    }

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn jwks_entries_take_their_alg_or_their_type() {
        let ed = jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "a",
            "x": "w2m6RsSt42bJart21ZXJ12d3IP6qF1yu5evXGVg4fXs"}),
        );
        assert_eq!(jwk_key(&ed).unwrap().algorithms, [Algorithm::EdDSA]);
        let rsa = jwk(serde_json::json!({"kty": "RSA", "alg": "RS256", "n": "u1SU", "e": "AQAB"}));
        assert_eq!(jwk_key(&rsa).unwrap().algorithms, [Algorithm::RS256]);
        let confused =
            jwk(serde_json::json!({"kty": "RSA", "alg": "HS256", "n": "u1SU", "e": "AQAB"}));
        assert!(jwk_key(&confused).unwrap_err().contains("does not fit"));
        let oct = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(jwk_key(&oct).unwrap_err().contains("symmetric"));
        let enc = jwk(serde_json::json!({"kty": "RSA", "use": "enc", "n": "u1SU", "e": "AQAB"}));
        assert!(jwk_key(&enc).unwrap_err().contains("encryption"));
    }
}
