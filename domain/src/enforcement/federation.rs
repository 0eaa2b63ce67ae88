//! Federation: access tokens from an identity provider the enterprise already runs
//! (Entra ID, Okta, Keycloak, a workload identity issuer), accepted at `/gw` and `/mcp`
//! as the Portcullis client an admin linked them to.
//!
//! An admin registers the *trusted issuer*: its `iss`, where its keys are (a JWKS URL
//! the server fetches, or a JWKS pasted once), the audiences and the algorithms it may
//! use, and the claim that names the caller (`sub`, `azp`, `client_id`, …). A credential
//! of kind `federated` links one value of that claim to a profile. A token from the
//! issuer is then checked here: signed by one of the issuer's keys under an algorithm
//! the admin allowed (never one the token chooses alone, never a symmetric one), for an
//! accepted audience, within its lifetime, naming a linked identity. It carries the
//! profile's grants as they are, like an API key: the issuer's scopes do not name ours.
//!
//! Fetching the keys is the server's part (it has the network); what a fetched JWKS may
//! hold, and every check of a token, is here.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::client_keys::Audience;
use super::{jws, parse_public_key, Confirmation, CredentialEntry, KeyError};
use crate::time::SECOND;

/// The algorithms an issuer may be trusted with: asymmetric ones only. A symmetric
/// algorithm would need a secret shared with the issuer, and is how "alg confusion"
/// turns a public key into a forging key.
pub const ISSUER_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];
/// Keys read from one JWKS at most: more is refused rather than tried one by one.
pub const MAX_JWKS_KEYS: usize = 32;
/// A JWKS document larger than this is refused unread.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// A token larger than this is refused unread.
pub const MAX_EXTERNAL_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`: another organisation's clocks.
pub const EXTERNAL_LEEWAY_SECS: i64 = 60;
/// The longest claim value an identity may be linked by.
pub const MAX_SUBJECT: usize = 255;

/// One verification key of an issuer.
#[derive(Clone)]
pub struct IssuerKey {
    pub kid: Option<String>,
    /// RFC 7638 thumbprint, as the portal shows it.
    pub thumbprint: String,
    pub algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey").field("kid", &self.kid).field("thumbprint", &self.thumbprint).finish()
    }
}

/// The keys read from a JWKS, and how many of its entries were not usable here.
#[derive(Debug, Clone, Default)]
pub struct IssuerKeySet {
    pub keys: Vec<IssuerKey>,
    /// Entries skipped: encryption keys, symmetric or private keys, curves and sizes we
    /// do not verify with. An issuer's JWKS often holds some; they verify nothing.
    pub skipped: usize,
}

/// Reads an issuer's JWKS (`{"keys": [...]}`). Refused: not JSON, no `keys` array, more
/// than [`MAX_JWKS_KEYS`] entries, or no entry usable for verifying.
pub fn parse_jwks(text: &str) -> Result<IssuerKeySet, KeyError> {
    if text.len() > MAX_JWKS_BYTES {
        return Err(KeyError(format!("The JWKS is over {} KB.", MAX_JWKS_BYTES / 1024)));
    }
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|_| KeyError("The JWKS is not JSON.".into()))?;
    let Some(entries) = value.get("keys").and_then(|k| k.as_array()) else {
        return Err(KeyError("A JWKS is a JSON object with a `keys` array.".into()));
    };
    if entries.len() > MAX_JWKS_KEYS {
        return Err(KeyError(format!("The JWKS holds {} keys; at most {MAX_JWKS_KEYS} are read.", entries.len())));
    }
    let mut set = IssuerKeySet::default();
    for entry in entries {
        // One key at a time through the same rules as a client's registered key.
        let Ok(parsed) = parse_public_key(&entry.to_string()) else {
            set.skipped += 1;
            continue;
        };
        let Ok(key) = parsed.decoding_key() else {
            set.skipped += 1;
            continue;
        };
        let kid = parsed.jwk.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        set.keys.push(IssuerKey { kid, thumbprint: parsed.thumbprint, algorithms: parsed.algorithms, key });
    }
    if set.keys.is_empty() {
        return Err(KeyError(
            "The JWKS holds no key to verify signatures with (EC P-256, Ed25519, or RSA of 2048 bits or more).".into(),
        ));
    }
    Ok(set)
}

/// The algorithm names an admin may allow, parsed; `None` for any other.
pub fn issuer_alg(name: &str) -> Option<Algorithm> {
    ISSUER_ALGS.contains(&name).then(|| jws::named_alg(name)).flatten()
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum IssuerKeys {
    /// Pasted by the admin: read once, when the snapshot is built.
    Static(Arc<IssuerKeySet>),
    /// Fetched by the server from this https URL, cached, refreshed at a bounded rate.
    Remote(String),
}

/// A trusted issuer as the gateway checks its tokens.
#[derive(Debug, Clone)]
pub struct IssuerEntry {
    pub id: String,
    /// Its `iss`, exactly.
    pub issuer: String,
    /// A token's `aud` must name one of these.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    /// The claim whose value names the caller.
    pub subject_claim: String,
    pub keys: IssuerKeys,
    /// The linked identities: the claim's value, and the `federated` credential that
    /// links it to a profile.
    pub identities: HashMap<String, CredentialEntry>,
}

/// Why a token from a trusted issuer is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalError {
    Malformed,
    /// The header's `alg` is not one the admin allowed for this issuer.
    AlgorithmNotAccepted,
    /// No key of the issuer has the token's `kid` (or suits its algorithm): the keys may
    /// have rotated, so the server may fetch them again, at a bounded rate.
    UnknownKey,
    BadSignature,
    WrongAudience,
    Expired,
    NotYetValid,
    /// The claim that names the caller is missing, not a string, or too long.
    NoSubject,
}

impl ExternalError {
    pub fn description(self) -> &'static str {
        match self {
            ExternalError::Malformed => "malformed token from a trusted issuer",
            ExternalError::AlgorithmNotAccepted => "signed with an algorithm not accepted for its issuer",
            ExternalError::UnknownKey => "signed with a key its issuer does not publish",
            ExternalError::BadSignature => "signature does not verify with its issuer's keys",
            ExternalError::WrongAudience => "its audience is not one accepted for its issuer",
            ExternalError::Expired => "expired token from a trusted issuer",
            ExternalError::NotYetValid => "token from a trusted issuer not yet valid",
            ExternalError::NoSubject => "the claim that names the caller is missing or not a string",
        }
    }
}

/// What a verified token from a trusted issuer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalToken {
    /// The value of the issuer's subject claim.
    pub subject: String,
    /// What the token is bound to, when the issuer bound it (RFC 9449, RFC 8705): the
    /// gateway checks the proof as for its own tokens.
    pub cnf: Option<Confirmation>,
    /// Its `exp` (Unix seconds): a token exchanged for it ends no later.
    pub expires_at: i64,
    /// What tells this token apart: its `jti`, or a digest of the token when the issuer
    /// gives none. A token exchanged for it names it.
    pub id: String,
    /// The thumbprint of the issuer's key that verified it: a cache of verified tokens
    /// keeps one only while its issuer still publishes that key.
    pub key: String,
}

impl ExternalToken {
    /// Whether it is still good at `now` (Unix ms), once verified: only time changes it.
    pub fn check_time(&self, now: i64) -> Result<(), ExternalError> {
        if now / SECOND >= self.expires_at + EXTERNAL_LEEWAY_SECS {
            return Err(ExternalError::Expired);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ExternalClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    cnf: Option<Confirmation>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// The `iss` a token claims, *unverified*: only to pick the issuer whose keys check it.
pub fn claimed_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_EXTERNAL_TOKEN_BYTES {
        return None;
    }
    jws::unverified_claims(token)?.get("iss")?.as_str().map(str::to_owned)
}

/// The largest OpenID Provider metadata document read (discovery).
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// Where an issuer publishes its OpenID Provider metadata (OpenID Connect Discovery 1.0
/// §4): its issuer URL with `/.well-known/openid-configuration` appended.
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// The JWKS URL an issuer's metadata names, once the document shows it is that issuer's:
/// its `issuer` must be the one registered, exactly (§4.3), or one provider could pass
/// off its keys as another's. Whether the URL is fit to fetch keys from is checked where
/// any JWKS URL is.
pub fn jwks_uri_from_discovery(issuer: &str, document: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Metadata {
        issuer: Option<String>,
        jwks_uri: Option<String>,
    }
    let metadata: Metadata =
        serde_json::from_slice(document).map_err(|_| "its metadata is not a JSON object".to_owned())?;
    match metadata.issuer {
        Some(named) if named == issuer => {}
        Some(named) => {
            return Err(format!(
                "its metadata names another issuer ({named}); register the issuer exactly as its tokens name it"
            ))
        }
        None => return Err("its metadata names no issuer".into()),
    }
    metadata.jwks_uri.filter(|u| !u.is_empty()).ok_or_else(|| "its metadata names no jwks_uri".into())
}

impl super::Snapshot {
    /// The trusted issuer a token that is not ours claims to come from, if one is
    /// trusted (read *unverified*: only to pick the keys that check it).
    pub fn trusted_issuer_of(&self, token: &str) -> Option<&IssuerEntry> {
        if self.issuers.is_empty() {
            return None;
        }
        self.issuers.get(&claimed_issuer(token)?)
    }
}

/// Checks a token against its issuer and `keys`, at `now` (Unix ms).
pub fn verify_external(
    token: &str,
    issuer: &IssuerEntry,
    keys: &[IssuerKey],
    now: i64,
) -> Result<ExternalToken, ExternalError> {
    if token.len() > MAX_EXTERNAL_TOKEN_BYTES {
        return Err(ExternalError::Malformed);
    }
    let header = jws::header(token).ok_or(ExternalError::Malformed)?;
    // A DPoP proof or a client assertion is not an access token, whoever signed it.
    let typ = header.get("typ").and_then(|t| t.as_str()).unwrap_or("").to_ascii_lowercase();
    if typ.contains("dpop") {
        return Err(ExternalError::Malformed);
    }
    // The keys are the issuer's, never ones the token brings or points to.
    if ["jwk", "jku", "x5u", "x5c", "crit"].iter().any(|m| header.get(m).is_some()) {
        return Err(ExternalError::Malformed);
    }
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .and_then(jws::named_alg)
        .filter(|a| issuer.algorithms.contains(a))
        .ok_or(ExternalError::AlgorithmNotAccepted)?;
    let kid = header.get("kid").and_then(|k| k.as_str());
    let candidates: Vec<&IssuerKey> = keys
        .iter()
        .filter(|k| k.algorithms.contains(&alg))
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid) || k.thumbprint == kid))
        .collect();
    match candidates.len() {
        0 => return Err(ExternalError::UnknownKey),
        // Without a `kid`, a token is checked only against an issuer's one key for its
        // algorithm: trying each of many would make every forgery cost many signature
        // checks.
        n if n > 1 && kid.is_none() => return Err(ExternalError::Malformed),
        _ => {}
    }
    let mut verified = None;
    for key in candidates {
        match jws::verified_claims::<ExternalClaims>(token, &key.key, alg) {
            Ok(claims) => {
                verified = Some((claims, key));
                break;
            }
            Err(jws::JwsError::BadSignature) => {}
            Err(jws::JwsError::Malformed) => return Err(ExternalError::Malformed),
        }
    }
    let (claims, key) = verified.ok_or(ExternalError::BadSignature)?;
    // Only what the issuer signed is told apart from here on.
    if claims.iss.as_deref() != Some(issuer.issuer.as_str()) {
        return Err(ExternalError::Malformed);
    }
    if !claims.aud.as_ref().is_some_and(|aud| aud.names_any(&issuer.audiences)) {
        return Err(ExternalError::WrongAudience);
    }
    let now = now / SECOND;
    let exp = claims.exp.ok_or(ExternalError::Malformed)?;
    if now >= exp + EXTERNAL_LEEWAY_SECS {
        return Err(ExternalError::Expired);
    }
    if claims.nbf.into_iter().chain(claims.iat).any(|t| t > now + EXTERNAL_LEEWAY_SECS) {
        return Err(ExternalError::NotYetValid);
    }
    let subject = match subject_value(&claims, &issuer.subject_claim) {
        Some(s) if !s.is_empty() && s.len() <= MAX_SUBJECT => s.to_owned(),
        _ => return Err(ExternalError::NoSubject),
    };
    let id = match claims.jti {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_SUBJECT => jti,
        _ => {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(token.as_bytes())[..16])
        }
    };
    Ok(ExternalToken {
        subject,
        cnf: claims.cnf.filter(|c| c.jkt.is_some() || c.x5t_s256.is_some()),
        expires_at: exp,
        id,
        key: key.thumbprint.clone(),
    })
}

/// The subject claim's value. `iss` is never one: it names the issuer, not the caller.
fn subject_value<'c>(claims: &'c ExternalClaims, claim: &str) -> Option<&'c str> {
    claims.rest.get(claim)?.as_str()
}

/// Whether a claim name may be chosen as the one that names the caller: 1 to 64
/// letters, digits, `_`, `-`, `.` or `:`, and not a registered claim that names
/// something else (`iss`, `aud`, `exp`, …).
pub fn valid_subject_claim(name: &str) -> bool {
    const NOT_A_CALLER: [&str; 8] = ["iss", "aud", "exp", "nbf", "iat", "jti", "cnf", "typ"];
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        && !NOT_A_CALLER.contains(&name)
}

#[cfg(test)]
mod tests;
