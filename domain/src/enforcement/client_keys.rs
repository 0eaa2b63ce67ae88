//! Clients that authenticate with a key pair instead of a secret: `private_key_jwt`
//! (RFC 7523 §2.2 and §3, as OpenID Connect Core §9 profiles it).
//!
//! The developer registers the public key (a JWK, or a JWKS of one key); the agent keeps
//! the private key and, for each token request, signs a short assertion naming itself
//! (`iss` = `sub` = its client id), this server (`aud`), a lifetime (`exp`, at most five
//! minutes) and a unique `jti`. Nothing the server stores can sign one, so a leaked
//! database or log holds no credential. That each assertion is used once (`jti`) is the
//! caller's check, because across replicas it is a shared write, as for DPoP proofs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{jws, CredentialEntry};
use crate::time::SECOND;

/// What `client_assertion_type` must say (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The algorithms an assertion may be signed with, as the metadata lists them (Ed25519
/// by its RFC 9864 name and its older one).
pub const ASSERTION_ALGS: [&str; 5] = ["ES256", "Ed25519", "EdDSA", "PS256", "RS256"];
/// The longest an assertion may live (`exp` after `iat`, or after now): a used `jti` is
/// remembered this long, and a copied assertion is worthless past it.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const ASSERTION_LEEWAY_SECS: i64 = 30;
/// An assertion larger than this is refused unread.
pub const MAX_ASSERTION_BYTES: usize = 8192;
/// RSA keys shorter than this are refused at registration (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Live keys a profile may hold at once: the current one, the next during a rotation,
/// and one spare.
pub const MAX_KEYS_PER_PROFILE: usize = 3;

/// Why a key offered for registration is refused; each says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, KeyError> {
    Err(KeyError(why.into()))
}

/// A public key as registered: its JWK with public members only, and what identifies it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The JWK as stored: the key's own members, its `kid` and `alg` if it named them.
    pub jwk: serde_json::Value,
    /// RFC 7638 SHA-256 thumbprint, base64url.
    pub thumbprint: String,
    /// E.g. `EC P-256`.
    pub key_type: String,
    pub algorithms: Vec<Algorithm>,
}

impl PublicKey {
    /// The key as signatures are checked with it.
    pub(super) fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        let decoded: Jwk = serde_json::from_value(self.jwk.clone()).map_err(|e| KeyError(e.to_string()))?;
        DecodingKey::from_jwk(&decoded).map_err(|e| KeyError(e.to_string()))
    }
}

/// Reads a public key from a JWK or a JWKS holding exactly one key. Refused: private or
/// symmetric keys, curves and types we do not verify, RSA under 2048 bits, a key whose
/// `use` is not `sig` or whose `alg` does not fit it.
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    if text.len() > 16 * 1024 {
        return refuse("The key is over 16 KB; paste one public key as a JWK.");
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return refuse(
            "Paste the public key as a JWK (JSON), e.g. {\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":…,\"y\":…}.",
        );
    };
    let value = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) if keys.len() == 1 => keys.first().cloned().unwrap_or_default(),
        Some(_) => return refuse("A JWKS must hold exactly one key here: register each key on its own."),
        None => value,
    };
    if !value.is_object() {
        return refuse("A JWK is a JSON object.");
    }
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"].iter().any(|m| value.get(m).is_some()) {
        return refuse(
            "This JWK holds a private or symmetric key. Register the public key only; the private key never leaves the agent.",
        );
    }
    let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
        return refuse("This JWK is not a key we can read: use an EC P-256, Ed25519 or RSA public key.");
    };
    let (key_type, algorithms, members): (String, Vec<Algorithm>, &[&str]) = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            ("EC P-256".into(), vec![Algorithm::ES256], &["kty", "crv", "x", "y"])
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            ("OKP Ed25519".into(), vec![Algorithm::EdDSA], &["kty", "crv", "x"])
        }
        AlgorithmParameters::RSA(p) => {
            let bits =
                URL_SAFE_NO_PAD.decode(&p.n).map(|n| n.iter().skip_while(|b| **b == 0).count() * 8).unwrap_or_default();
            if bits < MIN_RSA_BITS {
                return refuse(format!("RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}."));
            }
            (format!("RSA {bits}"), vec![Algorithm::PS256, Algorithm::RS256], &["kty", "n", "e"])
        }
        AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::OctetKeyPair(_) => {
            return refuse("Use an EC key on P-256 or an OKP key on Ed25519; other curves are not accepted.")
        }
        _ => return refuse("A symmetric key cannot be registered: it would be a secret."),
    };
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return refuse("This key's `use` is not `sig`: register a signing key.");
    }
    let algorithms = match value.get("alg").and_then(|a| a.as_str()) {
        None => algorithms,
        Some(named) => match jws::named_alg(named).filter(|a| algorithms.contains(a)) {
            Some(alg) => vec![alg],
            None => return refuse(format!("This key says `alg` {named}, which does not fit a {key_type} key here.")),
        },
    };
    if DecodingKey::from_jwk(&jwk).is_err() {
        return refuse("This JWK's key material does not decode.");
    }
    let Ok(thumbprint) = jwk.thumbprint(ThumbprintHash::SHA256) else {
        return refuse("This JWK has no thumbprint (RFC 7638).");
    };
    let mut stored = serde_json::Map::new();
    for m in members.iter().chain(&["kid", "alg"]) {
        if let Some(v) = value.get(*m) {
            stored.insert((*m).to_owned(), v.clone());
        }
    }
    Ok(PublicKey { jwk: serde_json::Value::Object(stored), thumbprint, key_type, algorithms })
}

