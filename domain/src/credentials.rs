//! A profile's credentials: client secrets and API keys, issued, rotated and revoked;
//! public keys (private_key_jwt) and certificate subjects (tls_client_auth), registered
//! and revoked the same way.
//!
//! Every public function takes the acting person and passes through
//! [`Actor::check_owner`] (by way of the profile or credential it loads): there is no
//! way to reach a credential here without that check.

use serde_json::json;
use sqlx::{Any, Row, Transaction};

use crate::access::{Access, Actor};
use crate::audit::{self, AdminEvent};
use crate::clients::ProfileRef;
use crate::enforcement::{parse_public_key, parse_subject, MAX_KEYS_PER_PROFILE};
use crate::error::Result;
use crate::model::{CredentialKind, IssuedSecret, RegisteredKey, RegisteredSubject};
use crate::scopes::Area;
use crate::secrets;
use crate::store::{new_id, Store};
use crate::DomainError;

impl Store {
    pub(crate) async fn insert_credential(
        &self,
        tx: &mut Transaction<'_, Any>,
        actor: &Actor,
        profile: &ProfileRef,
        kind: CredentialKind,
    ) -> Result<IssuedSecret> {
        let now = self.now();
        let id = new_id("cr");
        let prefix = secrets::prefix_for(kind)
            .ok_or_else(|| DomainError::Internal(format!("a {} is registered, not generated", kind.noun())))?;
        let generated = secrets::generate(self.enforcement.hasher(), prefix);
        let expires_at = now + self.policy.credential_lifetime_ms;
        sqlx::query(
            "INSERT INTO credentials (id, profile_id, kind, prefix, secret_hash, hash_key, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&profile.id)
        .bind(kind.as_str())
        .bind(&generated.display_prefix)
        .bind(&generated.hash)
        .bind(self.enforcement.hasher().fingerprint())
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        audit::record_by(
            &mut **tx,
            now,
            actor,
            AdminEvent {
                action: "credential.issued",
                target_type: "credential",
                target_id: &id,
                summary: json!({ "profile_id": profile.id, "kind": kind.as_str(), "prefix": generated.display_prefix, "expires_at": expires_at }),
            },
        )
        .await?;
        Ok(IssuedSecret {
            credential_id: id,
            kind,
            client_id: profile.client_id.clone(),
            profile_id: profile.id.clone(),
            environment: profile.environment,
            expires_at,
            secret: generated.value,
        })
    }

    /// Issues a new client secret for a profile. Every secret that still works is cut to
    /// the end of the grace period, so callers have time to switch, then stops.
    pub async fn rotate_secret(&self, actor: &Actor, profile_id: &str) -> Result<IssuedSecret> {
        actor.permit(Area::Clients, Access::Write)?;
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        let now = self.now();
        let grace_end = now + self.policy.rotation_grace_ms;
        let mut tx = self.begin().await?;
        let cut = sqlx::query(
            "UPDATE credentials SET rotated_at = $1, expires_at = CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END
             WHERE profile_id = $3 AND kind = 'client_secret' AND revoked_at IS NULL AND rotated_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(grace_end)
        .bind(&profile.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let issued = self.insert_credential(&mut tx, actor, &profile, CredentialKind::ClientSecret).await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "credential.rotated",
                target_type: "profile",
                target_id: &profile.id,
                summary: json!({ "new_credential_id": issued.credential_id, "previous_in_grace": cut, "grace_until": grace_end }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        Ok(issued)
    }

    /// Registers a public key the client will sign its token requests with
    /// (private_key_jwt) instead of a secret. With `replace`, every client secret and key
    /// of the profile that still works is cut to the end of the grace period, as a
    /// rotation does, so the two overlap until the agent has switched.
    pub async fn register_public_key(
        &self,
        actor: &Actor,
        profile_id: &str,
        key: &str,
        replace: bool,
    ) -> Result<RegisteredKey> {
        actor.permit(Area::Clients, Access::Write)?;
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        let parsed = parse_public_key(key).map_err(|e| DomainError::Invalid(e.0))?;
        let secret_hash = format!("jkt:{}", parsed.thumbprint);
        let now = self.now();
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM credentials WHERE secret_hash = $1")
            .bind(&secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        if taken.is_some() {
            return Err(DomainError::Conflict(
                "This key is registered already, here or for another client, or was revoked: a key belongs to one \
                 client once. Make a new key pair."
                    .into(),
            ));
        }
        let mut tx = self.begin().await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credentials WHERE profile_id = $1 AND kind = 'public_key' AND revoked_at IS NULL
             AND expires_at > $2",
        )
        .bind(&profile.id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if !replace && usize::try_from(live).unwrap_or(usize::MAX) >= MAX_KEYS_PER_PROFILE {
            return Err(DomainError::Conflict(format!(
                "This profile has {live} live public keys, the most it may hold: revoke one, or register this one as a \
                 replacement."
            )));
        }
        let grace_end = now + self.policy.rotation_grace_ms;
        let replaced = if replace {
            sqlx::query(
                "UPDATE credentials SET rotated_at = $1,
                        expires_at = CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END
                 WHERE profile_id = $3 AND kind IN ('client_secret', 'public_key') AND revoked_at IS NULL
                   AND rotated_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .bind(grace_end)
            .bind(&profile.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            0
        };
        let id = new_id("cr");
        let expires_at = now + self.policy.credential_lifetime_ms;
        sqlx::query(
            "INSERT INTO credentials (id, profile_id, kind, prefix, secret_hash, created_at, expires_at, public_jwk)
             VALUES ($1, $2, 'public_key', $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&profile.id)
        .bind(&parsed.thumbprint)
        .bind(&secret_hash)
        .bind(now)
        .bind(expires_at)
        .bind(parsed.jwk.to_string())
        .execute(&mut *tx)
        .await?;
        let algorithms: Vec<String> = parsed.algorithms.iter().map(|a| format!("{a:?}")).collect();
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "credential.issued",
                target_type: "credential",
                target_id: &id,
                summary: json!({
                    "profile_id": profile.id, "kind": "public_key", "thumbprint": parsed.thumbprint,
                    "key_type": parsed.key_type, "expires_at": expires_at, "replaced": replaced,
                }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        Ok(RegisteredKey {
            credential_id: id,
            client_id: profile.client_id.clone(),
            profile_id: profile.id.clone(),
            environment: profile.environment,
            thumbprint: parsed.thumbprint,
            key_type: parsed.key_type,
            algorithms,
            expires_at,
            replaced,
        })
    }

    /// Registers the subject of the certificates an authority the listener trusts issues
    /// to the agent (`tls_client_auth`, RFC 8705 §2.1): such a certificate, with only the
    /// client id, then authenticates it. The same subject may be registered for several
    /// clients (each developer vouches only for their own client), but once per profile.
    pub async fn register_certificate_subject(
        &self,
        actor: &Actor,
        profile_id: &str,
        subject: &str,
    ) -> Result<RegisteredSubject> {
        actor.permit(Area::Clients, Access::Write)?;
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        let name = parse_subject(subject).map_err(|e| DomainError::Invalid(e.0))?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let registered: Vec<(String, i64)> = sqlx::query_as(
            "SELECT external_subject, expires_at FROM credentials WHERE profile_id = $1
             AND kind = 'certificate_subject' AND revoked_at IS NULL",
        )
        .bind(&profile.id)
        .fetch_all(&mut *tx)
        .await?;
        if registered.iter().any(|(key, _)| *key == name.key) {
            return Err(DomainError::Conflict(format!(
                "{} is registered for this profile already (revoke it first to register it again).",
                name.display
            )));
        }
        // The token request names the client, not the profile: one subject on two of a
        // client's profiles would leave the certificate's environment to chance.
        let elsewhere: Option<String> = sqlx::query_scalar(
            "SELECT p.environment FROM credentials c JOIN profiles p ON p.id = c.profile_id
             WHERE p.client_id = $1 AND p.id <> $2 AND c.kind = 'certificate_subject' AND c.revoked_at IS NULL
               AND c.external_subject = $3",
        )
        .bind(&profile.client_id)
        .bind(&profile.id)
        .bind(&name.key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(environment) = elsewhere {
            return Err(DomainError::Conflict(format!(
                "{} authenticates this client's {environment} profile already: a certificate must mean one \
                 environment. Give each environment's agent its own certificate subject.",
                name.display
            )));
        }
        let live = registered.iter().filter(|(_, expires_at)| *expires_at > now).count();
        if live >= MAX_KEYS_PER_PROFILE {
            return Err(DomainError::Conflict(format!(
                "This profile has {live} live certificate subjects, the most it may hold: revoke one first."
            )));
        }
        let id = new_id("cr");
        let expires_at = now + self.policy.credential_lifetime_ms;
        let inserted = sqlx::query(
            "INSERT INTO credentials (id, profile_id, kind, prefix, secret_hash, created_at, expires_at,
                                      external_subject)
             VALUES ($1, $2, 'certificate_subject', $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&profile.id)
        .bind(&name.display)
        .bind(format!("dn:{id}"))
        .bind(now)
        .bind(expires_at)
        .bind(&name.key)
        .execute(&mut *tx)
        .await;
        // Two people registering the same subject at once: the unique index decides.
        inserted.map_err(|e| {
            DomainError::lost_race(e, || format!("{} was just registered for this profile.", name.display))
        })?;
        let summary = json!({
            "profile_id": profile.id, "kind": "certificate_subject", "subject": name.display, "expires_at": expires_at,
        });
        let event = AdminEvent { action: "credential.issued", target_type: "credential", target_id: &id, summary };
        audit::record_by(&mut *tx, now, actor, event).await?;
        self.commit_and_publish(tx).await?;
        Ok(RegisteredSubject {
            credential_id: id,
            client_id: profile.client_id.clone(),
            profile_id: profile.id.clone(),
            environment: profile.environment,
            subject: name.display,
            expires_at,
        })
    }

    pub async fn issue_api_key(&self, actor: &Actor, profile_id: &str) -> Result<IssuedSecret> {
        actor.permit(Area::Clients, Access::Write)?;
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        let mut tx = self.begin().await?;
        let issued = self.insert_credential(&mut tx, actor, &profile, CredentialKind::ApiKey).await?;
        self.commit_and_publish(tx).await?;
        Ok(issued)
    }

    /// Revokes at once; the credential stops working on the next request.
    pub async fn revoke_credential(&self, actor: &Actor, credential_id: &str) -> Result<()> {
        actor.permit(Area::Clients, Access::Write)?;
        self.revoke_credential_checked(actor, credential_id, None).await
    }

    /// The one revocation. With a review reason the caller has already checked that
    /// the actor reviews access (security or admin); without one, only the owner or an
    /// admin may revoke.
    pub(crate) async fn revoke_credential_checked(
        &self,
        actor: &Actor,
        credential_id: &str,
        review_reason: Option<&str>,
    ) -> Result<()> {
        let row = sqlx::query(
            "SELECT c.owner_id, cr.revoked_at, cr.profile_id FROM credentials cr
             JOIN profiles p ON p.id = cr.profile_id JOIN clients c ON c.id = p.client_id WHERE cr.id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(DomainError::NotFound)?;
        if review_reason.is_none() {
            actor.check_owner(&row.try_get::<String, _>("owner_id")?, Access::Write)?;
        }
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Err(DomainError::Conflict("This credential is already revoked.".into()));
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(credential_id)
            .execute(&mut *tx)
            .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "credential.revoked",
                target_type: "credential",
                target_id: credential_id,
                summary: match review_reason {
                    None => json!({ "profile_id": row.try_get::<String, _>("profile_id")? }),
                    Some(why) => {
                        json!({ "profile_id": row.try_get::<String, _>("profile_id")?, "reason": why, "review": true })
                    }
                },
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        Ok(())
    }
}
