//! Loading the policy snapshot from the store, and publishing changes to it.
//!
//! The snapshot itself lives in `crate::enforcement`. Every change made through the
//! portal or the API rebuilds it before it answers, so a revocation takes effect on the
//! very next request; a periodic reload (or PostgreSQL's `LISTEN`) is the backstop for
//! changes made by another replica.

use sqlx::Row;
use std::collections::HashMap;

use crate::enforcement::{
    issuer_alg, parse_jwks, ClientKey, CredentialEntry, EndpointEntry, GrantEntry, IssuerEntry, IssuerKeys,
    ProductEntry, ProfileEntry, Snapshot,
};
use crate::error::Result;
use crate::model::CredentialKind;
use crate::routing::Template;
use crate::store::{enum_col, flag, split_list, Store};

/// A JSON column; text we wrote ourselves, so unreadable JSON is treated as absent.
fn json_col(r: &sqlx::any::AnyRow, name: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = r.try_get(name)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

impl Store {
    /// Commits a change the gateway must enforce, with a new policy version, and rebuilds
    /// the snapshot before the caller hears of it: the next request already sees the
    /// change, and other servers see the version move within their next poll.
    pub(crate) async fn commit_and_publish(&self, mut tx: sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        bump_policy_version(&mut tx).await?;
        tx.commit().await?;
        self.reload_policy().await
    }

    /// Policy changes as they commit anywhere, on PostgreSQL (`LISTEN`); `None` on
    /// SQLite, where servers learn of changes by polling `policy_version`.
    pub async fn policy_changes(&self) -> Result<Option<PolicyChanges>> {
        if self.backend != crate::store::Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url.0).await?;
        listener.listen("portcullis_policy").await?;
        Ok(Some(PolicyChanges(listener)))
    }

    /// The policy version in the store: a server whose snapshot is older reloads.
    pub async fn policy_version(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT version FROM policy_state WHERE id = 1").fetch_one(&self.pool).await?)
    }

    /// Rebuilds the snapshot from the database and swaps it in, unless a newer one is
    /// already in place.
    pub async fn reload_policy(&self) -> Result<()> {
        let read_at = self.now();
        let snap = self.load_snapshot().await?;
        let policy = self.enforcement.snapshot();
        policy.publish(snap);
        policy.confirm(read_at);
        Ok(())
    }

    /// Reads the policy in one read transaction, version first, so the snapshot is what
    /// the database held at that version (PostgreSQL: repeatable read; SQLite: a read
    /// transaction sees one state of the file).
    pub async fn load_snapshot(&self) -> Result<Snapshot> {
        let mut tx = self.pool.begin().await?;
        if self.backend == crate::store::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
        }
        let mut snap = Snapshot {
            version: sqlx::query_scalar("SELECT version FROM policy_state WHERE id = 1").fetch_one(&mut *tx).await?,
            ..Snapshot::default()
        };
        // Federated identities, attached to their issuers once those are read.
        let mut identities = Vec::new();
        for r in sqlx::query(
            "SELECT c.id, c.kind, c.profile_id, c.secret_hash, c.expires_at, c.public_jwk, c.issuer_id,
                    c.external_subject, p.client_id
             FROM credentials c JOIN profiles p ON p.id = c.profile_id WHERE c.revoked_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let entry = CredentialEntry {
                id: r.try_get("id")?,
                kind: enum_col(&r, "kind")?,
                profile_id: r.try_get("profile_id")?,
                expires_at: r.try_get("expires_at")?,
            };
            snap.credentials_by_id.insert(entry.id.clone(), entry.clone());
            if entry.kind == CredentialKind::Federated {
                let (issuer, subject): (Option<String>, Option<String>) =
                    (r.try_get("issuer_id")?, r.try_get("external_subject")?);
                if let (Some(issuer), Some(subject)) = (issuer, subject) {
                    identities.push((issuer, subject, entry));
                }
            } else if entry.kind == CredentialKind::PublicKey {
                let jwk: Option<String> = r.try_get("public_jwk")?;
                match ClientKey::from_stored(entry, jwk.as_deref().unwrap_or_default()) {
                    Ok(key) => snap.client_keys.entry(r.try_get("client_id")?).or_default().push(key),
                    // Checked when registered; a key that no longer reads authenticates no one.
                    Err(e) => {
                        tracing::error!(credential = %r.try_get::<String, _>("id")?, error = %e, "stored public key unreadable")
                    }
                }
            } else if entry.kind == CredentialKind::CertificateSubject {
                let subject: Option<String> = r.try_get("external_subject")?;
                if let Some(subject) = subject {
                    snap.client_subjects.entry(r.try_get("client_id")?).or_default().push((subject, entry));
                }
            } else {
                snap.credentials.insert(r.try_get("secret_hash")?, entry);
            }
        }
        for r in sqlx::query(
            "SELECT p.id, p.client_id, c.kind, p.environment, p.rate_per_minute, p.burst, p.token_ttl_seconds,
                    p.sender_constraint, p.may_act, c.suspended, u.disabled AS owner_disabled
             FROM profiles p JOIN clients c ON c.id = p.client_id JOIN users u ON u.id = c.owner_id",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let id: String = r.try_get("id")?;
            let client_id: String = r.try_get("client_id")?;
            snap.clients.insert(client_id.clone());
            snap.profiles.insert(
                id.clone(),
                ProfileEntry {
                    id,
                    client_id,
                    client_kind: enum_col(&r, "kind")?,
                    environment: enum_col(&r, "environment")?,
                    rate_per_minute: r.try_get("rate_per_minute")?,
                    burst: r.try_get("burst")?,
                    token_ttl_secs: r.try_get("token_ttl_seconds")?,
                    sender_constraint: enum_col(&r, "sender_constraint")?,
                    client_suspended: flag(&r, "suspended")?,
                    owner_disabled: flag(&r, "owner_disabled")?,
                    grants: HashMap::new(),
                    may_act: crate::clients::may_act(&r.try_get::<String, _>("may_act")?),
                },
            );
        }
        for r in sqlx::query("SELECT profile_id, product_id, scopes, expires_at FROM grants WHERE status = 'approved'")
            .fetch_all(&mut *tx)
            .await?
        {
            let profile_id: String = r.try_get("profile_id")?;
            if let Some(p) = snap.profiles.get_mut(&profile_id) {
                p.grants.insert(
                    r.try_get("product_id")?,
                    GrantEntry {
                        scopes: split_list(&r.try_get::<String, _>("scopes")?, ' '),
                        expires_at: r.try_get("expires_at")?,
                    },
                );
            }
        }
        let mut by_id: HashMap<String, ProductEntry> = HashMap::new();
        for r in sqlx::query(
            "SELECT id, slug, name, description, tags, sandbox_url, production_url, rate_per_minute, api_key_in_query,
                    upstream_tls
             FROM products",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let id: String = r.try_get("id")?;
            by_id.insert(
                id.clone(),
                ProductEntry {
                    id,
                    slug: r.try_get("slug")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    tags: split_list(&r.try_get::<String, _>("tags")?, ','),
                    sandbox_url: r.try_get("sandbox_url")?,
                    production_url: r.try_get("production_url")?,
                    rate_per_minute: r.try_get("rate_per_minute")?,
                    api_key_in_query: flag(&r, "api_key_in_query")?,
                    upstream_tls: r.try_get("upstream_tls")?,
                    endpoints: Vec::new(),
                },
            );
        }
        for r in sqlx::query(
            "SELECT id, product_id, method, path_template, scope, operation_id, summary, sensitive, parameters,
                    request_schema, response_schema
             FROM endpoints ORDER BY path_template, method",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let product_id: String = r.try_get("product_id")?;
            if let Some(p) = by_id.get_mut(&product_id) {
                let path_template: String = r.try_get("path_template")?;
                let parameters = json_col(&r, "parameters")?.and_then(|v| v.as_array().cloned()).unwrap_or_default();
                let headers = parameters
                    .iter()
                    .filter(|p| p.get("in").and_then(|v| v.as_str()) == Some("header"))
                    .filter_map(|p| p.get("name").and_then(|v| v.as_str()))
                    .map(str::to_ascii_lowercase)
                    .collect();
                p.endpoints.push(EndpointEntry {
                    id: r.try_get("id")?,
                    method: r.try_get("method")?,
                    template: Template::compile(&path_template),
                    path_template,
                    scope: r.try_get("scope")?,
                    operation_id: r.try_get("operation_id")?,
                    summary: r.try_get("summary")?,
                    sensitive: flag(&r, "sensitive")?,
                    parameters,
                    headers,
                    request_schema: json_col(&r, "request_schema")?,
                    response_schema: json_col(&r, "response_schema")?,
                });
            }
        }
        snap.products = by_id.into_values().map(|p| (p.slug.clone(), p)).collect();
        let live_after = self.now() / crate::time::SECOND - crate::enforcement::LEEWAY_SECS;
        for r in sqlx::query("SELECT jti FROM revoked_tokens WHERE expires_at > $1")
            .bind(live_after)
            .fetch_all(&mut *tx)
            .await?
        {
            snap.revoked_tokens.insert(r.try_get("jti")?);
        }
        for r in sqlx::query(
            "SELECT c.secret_hash, p.client_id FROM credentials c JOIN profiles p ON p.id = c.profile_id
             WHERE c.revoked_at IS NOT NULL AND c.revoked_at > $1",
        )
        .bind(self.now() - REVOKED_REMEMBERED_MS)
        .fetch_all(&mut *tx)
        .await?
        {
            snap.revoked_credentials.insert(r.try_get("secret_hash")?, r.try_get("client_id")?);
        }
        load_issuers(&mut tx, &mut snap, identities).await?;
        tx.commit().await?;
        Ok(snap)
    }
}

