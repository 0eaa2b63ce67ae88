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
/// How long a scheduled successor key is published before it signs: long enough for
/// every replica (a second) and for resource servers that cache the JWKS for up to an
/// hour to know it before they meet a token it signed.
pub const PUBLISH_AHEAD_MS: i64 = crate::time::HOUR;
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

/// A key that signs from `activates_at` until `retires_at`.
struct Signer {
    kid: String,
    activates_at: i64,
    retires_at: Option<i64>,
    key: EncodingKey,
}

#[derive(Default)]
pub struct KeyRing {
    /// Newest first: the current key, and a successor published ahead of its time.
    signers: Vec<Signer>,
    verifiers: HashMap<String, DecodingKey>,
    pub jwks: Vec<Jwk>,
}

impl KeyRing {
    /// The key that signs at `now`. Chosen at each signing, not at each load, so that a
    /// successor takes over at its time on every replica without anyone reloading.
    fn signer(&self, now: i64) -> Option<&Signer> {
        self.signers.iter().find(|s| s.activates_at <= now && s.retires_at.is_none_or(|r| now < r))
    }
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
pub struct SealingKey {
    pub(crate) current: [u8; 32],
    /// During a server-secret rotation: keys sealed before it still open.
    pub(crate) previous: Option<[u8; 32]>,
}

impl SealingKey {
    pub(crate) fn new(secret: &crate::secrets::ServerSecret) -> Self {
        const PURPOSE: &str = "signing-key-seal/v1";
        Self { current: secret.derive(PURPOSE), previous: secret.derive_previous(PURPOSE) }
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

pub(crate) fn seal(key: &SealingKey, kid: &str, plain: &[u8]) -> Result<String> {
    let cipher = Aes256Gcm::new((&key.current).into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: kid.as_bytes() })
        .map_err(|_| DomainError::Internal("sealing a signing key failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), sealed.as_slice()].concat()))
}

/// Which server secret a signing key was sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealedWith {
    Current,
    Previous,
}

pub(crate) fn unseal(key: &SealingKey, kid: &str, text: &str) -> Result<(Vec<u8>, SealedWith)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| DomainError::Internal("sealed key is not base64".into()))?;
    let (nonce, sealed) =
        bytes.split_at_checked(12).ok_or_else(|| DomainError::Internal("sealed key too short".into()))?;
    let open = |k: &[u8; 32]| {
        Aes256Gcm::new(k.into()).decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: kid.as_bytes() }).ok()
    };
    if let Some(plain) = open(&key.current) {
        return Ok((plain, SealedWith::Current));
    }
    match key.previous.as_ref().and_then(open) {
        Some(plain) => Ok((plain, SealedWith::Previous)),
        None => Err(DomainError::Internal(format!("signing key {kid} does not open with this server secret"))),
    }
}

impl Store {
    pub fn keys(&self) -> &KeyRingHandle {
        &self.keys
    }

    /// Makes a fresh signing key current; the previous one stays published (and keeps
    /// verifying its tokens) until it is older than any token it could have signed.
    /// `channel` says who asked (`cli`, `scheduler`, `system` for the first key).
    pub async fn rotate_signing_key(&self, channel: &'static str) -> Result<String> {
        self.rotate_signing_key_in(channel, 0).await
    }

    /// Publishes a fresh key that starts signing `activates_in_ms` from now; the current
    /// key signs until then. Published ahead, the key is in every replica's JWKS (and in
    /// the caches of resource servers that fetch it) before any token it signs arrives.
    pub async fn rotate_signing_key_in(&self, channel: &'static str, activates_in_ms: i64) -> Result<String> {
        let added = self.add_signing_key(channel, activates_in_ms, None).await?;
        added.ok_or_else(|| DomainError::Conflict("another server rotated the signing key at the same moment".into()))
    }

