//! OAuth2 client credentials: signing keys, issuing access tokens, verifying them.
//!
//! Tokens are JWTs signed with Ed25519 (`EdDSA`), `typ: at+jwt` (RFC 9068). Signing keys
//! live in the store with their private half sealed by a key derived from the server
//! secret, and are loaded into an in-memory key ring: verification on the gateway's hot
//! path touches no database. Verification fixes the algorithm, requires `exp`, `nbf`,
//! `iat`, `iss`, `aud` and `sub`, refuses tokens that carry their own keys (`jku`,
//! `x5u`, `jwk`, `x5c`) or an unknown `kid`, and checks time against the store's clock.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::model::{ClientKind, CredentialKind};
use crate::store::Store;
use crate::time::SECOND;
use crate::DomainError;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
/// The range an admin may set a profile's token lifetime to. An hour at most: verified
/// tokens are cached for an hour, and retired signing keys verify for a day.
pub const MIN_TOKEN_TTL_SECS: i64 = 60;
pub const MAX_TOKEN_TTL_SECS: i64 = 3600;

/// The claims of a Portcullis access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    pub profile: String,
    pub env: String,
    pub client_type: String,
    /// The credential the token was obtained with: revoking it ends the token too.
    pub cid: String,
    /// The person the token acts for (RFC 8693 §4.1), when one asked for it: the portal's
    /// Test access, whose requests the audit trail attributes to that person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<ActorClaim>,
}

/// RFC 8693 §4.1 `act`: who is acting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorClaim {
    /// The acting person's user id.
    pub sub: String,
}

/// Why a presented token is not accepted. The gateway tells these apart in its
/// `error_description`; introspection says only `active: false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnknownKey,
    BadSignature,
    WrongIssuerOrAudience,
    Expired,
    NotYetValid,
    Revoked,
}

/// RFC 6749 §5.2 errors of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequestError {
    InvalidClient,
    InvalidScope(String),
    InvalidRequest(String),
    Internal,
}

pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: i64,
    pub scope: String,
    pub claims: AccessClaims,
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken").field("claims", &self.claims).finish_non_exhaustive()
    }
}

/// Where tokens come from and whom they are for.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
}

/// A published verification key (RFC 7517, OKP).
#[derive(Debug, Clone, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
    pub x: String,
}

#[derive(Default)]
pub struct KeyRing {
    current: Option<(String, EncodingKey)>,
    verifiers: HashMap<String, DecodingKey>,
    pub jwks: Vec<Jwk>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.verifiers.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct KeyRingHandle(Arc<ArcSwap<KeyRing>>);

impl KeyRingHandle {
    pub fn current(&self) -> Arc<KeyRing> {
        self.0.load_full()
    }
}

/// Access tokens whose signature, issuer and audience were verified, by the SHA-256 of
/// their text, with the `kid` of the key that signed them.
///
/// A client uses one token for its whole lifetime, and checking an Ed25519 signature was
/// a quarter of a gateway request's CPU time (measured, bench/RESULTS.md); so it is done
/// once per token. Only what the signature proves is kept: expiry, revocation and the
/// credential's liveness are still checked on every request, a token whose key has left
/// the ring is verified again (and fails), and a tampered token has another hash.
#[derive(Clone)]
pub struct VerifiedTokens(moka::sync::Cache<[u8; 32], Arc<(String, Arc<AccessClaims>)>>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        // A token lives at most an hour; retired keys verify for 24.
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
        )
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("entries", &self.0.entry_count()).finish()
    }
}

/// The key that seals signing keys at rest. Never printed.
#[derive(Clone)]
pub struct SealingKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

fn seal(key: &SealingKey, kid: &str, plain: &[u8]) -> Result<String> {
    let cipher = Aes256Gcm::new((&key.0).into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: kid.as_bytes() })
        .map_err(|_| DomainError::Internal("sealing a signing key failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), sealed.as_slice()].concat()))
}

fn unseal(key: &SealingKey, kid: &str, text: &str) -> Result<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| DomainError::Internal("sealed key is not base64".into()))?;
    let (nonce, sealed) =
        bytes.split_at_checked(12).ok_or_else(|| DomainError::Internal("sealed key too short".into()))?;
    Aes256Gcm::new((&key.0).into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: kid.as_bytes() })
        .map_err(|_| DomainError::Internal(format!("signing key {kid} does not open with this server secret")))
}

impl Store {
    pub fn keys(&self) -> &KeyRingHandle {
        &self.keys
    }

