//! Rotating the server secret.
//!
//! The secret keys the stored hashes of client secrets, API keys and personal access
//! tokens, and seals the signing keys. A hash cannot be recomputed without the secret it
//! hashes, so a rotation runs with the new secret *and* the previous one: what the
//! previous one keyed still verifies, and is re-keyed with the new one — signing keys at
//! start, credentials and tokens the next time they are presented. `secret_status`
//! says what still depends on the previous secret; once nothing does it can be dropped.
//!
//! The store records the fingerprint of the secret new hashes are made with. A server
//! whose secrets do not include it refuses to start (rather than writing hashes nobody
//! else can check), and only servers holding it re-key rows, so replicas restarted one by
//! one never re-key a row back and forth.

use serde::Serialize;
use sqlx::Row;

use crate::error::{DomainError, Result};
use crate::sealing::{seal, unseal, SealedWith};
use crate::secrets::Rekey;
use crate::store::Store;

/// What depends on which secret, for `portcullis admin secret-status`.
#[derive(Debug, Clone, Serialize)]
pub struct SecretStatus {
    /// Fingerprint of the secret the store makes new hashes with.
    pub store_secret: Option<String>,
    pub current_secret: String,
    pub previous_secret: Option<String>,
    /// Live credentials and tokens hashed with the current secret.
    pub rekeyed: usize,
    /// Live credentials not hashed with the current secret: they stop working when the
    /// previous secret is dropped unless they are presented (and so re-keyed) first.
    pub waiting: Vec<WaitingCredential>,
    /// Signing keys that open only with the previous secret (none once a server holding
    /// both has started).
    pub signing_keys_on_previous: usize,
    /// Signing keys that open with neither secret.
    pub signing_keys_unopenable: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct WaitingCredential {
    pub id: String,
    /// `client_secret`, `api_key` or `access_token` (a person's management token).
    pub kind: String,
    /// The client (or, for an access token, the person) it belongs to.
    pub owner: String,
    pub last_used_at: Option<i64>,
    pub expires_at: i64,
}

impl Store {
    /// Checks this server's secrets against the store's and settles what a start can:
    /// stamps hashes written before fingerprints were kept, declares a new secret when
    /// the store's is this server's previous one, and re-seals signing keys.
    pub(crate) async fn adopt_secret(&self) -> Result<()> {
        let current = self.enforcement.hasher().fingerprint();
        let previous = self.enforcement.hasher().previous_fingerprint();
        let declared: Option<String> =
            sqlx::query_scalar("SELECT current_key FROM secret_state WHERE id = 1").fetch_one(&self.pool).await?;
        let mut tx = self.begin().await?;
        match declared {
            None => {
                // Rows from before fingerprints were kept: the secret that made them is
                // not known, unless this server has only one.
                let unstamped: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM credentials WHERE hash_key IS NULL AND kind <> 'public_key')
                          + (SELECT COUNT(*) FROM access_tokens WHERE hash_key IS NULL)",
                )
                .fetch_one(&mut *tx)
                .await?;
                if unstamped > 0 && previous.is_some() {
                    return Err(DomainError::Invalid(
                        "this store does not yet record which server secret keyed its hashes: start once \
                         with the current secret alone, then rotate with --previous-secret-file"
                            .into(),
                    ));
                }
                sqlx::query("UPDATE secret_state SET current_key = $1 WHERE id = 1 AND current_key IS NULL")
                    .bind(&current)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(ref d) if *d == current => {}
            Some(ref d) if Some(d) == previous.as_ref() => {
                // The first server with the new secret declares it; the others agree.
                sqlx::query("UPDATE secret_state SET current_key = $1 WHERE id = 1 AND current_key = $2")
                    .bind(&current)
                    .bind(d)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(d) => {
                return Err(DomainError::Invalid(format!(
                    "the store's hashes are keyed with a server secret this server does not hold (fingerprint \
                     {d}; this server's is {current}{}). Start with the store's secret, or rotate by giving it \
                     as --previous-secret-file beside the new one.",
                    previous.as_deref().map(|p| format!(", previous {p}")).unwrap_or_default()
                )));
            }
        }
        if previous.is_none() {
            // With one secret, every hash that works was made with it.
            // Public keys are not hashed: they stay unstamped.
            for sql in [
                "UPDATE credentials SET hash_key = $1 WHERE hash_key IS NULL AND kind <> 'public_key'",
                "UPDATE access_tokens SET hash_key = $1 WHERE hash_key IS NULL",
            ] {
                sqlx::query(sql).bind(&current).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if previous.is_some() {
            self.reseal_signing_keys().await?;
        }
        Ok(())
    }

    /// Seals again with the current secret every signing key that opens only with the
    /// previous one. Conditional: two servers starting together re-seal each key once.
    async fn reseal_signing_keys(&self) -> Result<usize> {
        let rows = sqlx::query("SELECT kid, sealed_private_key FROM signing_keys WHERE revoked_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        let mut resealed = 0;
        for r in rows {
            let kid: String = r.try_get("kid")?;
            let sealed: String = r.try_get("sealed_private_key")?;
            let Ok((der, SealedWith::Previous)) = unseal(&self.sealing_key, &kid, &sealed) else { continue };
            let done = sqlx::query(
                "UPDATE signing_keys SET sealed_private_key = $1 WHERE kid = $2 AND sealed_private_key = $3",
            )
            .bind(seal(&self.sealing_key, &kid, &der)?)
            .bind(&kid)
            .bind(&sealed)
            .execute(&self.pool)
            .await?;
            resealed += usize::try_from(done.rows_affected()).unwrap_or(0);
        }
        if resealed > 0 {
            tracing::info!(resealed, "signing keys sealed again with the current server secret");
        }
        Ok(resealed)
    }

    /// Writes requested re-keys as they come, in batches: one transaction and one policy
    /// change per batch, however many requests presented old credentials meanwhile.
    pub async fn run_rekeys(&self) {
        loop {
            self.enforcement.rekeys().requested().await;
            // Let a burst of requests gather into one batch.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Err(e) = self.apply_rekeys().await {
                tracing::warn!(error = %e, "re-keying credentials failed; they are retried when next presented");
            }
        }
    }

    /// Re-keys what is pending now; how many rows changed.
    pub async fn apply_rekeys(&self) -> Result<u64> {
        let batch = self.enforcement.rekeys().take();
        if batch.is_empty() {
            return Ok(0);
        }
        let current = self.enforcement.hasher().fingerprint();
        let mut tx = self.begin().await?;
        let mut changed = 0;
        for (id, rekey) in &batch {
            // Only while the store's secret is ours: a replica still on the old secret
            // (mid-rollout) never moves a row back.
            changed += sqlx::query(
                "UPDATE credentials SET secret_hash = $1, hash_key = $2
                 WHERE id = $3 AND secret_hash = $4
                   AND (SELECT current_key FROM secret_state WHERE id = 1) = $2",
            )
            .bind(&rekey.new_hash)
            .bind(&current)
            .bind(id)
            .bind(&rekey.old_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if changed > 0 {
            // The snapshot is keyed by hash: every replica reloads and finds the new one.
            self.commit_and_publish(tx).await?;
            tracing::info!(changed, "credentials re-keyed with the current server secret");
        } else {
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Re-keys a personal access token found under the previous secret (tokens are
    /// looked up in the database, so this happens in line, with its last use).
    pub(crate) async fn rekey_access_token(&self, token_id: &str, rekey: &Rekey) -> Result<()> {
        sqlx::query(
            "UPDATE access_tokens SET token_hash = $1, hash_key = $2
             WHERE id = $3 AND token_hash = $4 AND (SELECT current_key FROM secret_state WHERE id = 1) = $2",
        )
        .bind(&rekey.new_hash)
        .bind(self.enforcement.hasher().fingerprint())
        .bind(token_id)
        .bind(&rekey.old_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What still depends on a secret other than the current one.
    pub async fn secret_status(&self) -> Result<SecretStatus> {
        let current = self.enforcement.hasher().fingerprint();
        let now = self.now();
        let store_secret: Option<String> =
            sqlx::query_scalar("SELECT current_key FROM secret_state WHERE id = 1").fetch_one(&self.pool).await?;
        let mut rekeyed = 0;
        let mut waiting = Vec::new();
        // Credentials (kind `client_secret` or `api_key`, owned by a client; a public key
        // owes nothing to the secret) and personal access tokens (owned by a person), live
        // ones only, oldest first.
        let live = [
            "SELECT c.id, c.kind, c.hash_key, c.last_used_at, c.expires_at, p.client_id AS owner
             FROM credentials c JOIN profiles p ON p.id = c.profile_id
             WHERE c.revoked_at IS NULL AND c.expires_at > $1 AND c.kind <> 'public_key' ORDER BY c.created_at",
            "SELECT t.id, 'access_token' AS kind, t.hash_key, t.last_used_at, t.expires_at, u.email AS owner
             FROM access_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.revoked_at IS NULL AND t.expires_at > $1 ORDER BY t.created_at",
        ];
        for sql in live {
            for r in sqlx::query(sql).bind(now).fetch_all(&self.pool).await? {
                if r.try_get::<Option<String>, _>("hash_key")?.as_deref() == Some(current.as_str()) {
                    rekeyed += 1;
                    continue;
                }
                waiting.push(WaitingCredential {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    owner: r.try_get("owner")?,
                    last_used_at: r.try_get("last_used_at")?,
                    expires_at: r.try_get("expires_at")?,
                });
            }
        }
        let (mut on_previous, mut unopenable) = (0, 0);
        for r in sqlx::query("SELECT kid, sealed_private_key FROM signing_keys WHERE revoked_at IS NULL")
            .fetch_all(&self.pool)
            .await?
        {
            let kid: String = r.try_get("kid")?;
            match unseal(&self.sealing_key, &kid, &r.try_get::<String, _>("sealed_private_key")?) {
                Ok((_, SealedWith::Current)) => {}
                Ok((_, SealedWith::Previous)) => on_previous += 1,
                Err(_) => unopenable += 1,
            }
        }
        Ok(SecretStatus {
            store_secret,
            current_secret: current,
            previous_secret: self.enforcement.hasher().previous_fingerprint(),
            rekeyed,
            waiting,
            signing_keys_on_previous: on_previous,
            signing_keys_unopenable: unopenable,
        })
    }
}