    /// Adds a key, superseding the newest one — only if that one was created before
    /// `older_than` when given. `None` when there was nothing to supersede that old, or
    /// another server added a key at the same moment: one rotation, whoever asks.
    async fn add_signing_key(
        &self,
        channel: &'static str,
        activates_in_ms: i64,
        older_than: Option<i64>,
    ) -> Result<Option<String>> {
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let der = signing.to_pkcs8_der().map_err(|e| DomainError::Internal(format!("pkcs8: {e}")))?;
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let kid = format!("k{}", &crate::store::new_id("key")[4..20]);
        let sealed = seal(&self.sealing_key, &kid, der.as_bytes())?;
        let now = self.now();
        let activates_at = now.saturating_add(activates_in_ms.max(0));
        let mut tx = self.begin().await?;
        // The predecessor signs until its successor starts. Conditional, this update is
        // the claim: a second server rotating at once finds nothing old left (its update
        // waits for the first's commit) and backs off.
        let superseded = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1
             WHERE retired_at IS NULL AND revoked_at IS NULL AND created_at <= $2",
        )
        .bind(activates_at)
        .bind(older_than.unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if older_than.is_some() && superseded == 0 {
            return Ok(None);
        }
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, created_at, activates_at)
             VALUES ($1, 'EdDSA', $2, $3, $4, $5)",
        )
        .bind(&kid)
        .bind(&public)
        .bind(&sealed)
        .bind(now)
        .bind(activates_at)
        .execute(&mut *tx)
        .await;
        match inserted.map_err(DomainError::from) {
            Ok(_) => {}
            // `signing_keys_one_newest`: another server's key was added first; it stands.
            Err(DomainError::Conflict(_)) => {
                drop(tx);
                self.reload_keys().await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        crate::audit::record(
            &mut *tx,
            now,
            None,
            channel,
            crate::audit::AdminEvent {
                action: "signing_key.rotated",
                target_type: "signing_key",
                target_id: &kid,
                summary: serde_json::json!({ "algorithm": "EdDSA", "activates_at": activates_at }),
            },
        )
        .await?;
        // Other servers learn of the new key at their next version poll.
        crate::policy::bump_policy_version(&mut tx).await?;
        tx.commit().await?;
        self.reload_keys().await?;
        Ok(Some(kid))
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
        // Signing now (or about to, as the published successor): a fresh key takes over at once.
        let was_signing = retired_at.is_none_or(|r| now < r);
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
                summary: serde_json::json!({ "was_current": was_signing }),
            },
        )
        .await?;
        crate::policy::bump_policy_version(&mut tx).await?;
        tx.commit().await?;
        let successor = if was_signing {
            Some(self.rotate_signing_key(channel).await?)
        } else {
            self.reload_keys().await.map(|_| None)?
        };
        Ok(successor)
    }

    /// The schedule's rotation: a fresh key when the current one is older than
    /// `max_age_ms`. Returns the new `kid`, or `None` when the key is young enough.
    /// Whichever replicas run it, one key is added per rotation; it signs from
    /// `PUBLISH_AHEAD_MS` later.
    pub async fn rotate_signing_key_if_older(&self, max_age_ms: i64) -> Result<Option<String>> {
        let older_than = self.now().saturating_sub(max_age_ms);
        self.add_signing_key("scheduler", PUBLISH_AHEAD_MS, Some(older_than)).await
    }

    /// Loads the current key and the recently retired ones; creates a key if none exists.
    pub async fn reload_keys(&self) -> Result<()> {
        // A retired key verifies for as long as the longest-lived token it signed.
        let keep_after = self.now() - 24 * crate::time::HOUR;
        let rows = sqlx::query(
            "SELECT kid, public_key, sealed_private_key, retired_at, activates_at FROM signing_keys
             WHERE revoked_at IS NULL AND (retired_at IS NULL OR retired_at > $1) ORDER BY created_at DESC",
        )
        .bind(keep_after)
        .fetch_all(&self.pool)
        .await?;
        if !rows.iter().any(|r| r.try_get::<Option<i64>, _>("retired_at").ok().flatten().is_none()) {
            // None at all (a new store, or the last one revoked): one now. Servers starting
            // together on a new store may all try; the first one's key stands.
            return match Box::pin(self.add_signing_key("system", 0, None)).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Box::pin(self.reload_keys()).await,
                Err(e) => Err(e),
            };
        }
        let now = self.now();
        let mut ring = KeyRing::default();
        for r in &rows {
            let kid: String = r.try_get("kid")?;
            let x: String = r.try_get("public_key")?;
            let verifier =
                DecodingKey::from_ed_components(&x).map_err(|e| DomainError::Internal(format!("key {kid}: {e}")))?;
            ring.verifiers.insert(kid.clone(), verifier);
            let retires_at: Option<i64> = r.try_get("retired_at")?;
            if retires_at.is_none_or(|t| now < t) {
                let (der, _) = unseal(&self.sealing_key, &kid, &r.try_get::<String, _>("sealed_private_key")?)?;
                let activates_at = r.try_get::<Option<i64>, _>("activates_at")?.unwrap_or(i64::MIN);
                ring.signers.push(Signer {
                    kid: kid.clone(),
                    activates_at,
                    retires_at,
                    key: EncodingKey::from_ed_der(&der),
                });
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
        actor.permit(crate::scopes::Area::Clients, crate::access::Access::Write)?;
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
        let signer = ring.signer(self.now()).ok_or(TokenRequestError::Internal)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &signer.key).map_err(|e| {
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
        let (credential, rekey) = self
            .hasher
            .find(client_secret, |hash| snap.credentials.get(hash))
            .filter(|(c, _)| c.kind == CredentialKind::ClientSecret && now < c.expires_at)
            .ok_or(TokenRequestError::InvalidClient)?;
        let profile = snap
            .profiles
            .get(&credential.profile_id)
            .filter(|p| p.client_id == client_id && p.stopped().is_none())
            .ok_or(TokenRequestError::InvalidClient)?;
        if let Some(rekey) = rekey {
            self.request_rekey(&credential.id, rekey);
        }
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