    /// Makes a fresh signing key current; the previous one stays published (and keeps
    /// verifying its tokens) until it is older than any token it could have signed.
    /// `channel` says who asked (`cli`, `scheduler`, `system` for the first key).
    pub async fn rotate_signing_key(&self, channel: &'static str) -> Result<String> {
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = signing.to_pkcs8_der().map_err(|e| DomainError::Internal(format!("pkcs8: {e}")))?;
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let kid = format!("k{}", &crate::store::new_id("key")[4..20]);
        let sealed = seal(&self.sealing_key, &kid, der.as_bytes())?;
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, created_at) VALUES ($1, 'EdDSA', $2, $3, $4)",
        )
        .bind(&kid)
        .bind(&public)
        .bind(&sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::audit::record(
            &mut *tx,
            now,
            None,
            channel,
            crate::audit::AdminEvent {
                action: "signing_key.rotated",
                target_type: "signing_key",
                target_id: &kid,
                summary: serde_json::json!({ "algorithm": "EdDSA" }),
            },
        )
        .await?;
        // Other servers learn of the new key at their next version poll.
        crate::policy::bump_policy_version(&mut tx).await?;
        tx.commit().await?;
        self.reload_keys().await?;
        Ok(kid)
    }

    /// Revokes a signing key (compromised, say): every token it signed is refused from the
    /// next request on this server, and on every other within its next version poll. If
    /// it was the current key, a fresh one becomes current. Returns the revoked key's
    /// successor when there is one.
    pub async fn revoke_signing_key(&self, kid: &str, channel: &'static str) -> Result<Option<String>> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let was_current: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retired_at FROM signing_keys WHERE kid = $1 AND revoked_at IS NULL")
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(retired_at) = was_current else { return Err(DomainError::NotFound) };
        sqlx::query("UPDATE signing_keys SET revoked_at = $1, retired_at = COALESCE(retired_at, $1) WHERE kid = $2")
            .bind(now)
            .bind(kid)
            .execute(&mut *tx)
            .await?;
        crate::audit::record(
            &mut *tx,
            now,
            None,
            channel,
            crate::audit::AdminEvent {
                action: "signing_key.revoked",
                target_type: "signing_key",
                target_id: kid,
                summary: serde_json::json!({ "was_current": retired_at.is_none() }),
            },
        )
        .await?;
        crate::policy::bump_policy_version(&mut tx).await?;
        tx.commit().await?;
        let successor = if retired_at.is_none() {
            Some(self.rotate_signing_key(channel).await?)
        } else {
            self.reload_keys().await.map(|_| None)?
        };
        Ok(successor)
    }

    /// The schedule's rotation: a fresh key when the current one is older than
    /// `max_age_ms`. Returns the new `kid`, or `None` when the key is young enough.
    pub async fn rotate_signing_key_if_older(&self, max_age_ms: i64) -> Result<Option<String>> {
        let created: Option<i64> =
            sqlx::query_scalar("SELECT MAX(created_at) FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        if created.is_some_and(|c| self.now() - c < max_age_ms) {
            return Ok(None);
        }
        self.rotate_signing_key("scheduler").await.map(Some)
    }

    /// Loads the current key and the recently retired ones; creates a key if none exists.
    pub async fn reload_keys(&self) -> Result<()> {
        // A retired key verifies for as long as the longest-lived token it signed.
        let keep_after = self.now() - 24 * crate::time::HOUR;
        let rows = sqlx::query(
            "SELECT kid, public_key, sealed_private_key, retired_at FROM signing_keys
             WHERE revoked_at IS NULL AND (retired_at IS NULL OR retired_at > $1) ORDER BY created_at DESC",
        )
        .bind(keep_after)
        .fetch_all(&self.pool)
        .await?;
        if !rows.iter().any(|r| r.try_get::<Option<i64>, _>("retired_at").ok().flatten().is_none()) {
            return Box::pin(self.rotate_signing_key("system")).await.map(|_| ());
        }
        let mut ring = KeyRing::default();
        for r in &rows {
            let kid: String = r.try_get("kid")?;
            let x: String = r.try_get("public_key")?;
            let verifier =
                DecodingKey::from_ed_components(&x).map_err(|e| DomainError::Internal(format!("key {kid}: {e}")))?;
            ring.verifiers.insert(kid.clone(), verifier);
            if r.try_get::<Option<i64>, _>("retired_at")?.is_none() && ring.current.is_none() {
                let der = unseal(&self.sealing_key, &kid, &r.try_get::<String, _>("sealed_private_key")?)?;
                ring.current = Some((kid.clone(), EncodingKey::from_ed_der(&der)));
            }
            ring.jwks.push(Jwk { kty: "OKP", crv: "Ed25519", alg: "EdDSA", use_: "sig", kid, x });
        }
        self.keys.0.store(Arc::new(ring));
        Ok(())
    }

    /// The client credentials grant: authenticates the client by its secret and issues a
    /// token for the profile that secret belongs to, with the requested scopes (a subset
    /// of what the profile's grants allow) or all of them.
    pub fn issue_access_token(
        &self,
        settings: &TokenSettings,
        client_id: &str,
        client_secret: &str,
        requested_scope: Option<&str>,
    ) -> std::result::Result<IssuedAccessToken, TokenRequestError> {
        let snap = self.snapshot().current();
        let (credential, profile) = self.authenticate_client(&snap, client_id, client_secret)?;
        self.mint(settings, credential, profile, requested_scope, None)
    }

    /// Issues a token for one of the actor's profiles with that profile's own client
    /// secret credential, without the secret: the portal's "Test access" runs real
    /// gateway calls with it. Only the profile's owner (or an admin) may. The token acts
    /// for the person (`act`), so the request's audit row names them, and the test itself
    /// (`call`: method and path) is an administrative event.
    pub async fn issue_token_for_profile(
        &self,
        actor: &crate::access::Actor,
        settings: &TokenSettings,
        profile_id: &str,
        call: (&str, &str),
    ) -> Result<IssuedAccessToken> {
        use crate::audit_text::{cap, AuditText};
        self.owned_profile(actor, profile_id, crate::access::Access::Write).await?;
        let snap = self.snapshot().current();
        let now = self.now();
        let profile = snap.profiles.get(profile_id).ok_or(DomainError::NotFound)?;
        let credential = snap
            .credentials_by_id
            .values()
            .filter(|c| c.profile_id == profile_id && c.kind == CredentialKind::ClientSecret && now < c.expires_at)
            .max_by_key(|c| c.expires_at)
            .ok_or_else(|| DomainError::Invalid("This profile has no usable client secret; rotate it first.".into()))?;
        let issued = self.mint(settings, credential, profile, None, Some(&actor.user.id)).map_err(|e| match e {
            TokenRequestError::InvalidScope(m) | TokenRequestError::InvalidRequest(m) => DomainError::Invalid(m),
            TokenRequestError::InvalidClient => DomainError::Invalid("This client cannot get tokens now.".into()),
            TokenRequestError::Internal => DomainError::Internal("signing an access token failed".into()),
        })?;
        let event = crate::audit::AdminEvent {
            action: "profile.test_access",
            target_type: "profile",
            target_id: profile_id,
            summary: serde_json::json!({
                "client_id": profile.client_id,
                "method": AuditText::new(call.0, cap::METHOD),
                "path": AuditText::new(call.1, cap::PATH),
                "token_jti": issued.claims.jti,
            }),
        };
        crate::audit::record_by(&self.pool, now, actor, event).await?;
        Ok(issued)
    }

    fn mint(
        &self,
        settings: &TokenSettings,
        credential: &crate::policy::CredentialEntry,
        profile: &crate::policy::ProfileEntry,
        requested_scope: Option<&str>,
        acting_user: Option<&str>,
    ) -> std::result::Result<IssuedAccessToken, TokenRequestError> {
        let now = self.now();
        let mut allowed: Vec<&str> = profile
            .grants
            .values()
            .filter(|g| g.expires_at.is_none_or(|t| now < t))
            .flat_map(|g| g.scopes.iter().map(String::as_str))
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        let scope = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => allowed.join(" "),
            Some(requested) => {
                let mut wanted: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(extra) = wanted.iter().find(|s| !allowed.contains(s)) {
                    return Err(TokenRequestError::InvalidScope(format!(
                        "the scope `{extra}` is not granted to this profile"
                    )));
                }
                wanted.sort_unstable();
                wanted.dedup();
                wanted.join(" ")
            }
        };
        let ttl = profile.token_ttl_secs.clamp(MIN_TOKEN_TTL_SECS, MAX_TOKEN_TTL_SECS);
        let iat = now / SECOND;
        let claims = AccessClaims {
            iss: settings.issuer.clone(),
            sub: profile.client_id.clone(),
            aud: settings.audience.clone(),
            exp: iat + ttl,
            iat,
            nbf: iat,
            jti: uuid::Uuid::now_v7().simple().to_string(),
            scope: scope.clone(),
            client_id: profile.client_id.clone(),
            profile: profile.id.clone(),
            env: profile.environment.as_str().to_owned(),
            client_type: match profile.client_kind {
                ClientKind::AiAgent => "ai-agent",
                ClientKind::Application => "application",
                ClientKind::Service => "service",
            }
            .to_owned(),
            cid: credential.id.clone(),
            act: acting_user.map(|sub| ActorClaim { sub: sub.to_owned() }),
        };
        let ring = self.keys().current();
        let (kid, key) = ring.current.as_ref().ok_or(TokenRequestError::Internal)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, key).map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            TokenRequestError::Internal
        })?;
        Ok(IssuedAccessToken { token, expires_in: ttl, scope, claims })
    }

    /// Authenticates a client by its secret. Unknown client, wrong secret, expired or
    /// revoked secret: one answer, one cost (a keyed hash and a map lookup either way).
    pub fn authenticate_client<'s>(
        &self,
        snap: &'s crate::policy::Snapshot,
        client_id: &str,
        client_secret: &str,
    ) -> std::result::Result<(&'s crate::policy::CredentialEntry, &'s crate::policy::ProfileEntry), TokenRequestError>
    {
        let now = self.now();
        let credential = snap
            .credentials
            .get(&self.hasher.hash(client_secret))
            .filter(|c| c.kind == CredentialKind::ClientSecret && now < c.expires_at)
            .ok_or(TokenRequestError::InvalidClient)?;
        let profile = snap
            .profiles
            .get(&credential.profile_id)
            .filter(|p| p.client_id == client_id && p.stopped().is_none())
            .ok_or(TokenRequestError::InvalidClient)?;
        Ok((credential, profile))
    }

    /// The claims of a token that is active right now: it verifies, it is not revoked,
    /// and the credential it was obtained with is still live (RFC 7662's "active").
    pub fn active_token(
        &self,
        settings: &TokenSettings,
        token: &str,
    ) -> std::result::Result<Arc<AccessClaims>, TokenError> {
        let claims = self.verify_access_token(settings, token)?;
        match self.snapshot().current().token_holder(&claims, self.now()) {
            Ok(_) => Ok(claims),
            Err(_) => Err(TokenError::Revoked),
        }
    }

    /// Revokes an access token of `client_id` (RFC 7009). A token that is invalid or
    /// not this client's is ignored, as §2.2 asks: the answer is the same.
    pub async fn revoke_access_token_jwt(
        &self,
        settings: &TokenSettings,
        client_id: &str,
        token: &str,
    ) -> Result<bool> {
        let Ok(claims) = self.verify_access_token(settings, token) else { return Ok(false) };
        if claims.client_id != client_id {
            return Ok(false);
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(&claims.jti)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            sqlx::query("INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4)")
                .bind(&claims.jti)
                .bind(client_id)
                .bind(claims.exp)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        self.commit_and_publish(tx).await?;
        Ok(true)
    }

    /// Verifies a presented access token against the key ring and the clock. That its
    /// credential is still live is the caller's check (against the policy snapshot).
    pub fn verify_access_token(
        &self,
        settings: &TokenSettings,
        token: &str,
    ) -> std::result::Result<Arc<AccessClaims>, TokenError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let ring = self.keys().current();
        let claims = match self.verified.0.get(&digest) {
            Some(hit) if ring.verifiers.contains_key(&hit.0) => hit.1.clone(),
            _ => {
                let (kid, claims) = verify_signature(&ring, settings, token)?;
                let claims = Arc::new(claims);
                self.verified.0.insert(digest, Arc::new((kid, claims.clone())));
                claims
            }
        };
        let now = self.now() / SECOND;
        if now >= claims.exp + LEEWAY_SECS {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY_SECS < claims.nbf || now + LEEWAY_SECS < claims.iat {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// What the signature proves: the header is ours (`EdDSA`, a known `kid`, no key of its
/// own), the signature holds, and the issuer and audience are this gateway's. Time is
/// checked by the caller, against the store's clock, which tests control.
fn verify_signature(
    ring: &KeyRing,
    settings: &TokenSettings,
    token: &str,
) -> std::result::Result<(String, AccessClaims), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    // RFC 9068 §4: an access token says it is one, so an ID token or another JWT signed
    // with the same key can never pass for one.
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(TokenError::Malformed);
    }
    if header.alg != Algorithm::EdDSA
        || header.jku.is_some()
        || header.x5u.is_some()
        || header.jwk.is_some()
        || header.x5c.is_some()
    {
        return Err(TokenError::Malformed);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = ring.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongIssuerOrAudience,
            _ => TokenError::Malformed,
        }
    })?;
    Ok((kid, data.claims))
}