/// A registered key as the token endpoint checks assertions with it.
#[derive(Clone)]
pub struct ClientKey {
    pub credential: CredentialEntry,
    pub thumbprint: String,
    /// The `kid` the developer gave the key, if any: an assertion naming it (or the
    /// thumbprint) is checked with this key alone.
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("credential", &self.credential.id)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

impl ClientKey {
    /// From the JWK stored at registration.
    pub fn from_stored(credential: CredentialEntry, jwk: &str) -> Result<Self, KeyError> {
        let parsed = parse_public_key(jwk)?;
        let key = parsed.decoding_key()?;
        let kid = parsed.jwk.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        Ok(Self { credential, thumbprint: parsed.thumbprint, kid, algorithms: parsed.algorithms, key })
    }
}

/// What an assertion must have been made for.
#[derive(Debug, Clone)]
pub struct AssertionCheck<'a> {
    /// The client it authenticates (`iss` and `sub`).
    pub client_id: &'a str,
    /// Identifiers of this server an `aud` may name: the issuer and the endpoint URLs.
    pub audiences: &'a [String],
}

/// An assertion that passed every check but the one-use check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The credential (registered key) that verified it.
    pub credential_id: String,
    /// What identifies it for the one-use check: the client id and its `jti`, hashed.
    pub replay_key: [u8; 32],
    /// How long it must be remembered as used: until it expires, with the leeway.
    pub remember_secs: u64,
}

/// Why an assertion is refused. Every one is `invalid_client` on the wire; those that do
/// not depend on the client's keys say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionError {
    Malformed,
    WrongType,
    UnsupportedAlgorithm,
    /// No registered key of the client verifies it (or the client has none).
    NotVerified,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    Expired,
    NotYetValid,
    TooLongLived,
    Replayed,
}

impl AssertionError {
    pub fn description(self) -> String {
        match self {
            AssertionError::Malformed => "the client_assertion is not a signed JWT we can read".into(),
            AssertionError::WrongType => "the client_assertion is another kind of JWT (typ)".into(),
            AssertionError::UnsupportedAlgorithm => {
                format!("the client_assertion must be signed with one of {}", ASSERTION_ALGS.join(", "))
            }
            AssertionError::NotVerified => "client authentication failed".into(),
            AssertionError::WrongIssuer => "the client_assertion's iss and sub must both be the client id".into(),
            AssertionError::WrongAudience => "the client_assertion's aud must be this server's issuer".into(),
            AssertionError::MissingClaim => "the client_assertion needs iss, sub, aud, exp and jti".into(),
            AssertionError::Expired => "the client_assertion has expired".into(),
            AssertionError::NotYetValid => "the client_assertion is not valid yet (nbf or iat ahead)".into(),
            AssertionError::TooLongLived => {
                format!("the client_assertion may live at most {MAX_ASSERTION_LIFETIME_SECS} s (exp)")
            }
            AssertionError::Replayed => "this client_assertion was already used (jti)".into(),
        }
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
}

/// The client an assertion says it authenticates (its `sub`), read before the signature
/// is checked: only to know whose keys to check it with, when no `client_id` came along.
pub fn claimed_client(assertion: &str) -> Option<String> {
    jws::unverified_claims(assertion)?.get("sub")?.as_str().map(str::to_owned)
}

/// `aud`: one string, or several (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    One(String),
    Several(Vec<String>),
}

