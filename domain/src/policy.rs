//! The policy snapshot: everything the gateway needs to decide a request, in memory.
//!
//! The hot path never queries the database. It loads the current `Snapshot` (an
//! `ArcSwap` load: no lock, no allocation) and looks up credentials by hash, profiles
//! by id and products by slug. Every change made through the portal or the API
//! rebuilds the snapshot before it answers, so a revocation takes effect on the very
//! next request; a periodic reload is the backstop for changes made by another replica.

use arc_swap::ArcSwap;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::model::{ClientKind, CredentialKind, Environment};
use crate::routing::{CanonicalPath, Template};
use crate::store::{enum_col, flag, split_list, Store};

#[derive(Debug, Default)]
pub struct Snapshot {
    /// The policy version this snapshot was read at (`policy_state`).
    pub version: i64,
    /// Usable credentials (not revoked) by the keyed hash of their secret. Expiry is
    /// checked per request against the clock, so an expiry needs no reload.
    pub credentials: HashMap<String, CredentialEntry>,
    /// The same credentials by id, to check that a token's credential is still live.
    pub credentials_by_id: HashMap<String, CredentialEntry>,
    pub profiles: HashMap<String, ProfileEntry>,
    /// Every client id that has a profile: a token request naming another gets no rate
    /// limit bucket of its own (it shares its address's).
    pub clients: std::collections::HashSet<String>,
    pub products: HashMap<String, ProductEntry>,
    /// `jti`s of access tokens revoked before they expired.
    pub revoked_tokens: std::collections::HashSet<String>,
    /// The client each recently revoked credential belonged to, by the keyed hash of its
    /// secret: a refused call with one is an attempt *naming* that client, kept apart
    /// from the client's own traffic (only someone who held the secret can make one).
    pub revoked_credentials: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct CredentialEntry {
    pub id: String,
    pub kind: CredentialKind,
    pub profile_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct ProfileEntry {
    pub id: String,
    pub client_id: String,
    pub client_kind: ClientKind,
    pub environment: Environment,
    pub rate_per_minute: i64,
    pub burst: i64,
    pub token_ttl_secs: i64,
    pub client_suspended: bool,
    /// The client's owner is disabled: the client is stopped as if suspended.
    pub owner_disabled: bool,
    /// Approved grants by product id.
    pub grants: HashMap<String, GrantEntry>,
}

#[derive(Debug, Clone)]
pub struct GrantEntry {
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
}

/// A product as the gateway routes it and as MCP clients discover it ("collection").
#[derive(Debug)]
pub struct ProductEntry {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub sandbox_url: String,
    pub production_url: String,
    /// Requests per minute across every caller, when the product has such a limit.
    pub rate_per_minute: Option<i64>,
    /// Whether an API key may come as `?api_key=` for this product.
    pub api_key_in_query: bool,
    /// The upstream TLS profile its upstream is called with; `None`: the default one.
    pub upstream_tls: Option<String>,
    pub endpoints: Vec<EndpointEntry>,
}

#[derive(Debug)]
pub struct EndpointEntry {
    pub id: String,
    pub method: String,
    pub path_template: String,
    pub template: Template,
    pub scope: String,
    pub operation_id: String,
    pub summary: String,
    pub sensitive: bool,
    /// OpenAPI parameter objects (`name`, `in`, `required`, `schema`, …).
    pub parameters: Vec<serde_json::Value>,
    /// The header parameters it declares, lowercased: the gateway forwards these besides
    /// its own short list of caller headers.
    pub headers: Vec<String>,
    pub request_schema: Option<serde_json::Value>,
    pub response_schema: Option<serde_json::Value>,
}

/// Why a client may not act now, though its credential is fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Suspended,
    OwnerDisabled,
}

impl ProfileEntry {
    pub fn stopped(&self) -> Option<Stopped> {
        if self.client_suspended {
            Some(Stopped::Suspended)
        } else if self.owner_disabled {
            Some(Stopped::OwnerDisabled)
        } else {
            None
        }
    }
}

/// Why an access token that verifies is not live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inactive {
    /// Revoked itself, or the credential it was obtained with is revoked or expired, or
    /// its profile is gone or not the client's.
    Revoked,
    Stopped(Stopped),
}

