//! JWTs whose header we read ourselves (DPoP proofs, client assertions): the algorithm
//! names clients send, and the signature check under the algorithm *we* chose for the
//! key.
//!
//! Done here rather than by `jsonwebtoken::decode` because clients already send RFC 9864's
//! fully-specified `Ed25519` (oauth4webapi does for every Ed25519 key), a name that crate
//! does not parse; and because these JWTs' claims are checked by their own rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::DeserializeOwned;

/// The algorithm a JWS header's `alg` names, among those we verify: ECDSA P-256, Ed25519
/// (as `EdDSA` or RFC 9864's `Ed25519`), and RSA (PSS or PKCS #1 v1.5) with SHA-256.
pub(crate) fn named_alg(name: &str) -> Option<Algorithm> {
    match name {
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" | "Ed25519" => Some(Algorithm::EdDSA),
        "PS256" => Some(Algorithm::PS256),
        "RS256" => Some(Algorithm::RS256),
        _ => None,
    }
}

/// The header of a compact JWS, as JSON, if it is one.
pub(crate) fn header(jwt: &str) -> Option<serde_json::Value> {
    part(jwt, 0)
}

/// The claims of a compact JWS, as JSON, *unverified*: only to know which keys to verify
/// it with.
pub(crate) fn unverified_claims(jwt: &str) -> Option<serde_json::Value> {
    part(jwt, 1)
}

fn part(jwt: &str, n: usize) -> Option<serde_json::Value> {
    jwt.split('.')
        .nth(n)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .filter(serde_json::Value::is_object)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwsError {
    /// Not three base64url parts, or claims that are not the expected JSON.
    Malformed,
    BadSignature,
}

/// The claims of `jwt` once its signature verifies with `key` under `alg`.
pub(crate) fn verified_claims<T: DeserializeOwned>(
    jwt: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<T, JwsError> {
    let mut parts = jwt.split('.');
    let (Some(head), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let signed = jwt.get(..head.len() + 1 + payload.len()).ok_or(JwsError::Malformed)?;
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), key, alg) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(JwsError::BadSignature),
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| JwsError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| JwsError::Malformed)
}