impl Audience {
    pub(super) fn names_any(&self, ours: &[String]) -> bool {
        match self {
            Audience::One(a) => ours.contains(a),
            Audience::Several(all) => all.iter().any(|a| ours.contains(a)),
        }
    }
}

/// Checks an assertion against the keys of the client it names, at `now` (Unix ms), and
/// returns it with the key that verified it.
pub fn check_assertion<'k>(
    assertion: &str,
    check: &AssertionCheck<'_>,
    keys: &'k [ClientKey],
    now: i64,
) -> Result<(&'k ClientKey, Assertion), AssertionError> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(AssertionError::Malformed);
    }
    let header = jws::header(assertion).ok_or(AssertionError::Malformed)?;
    // A DPoP proof or an access token signed by the same key is not an assertion.
    if header.get("typ").and_then(|t| t.as_str()).is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.contains("dpop") || t.contains("at+jwt")
    }) {
        return Err(AssertionError::WrongType);
    }
    // The key is the registered one, never one the assertion brings or points to.
    if ["jwk", "jku", "x5u", "x5c", "crit"].iter().any(|m| header.get(m).is_some()) {
        return Err(AssertionError::Malformed);
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .and_then(jws::named_alg)
        .ok_or(AssertionError::UnsupportedAlgorithm)?;
    let kid = header.get("kid").and_then(|k| k.as_str());
    let mut found = None;
    for key in keys
        .iter()
        .filter(|k| k.algorithms.contains(&alg))
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid) || k.thumbprint == kid))
    {
        match jws::verified_claims::<AssertionClaims>(assertion, &key.key, alg) {
            Ok(claims) => {
                found = Some((key, claims));
                break;
            }
            Err(jws::JwsError::BadSignature) => {}
            Err(jws::JwsError::Malformed) => return Err(AssertionError::Malformed),
        }
    }
    // Only what the key holder signed is told apart from here on.
    let (key, claims) = found.ok_or(AssertionError::NotVerified)?;
    let (Some(iss), Some(sub), Some(aud)) = (&claims.iss, &claims.sub, &claims.aud) else {
        return Err(AssertionError::MissingClaim);
    };
    if iss != check.client_id || sub != check.client_id {
        return Err(AssertionError::WrongIssuer);
    }
    if !aud.names_any(check.audiences) {
        return Err(AssertionError::WrongAudience);
    }
    let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256).ok_or(AssertionError::MissingClaim)?;
    let exp = claims.exp.ok_or(AssertionError::MissingClaim)?;
    let now_secs = now / SECOND;
    if exp + ASSERTION_LEEWAY_SECS <= now_secs {
        return Err(AssertionError::Expired);
    }
    if claims.nbf.into_iter().chain(claims.iat).any(|t| t > now_secs + ASSERTION_LEEWAY_SECS) {
        return Err(AssertionError::NotYetValid);
    }
    let from = claims.iat.unwrap_or(now_secs);
    if exp - from > MAX_ASSERTION_LIFETIME_SECS || exp - now_secs > MAX_ASSERTION_LIFETIME_SECS + ASSERTION_LEEWAY_SECS
    {
        return Err(AssertionError::TooLongLived);
    }
    let mut replay = Sha256::new();
    replay.update(b"client-assertion.");
    replay.update(check.client_id.as_bytes());
    replay.update(b".");
    replay.update(jti.as_bytes());
    let remember_secs = (exp + ASSERTION_LEEWAY_SECS - now_secs).clamp(1, MAX_ASSERTION_LIFETIME_SECS * 2);
    Ok((
        key,
        Assertion {
            credential_id: key.credential.id.clone(),
            replay_key: replay.finalize().into(),
            remember_secs: remember_secs.unsigned_abs(),
        },
    ))
}

#[cfg(test)]
mod tests;
