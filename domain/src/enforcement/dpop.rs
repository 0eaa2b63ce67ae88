//! DPoP proofs (RFC 9449): a client proves, on every request, that it holds the private
//! key its access token is bound to (`cnf.jkt`), so a token copied from a log or a prompt
//! is useless without the key.
//!
//! Checked here, without a database or HTTP types: the proof's form and signature
//! (§4.3: `typ` `dpop+jwt`, an asymmetric algorithm we support, the public key in `jwk`
//! and nothing private), that it was made for this request (`htm`, `htu`), when (`iat`),
//! for which token (`ath`), and with which server nonce. That the proof is used once
//! (`jti`) is the caller's check, because across replicas it is a shared write
//! (`Enforcement::first_use_local` is this process's half of it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::jws;
use crate::model::Reason;
use crate::secrets::{hmac_sha256, ServerSecret};
use crate::time::SECOND;

/// The proof algorithms accepted, as `dpop_signing_alg_values_supported` lists them:
/// ECDSA P-256 (what most libraries default to) and Ed25519, by its RFC 9864 name and
/// its older one.
pub const DPOP_ALGS: [&str; 3] = ["ES256", "Ed25519", "EdDSA"];
/// How old a proof may be (by its `iat`); it is remembered as used for this long plus
/// the leeway, so a proof can never be used twice.
pub const PROOF_MAX_AGE_SECS: i64 = 60;
/// How far in the future a proof's `iat` may be (clock skew).
pub const PROOF_LEEWAY_SECS: i64 = 5;
/// A proof larger than this is refused unread: it carries one public key and six claims.
pub const MAX_PROOF_BYTES: usize = 4096;
/// A server nonce is good for the window it was made in and the next one.
const NONCE_WINDOW_SECS: i64 = 300;

/// What a proof must have been made for.
#[derive(Debug, Clone)]
pub struct ProofCheck<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL as the client reached it, without query or fragment (`htu`).
    pub url: &'a str,
    /// The access token sent with it, for a resource request: the proof must name its
    /// hash (`ath`).
    pub access_token: Option<&'a str>,
    /// Whether the proof must carry a current server nonce (the token endpoint's rule).
    pub nonce_required: bool,
}

/// A proof that passed every check but the one-use check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The JWK SHA-256 thumbprint (RFC 7638) of the key that signed it: what a token is
    /// bound to.
    pub jkt: String,
    /// What identifies this proof for the one-use check: its key's thumbprint and its
    /// `jti`, hashed.
    pub replay_key: [u8; 32],
}

/// Why a proof is refused. Each says which check failed; a caller reads `description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// A DPoP-bound token came without a `DPoP` header.
    Missing,
    /// More than one `DPoP` header (§4.3 check 1).
    Several,
    /// Not a JWT, too large, or a claim missing or of the wrong type.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    /// `none`, a symmetric algorithm, one we do not support, or one that does not fit
    /// the key.
    UnsupportedAlgorithm,
    /// No public key in the header's `jwk`.
    MissingKey,
    /// The `jwk` carries private key material.
    PrivateKey,
    BadSignature,
    MethodMismatch,
    UrlMismatch,
    /// Older than `PROOF_MAX_AGE_SECS`.
    Stale,
    /// Made in the future, past the leeway.
    FromTheFuture,
    /// A resource request's proof lacks `ath`, or it is not the token's hash.
    TokenHashMismatch,
    /// A nonce is required and missing, or no longer current: answer with a new one.
    NonceRequired,
    /// Signed with another key than the one the token is bound to (or the token is not
    /// bound at all).
    KeyMismatch,
    /// This proof was already used.
    Replayed,
}