impl Snapshot {
    /// The one liveness rule for an access token, for the gateway, MCP and introspection
    /// alike: not revoked; the credential it was obtained with live and of its profile;
    /// the profile the client's; the client neither suspended nor its owner disabled.
    pub fn token_holder(
        &self,
        claims: &crate::oauth::AccessClaims,
        now: i64,
    ) -> std::result::Result<(&CredentialEntry, &ProfileEntry), Inactive> {
        if self.revoked_tokens.contains(&claims.jti) {
            return Err(Inactive::Revoked);
        }
        let credential = self
            .credentials_by_id
            .get(&claims.cid)
            .filter(|c| now < c.expires_at && c.profile_id == claims.profile)
            .ok_or(Inactive::Revoked)?;
        let profile =
            self.profiles.get(&claims.profile).filter(|p| p.client_id == claims.client_id).ok_or(Inactive::Revoked)?;
        match profile.stopped() {
            Some(stopped) => Err(Inactive::Stopped(stopped)),
            None => Ok((credential, profile)),
        }
    }
}

impl ProductEntry {
    /// The endpoint for a method and path: the matching template with the most literal
    /// segments.
    pub fn match_endpoint(&self, method: &str, path: &CanonicalPath) -> Option<&EndpointEntry> {
        self.endpoints
            .iter()
            .filter(|e| e.method == method)
            .filter_map(|e| e.template.score(path).map(|s| (s, e)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, e)| e)
    }

    pub fn upstream(&self, env: Environment) -> &str {
        match env {
            Environment::Sandbox => &self.sandbox_url,
            Environment::Production => &self.production_url,
        }
    }
}

/// A JSON column; text we wrote ourselves, so unreadable JSON is treated as absent.
fn json_col(r: &sqlx::any::AnyRow, name: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = r.try_get(name)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// The shared, atomically swapped snapshot, and when it was last known to be the
/// store's newest.
#[derive(Debug, Clone, Default)]
pub struct PolicyHandle(Arc<ArcSwap<Snapshot>>, Arc<std::sync::atomic::AtomicI64>);

impl PolicyHandle {
    pub fn current(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Records that at `at` (ms) the store held no newer policy than the current snapshot.
    pub fn confirm(&self, at: i64) {
        self.1.fetch_max(at, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the snapshot was last confirmed current (ms); 0 if never. A server that
    /// cannot reach its store sees this fall behind: its snapshot may be stale.
    pub fn confirmed_at(&self) -> i64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Store {
    /// The gateway's view of clients, credentials, grants and products.
    pub fn snapshot(&self) -> &PolicyHandle {
        &self.snapshot
    }

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
        self.publish_snapshot(snap);
        self.snapshot.confirm(read_at);
        Ok(())
    }

    /// Publishes `snap` unless the current snapshot was read at a later version: a reload
    /// that started before a change (a revocation, say) and finished after the change
    /// was published must not bring the revoked credential back. Returns whether it did.
    pub fn publish_snapshot(&self, snap: Snapshot) -> bool {
        let new = Arc::new(snap);
        loop {
            let current = self.snapshot.0.load_full();
            if current.version > new.version {
                return false;
            }
            let previous = self.snapshot.0.compare_and_swap(&current, new.clone());
            if Arc::ptr_eq(&previous, &current) {
                return true;
            }
        }
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
        for r in sqlx::query(
            "SELECT id, kind, profile_id, secret_hash, expires_at FROM credentials WHERE revoked_at IS NULL",
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
            snap.credentials.insert(r.try_get("secret_hash")?, entry);
        }
        for r in sqlx::query(
            "SELECT p.id, p.client_id, c.kind, p.environment, p.rate_per_minute, p.burst, p.token_ttl_seconds, c.suspended,
                    u.disabled AS owner_disabled
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
                    client_suspended: flag(&r, "suspended")?,
                    owner_disabled: flag(&r, "owner_disabled")?,
                    grants: HashMap::new(),
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
        let live_after = self.now() / crate::time::SECOND - crate::oauth::LEEWAY_SECS;
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
        tx.commit().await?;
        Ok(snap)
    }
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