/// The trusted issuers not disabled, each with the identities linked from it.
async fn load_issuers(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    snap: &mut Snapshot,
    identities: Vec<(String, String, CredentialEntry)>,
) -> Result<()> {
    let mut by_id = HashMap::new();
    for r in sqlx::query(
        "SELECT id, issuer, jwks_uri, jwks, audiences, algorithms, subject_claim FROM trusted_issuers
         WHERE disabled_at IS NULL",
    )
    .fetch_all(&mut **tx)
    .await?
    {
        let id: String = r.try_get("id")?;
        let keys = match (r.try_get::<Option<String>, _>("jwks_uri")?, r.try_get::<Option<String>, _>("jwks")?) {
            (Some(uri), _) => IssuerKeys::Remote(uri),
            (None, Some(jwks)) => match parse_jwks(&jwks) {
                Ok(set) => IssuerKeys::Static(std::sync::Arc::new(set)),
                // Checked when registered; keys that no longer read verify nothing.
                Err(e) => {
                    tracing::error!(issuer = %id, error = %e, "stored JWKS unreadable");
                    IssuerKeys::Static(std::sync::Arc::default())
                }
            },
            (None, None) => continue,
        };
        let entry = IssuerEntry {
            id: id.clone(),
            issuer: r.try_get("issuer")?,
            audiences: split_list(&r.try_get::<String, _>("audiences")?, ' '),
            algorithms: split_list(&r.try_get::<String, _>("algorithms")?, ' ')
                .iter()
                .filter_map(|a| issuer_alg(a))
                .collect(),
            subject_claim: r.try_get("subject_claim")?,
            keys,
            identities: HashMap::new(),
        };
        by_id.insert(id, entry);
    }
    for (issuer_id, subject, credential) in identities {
        match by_id.get_mut(&issuer_id) {
            Some(issuer) => {
                issuer.identities.insert(subject, credential);
            }
            // Its issuer is disabled: the link is no live credential either, so a token
            // exchanged for one of that issuer's tokens ends with it.
            None => {
                snap.credentials_by_id.remove(&credential.id);
            }
        }
    }
    snap.issuers = by_id.into_values().map(|i| (i.issuer.clone(), i)).collect();
    Ok(())
}

/// How long a revoked credential is still recognised, to attribute attempts with it.
const REVOKED_REMEMBERED_MS: i64 = 90 * crate::time::DAY;

/// Notifications of policy changes committed anywhere (see `Store::policy_changes`).
pub struct PolicyChanges(sqlx::postgres::PgListener);

impl PolicyChanges {
    /// Waits for the next change and returns the version it committed. A lost connection
    /// is reopened here; notifications sent meanwhile are lost, which the caller's
    /// version poll makes up for.
    pub async fn next(&mut self) -> Result<i64> {
        let note = self.0.recv().await?;
        Ok(note.payload().parse().unwrap_or(i64::MAX))
    }
}

/// Moves the policy version on, inside the transaction of the change it announces.
pub(crate) async fn bump_policy_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE policy_state SET version = version + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}