impl ProofError {
    /// Said to the caller in `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            ProofError::Missing => "the access token is DPoP-bound: send a DPoP proof in the DPoP header",
            ProofError::Several => "send exactly one DPoP proof",
            ProofError::Malformed => {
                "the DPoP proof is not a well-formed JWT (at most 4 KiB) with jti, htm, htu and iat"
            }
            ProofError::WrongType => "the DPoP proof's typ must be dpop+jwt",
            ProofError::UnsupportedAlgorithm => {
                "the DPoP proof's alg must be ES256, or Ed25519 (EdDSA), matching its key"
            }
            ProofError::MissingKey => "the DPoP proof carries no public key (jwk)",
            ProofError::PrivateKey => "the DPoP proof's jwk contains private key material",
            ProofError::BadSignature => "the DPoP proof's signature does not verify with its jwk",
            ProofError::MethodMismatch => "the DPoP proof's htm is not this request's method",
            ProofError::UrlMismatch => "the DPoP proof's htu is not this request's URL",
            ProofError::Stale => "the DPoP proof is too old (iat)",
            ProofError::FromTheFuture => "the DPoP proof's iat is in the future",
            ProofError::TokenHashMismatch => "the DPoP proof's ath is not the hash of the access token",
            ProofError::NonceRequired => "a current server nonce is required in the DPoP proof",
            ProofError::KeyMismatch => "the DPoP proof is not signed with the key the access token is bound to",
            ProofError::Replayed => "the DPoP proof was already used",
        }
    }

    /// The RFC 9449 error code the caller gets.
    pub fn error_code(self) -> &'static str {
        match self {
            ProofError::NonceRequired => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }

    /// The audit reason: a replay and a missing nonce are told apart from the rest, so
    /// the security team can search for replays.
    pub fn reason(self) -> Reason {
        match self {
            ProofError::Replayed => Reason::DpopProofReplayed,
            ProofError::NonceRequired => Reason::UseDpopNonce,
            _ => Reason::InvalidDpopProof,
        }
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// The SHA-256 of an access token, base64url, as `ath` names it.
pub fn token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// Checks a proof against what it must have been made for, at `now` (Unix ms).
pub fn check_proof(proof: &str, check: &ProofCheck<'_>, nonces: &Nonces, now: i64) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let header_text = jws::header(proof).ok_or(ProofError::Malformed)?;
    let typ = header_text.get("typ").and_then(|t| t.as_str());
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(ProofError::WrongType);
    }
    let alg = match header_text.get("alg").and_then(|a| a.as_str()).and_then(jws::named_alg) {
        Some(alg @ (Algorithm::ES256 | Algorithm::EdDSA)) => alg,
        _ => return Err(ProofError::UnsupportedAlgorithm),
    };
    let jwk_value = header_text.get("jwk").filter(|j| j.is_object()).ok_or(ProofError::MissingKey)?;
    // Private parameters of EC, OKP and RSA keys, and a symmetric key's `k`.
    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|p| jwk_value.get(p).is_some()) {
        return Err(ProofError::PrivateKey);
    }
    let jwk: Jwk = serde_json::from_value(jwk_value.clone()).map_err(|_| ProofError::MissingKey)?;
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    if !fits {
        return Err(ProofError::UnsupportedAlgorithm);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::MissingKey)?;
    let claims: ProofClaims = jws::verified_claims(proof, &key, alg).map_err(|e| match e {
        jws::JwsError::BadSignature => ProofError::BadSignature,
        jws::JwsError::Malformed => ProofError::Malformed,
    })?;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(ProofError::Malformed);
    }
    if claims.htm != check.method {
        return Err(ProofError::MethodMismatch);
    }
    if !same_url(&claims.htu, check.url) {
        return Err(ProofError::UrlMismatch);
    }
    let now_secs = now / SECOND;
    if claims.iat < now_secs - PROOF_MAX_AGE_SECS {
        return Err(ProofError::Stale);
    }
    if claims.iat > now_secs + PROOF_LEEWAY_SECS {
        return Err(ProofError::FromTheFuture);
    }
    if let Some(token) = check.access_token {
        let presented = claims.ath.as_deref().ok_or(ProofError::TokenHashMismatch)?;
        if !constant_time_eq(presented.as_bytes(), token_hash(token).as_bytes()) {
            return Err(ProofError::TokenHashMismatch);
        }
    }
    if check.nonce_required && !claims.nonce.as_deref().is_some_and(|n| nonces.is_current(n, now)) {
        return Err(ProofError::NonceRequired);
    }
    let jkt = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| ProofError::MissingKey)?;
    let mut replay = Sha256::new();
    replay.update(jkt.as_bytes());
    replay.update(b".");
    replay.update(claims.jti.as_bytes());
    Ok(Proof { jkt, replay_key: replay.finalize().into() })
}

/// RFC 9449 §4.3 check 9: the URLs are the same once normalised (RFC 3986 §6.2.2 and
/// §6.2.3: scheme and host case, default port, dot segments), query and fragment
/// ignored.
fn same_url(presented: &str, expected: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(presented), url::Url::parse(expected)) else { return false };
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Server nonces (RFC 9449 §8), made without state: the window they were made in and a
/// MAC of it under a key derived from the server secret, so every replica issues and
/// accepts the same nonces. One is current for five to ten minutes.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces")
    }
}

impl Nonces {
    pub fn new(secret: &ServerSecret) -> Self {
        Self { key: secret.derive("dpop-nonce") }
    }

    fn tag(&self, window: i64) -> [u8; 16] {
        let mut mac = hmac_sha256(&self.key);
        mac.update(&window.to_be_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut tag = [0u8; 16];
        tag.copy_from_slice(full.get(..16).unwrap_or(&[0u8; 16]));
        tag
    }

    /// The nonce to hand out now.
    pub fn issue(&self, now: i64) -> String {
        let window = now / SECOND / NONCE_WINDOW_SECS;
        let mut bytes = window.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.tag(window));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` was made by us in this window or the one before.
    pub fn is_current(&self, nonce: &str, now: i64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else { return false };
        let (Some(window), Some(tag)) = (bytes.get(..8), bytes.get(8..)) else { return false };
        let window = i64::from_be_bytes(window.try_into().unwrap_or([0u8; 8]));
        let current = now / SECOND / NONCE_WINDOW_SECS;
        (window == current || window == current - 1) && constant_time_eq(tag, &self.tag(window))
    }
}

/// A DPoP key Portcullis makes for itself, for one use: the portal's Test access of a
/// profile that accepts only bound tokens proves possession exactly as a client must.
pub struct ProofKey {
    signing: jsonwebtoken::EncodingKey,
    jwk: Jwk,
    jkt: String,
}

impl ProofKey {
    pub fn generate() -> Result<Self, crate::DomainError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        use jsonwebtoken::jwk::{CommonParameters, OctetKeyPairParameters, OctetKeyPairType};
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().map_err(|e| crate::DomainError::Internal(format!("pkcs8: {e}")))?;
        let jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
        };
        let jkt = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| crate::DomainError::Internal(format!("thumbprint: {e}")))?;
        Ok(Self { signing: jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()), jwk, jkt })
    }

    /// The thumbprint a token for this key is bound to.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for one request (`now` in Unix ms), naming `access_token`.
    pub fn proof(&self, method: &str, url: &str, access_token: &str, now: i64) -> Result<String, crate::DomainError> {
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let claims = serde_json::json!({
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "htm": method,
            "htu": url,
            "iat": now / SECOND,
            "ath": token_hash(access_token),
        });
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| crate::DomainError::Internal(format!("signing a DPoP proof: {e}")))
    }
}

#[cfg(test)]
mod tests;
