//! OAuth2 client credentials, the store's side: signing keys (made, rotated, revoked,
//! loaded into the key ring), tokens issued for a person's Test access, and revoked
//! tokens.
//!
//! Tokens are JWTs signed with Ed25519 (`EdDSA`) or, when configured, ECDSA P-256
//! (`ES256`), `typ: at+jwt` (RFC 9068). Signing keys
//! live in the store with their private half sealed by a key derived from the server
//! secret (`crate::sealing`), and are loaded into the in-memory key ring of
//! `crate::enforcement`, which mints and verifies: the gateway's hot path touches no
//! database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use sqlx::Row;

use crate::enforcement::{
    Confirmation, IssuedAccessToken, Jwk, KeyRing, Signer, SigningAlg, TokenAsk, TokenRequestError, TokenSettings,
};
use crate::error::Result;
use crate::model::SenderConstraint;
use crate::sealing::{seal, unseal};
use crate::store::Store;
use crate::DomainError;

/// How long a scheduled successor key is published before it signs: long enough for
/// every replica (a second) and for resource servers that cache the JWKS for up to an
/// hour to know it before they meet a token it signed.
pub const PUBLISH_AHEAD_MS: i64 = crate::time::HOUR;

/// A new key pair for `alg`: the private key (PKCS #8 DER) and the public key as stored
/// (`x` for Ed25519, `x.y` for P-256, base64url).
fn new_key_pair(alg: SigningAlg) -> Result<(Vec<u8>, String)> {
    let pkcs8 = |e: &dyn std::fmt::Display| DomainError::Internal(format!("pkcs8: {e}"));
    match alg {
        SigningAlg::EdDSA => {
            let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let der = signing.to_pkcs8_der().map_err(|e| pkcs8(&e))?;
            Ok((der.as_bytes().to_vec(), URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes())))
        }
        SigningAlg::ES256 => {
            use p256::pkcs8::EncodePrivateKey as _;
            let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let der = secret.to_pkcs8_der().map_err(|e| pkcs8(&e))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(DomainError::Internal("P-256 public key without coordinates".into()));
            };
            Ok((der.as_bytes().to_vec(), format!("{}.{}", URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))))
        }
    }
}

impl Store {
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
        let alg = self.policy.token_signing_alg;
        let (der, public) = new_key_pair(alg)?;
        let kid = format!("k{}", &crate::store::new_id("key")[4..20]);
        let sealed = seal(&self.sealing_key, &kid, &der)?;
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&kid)
        .bind(alg.as_str())
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
                summary: serde_json::json!({ "algorithm": alg.as_str(), "activates_at": activates_at }),
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
            "SELECT kid, algorithm, public_key, sealed_private_key, retired_at, activates_at FROM signing_keys
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
            let algorithm: String = r.try_get("algorithm")?;
            let alg = SigningAlg::parse(&algorithm)
                .ok_or_else(|| DomainError::Internal(format!("key {kid}: unknown algorithm {algorithm}")))?;
            let public: String = r.try_get("public_key")?;
            let bad = |e: jsonwebtoken::errors::Error| DomainError::Internal(format!("key {kid}: {e}"));
            // EdDSA keys store `x`; ES256 keys `x.y` (base64url has no dot).
            let (x, y) = match public.split_once('.') {
                Some((x, y)) => (x.to_owned(), Some(y.to_owned())),
                None => (public.clone(), None),
            };
            let verifier = match (alg, &y) {
                (SigningAlg::EdDSA, None) => DecodingKey::from_ed_components(&x).map_err(bad)?,
                (SigningAlg::ES256, Some(y)) => DecodingKey::from_ec_components(&x, y).map_err(bad)?,
                _ => return Err(DomainError::Internal(format!("key {kid}: public key does not fit {algorithm}"))),
            };
            ring.verifiers.insert(kid.clone(), (alg, verifier));
            let retires_at: Option<i64> = r.try_get("retired_at")?;
            if retires_at.is_none_or(|t| now < t) {
                let (der, _) = unseal(&self.sealing_key, &kid, &r.try_get::<String, _>("sealed_private_key")?)?;
                let activates_at = r.try_get::<Option<i64>, _>("activates_at")?.unwrap_or(i64::MIN);
                let key = match alg {
                    SigningAlg::EdDSA => EncodingKey::from_ed_der(&der),
                    SigningAlg::ES256 => EncodingKey::from_ec_der(&der),
                };
                ring.signers.push(Signer { kid: kid.clone(), activates_at, retires_at, alg, key });
            }
            let (kty, crv) = match alg {
                SigningAlg::EdDSA => ("OKP", "Ed25519"),
                SigningAlg::ES256 => ("EC", "P-256"),
            };
            ring.jwks.push(Jwk { kty, crv, alg: alg.as_str(), use_: "sig", kid, x, y });
        }
        self.enforcement.keys().replace(ring);
        Ok(())
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
        dpop_jkt: Option<&str>,
    ) -> Result<IssuedAccessToken> {
        actor.permit(crate::scopes::Area::Clients, crate::access::Access::Write)?;
        use crate::audit_text::{cap, AuditText};
        self.owned_profile(actor, profile_id, crate::access::Access::Write).await?;
        let snap = self.enforcement.snapshot().current();
        let now = self.now();
        let profile = snap.profiles.get(profile_id).ok_or(DomainError::NotFound)?;
        let credential = snap
            .credentials_by_id
            .values()
            .filter(|c| c.profile_id == profile_id && c.kind.authenticates_client() && now < c.expires_at)
            .max_by_key(|c| c.expires_at)
            .ok_or_else(|| {
                DomainError::Invalid(
                    "This profile has no usable client secret or public key; rotate or register one first.".into(),
                )
            })?;
        let issued = self
            .enforcement
            .mint(
                settings,
                credential,
                profile,
                &TokenAsk {
                    acting_user: Some(&actor.user.id),
                    binding: Confirmation::new(dpop_jkt, None),
                    ..TokenAsk::default()
                },
            )
            .map_err(|e| match e {
                TokenRequestError::InvalidScope(m)
                | TokenRequestError::InvalidRequest(m)
                | TokenRequestError::InvalidAuthorizationDetails(m) => DomainError::Invalid(m),
                TokenRequestError::InvalidClient => DomainError::Invalid("This client cannot get tokens now.".into()),
                TokenRequestError::SenderConstraintRequired(SenderConstraint::Mtls) => DomainError::Invalid(
                    "This profile accepts only tokens bound to the agent's TLS client certificate, which Test access does not hold: call with the agent's certificate (curl --cert).".into(),
                ),
                TokenRequestError::SenderConstraintRequired(_) => {
                    DomainError::Invalid("This profile accepts only DPoP-bound tokens.".into())
                }
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

    /// Revokes an access token of `client_id` (RFC 7009). A token that is invalid or
    /// not this client's is ignored, as §2.2 asks: the answer is the same.
    pub async fn revoke_access_token_jwt(
        &self,
        settings: &TokenSettings,
        client_id: &str,
        token: &str,
    ) -> Result<bool> {
        let Ok(claims) = self.enforcement.verify_access_token(settings, token) else { return Ok(false) };
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
}
