//! The policy snapshot: everything the gateway needs to decide a request, in memory.
//!
//! The hot path never queries the database. It loads the current `Snapshot` (an
//! `ArcSwap` load: no lock, no allocation) and looks up credentials by hash, profiles
//! by id and products by slug. Every change made through the portal or the API
//! rebuilds the snapshot before it answers, so a revocation takes effect on the very
//! next request; a periodic reload is the backstop for changes made by another replica.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

use super::{AccessClaims, ClientKey, IssuerEntry};
use crate::model::{ClientKind, CredentialKind, Environment, SenderConstraint};
use crate::routing::{CanonicalPath, Template};

#[derive(Debug, Default)]
pub struct Snapshot {
    /// The policy version this snapshot was read at (`policy_state`).
    pub version: i64,
    /// Usable credentials (not revoked) by the keyed hash of their secret. Expiry is
    /// checked per request against the clock, so an expiry needs no reload.
    pub credentials: HashMap<String, CredentialEntry>,
    /// The same credentials by id, to check that a token's credential is still live
    /// (public keys too).
    pub credentials_by_id: HashMap<String, CredentialEntry>,
    /// Public keys not revoked, by the client id they authenticate (private_key_jwt).
    pub client_keys: HashMap<String, Vec<ClientKey>>,
    /// Certificate subjects not revoked, by the client id they authenticate
    /// (`tls_client_auth`): each subject's compared form ([`super::SubjectName::key`])
    /// and its credential.
    pub client_subjects: HashMap<String, Vec<(String, CredentialEntry)>>,
    pub profiles: HashMap<String, ProfileEntry>,
    /// Every client id that has a profile: a token request naming another gets no rate
    /// limit bucket of its own (it shares its address's).
    pub clients: std::collections::HashSet<String>,
    pub products: HashMap<String, ProductEntry>,
    /// Trusted issuers not disabled, by their `iss`, each with the identities linked to
    /// profiles (federation).
    pub issuers: HashMap<String, IssuerEntry>,
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
    /// Whether only sender-constrained (DPoP-bound) tokens are accepted.
    pub sender_constraint: SenderConstraint,
    pub client_suspended: bool,
    /// The client's owner is disabled: the client is stopped as if suspended.
    pub owner_disabled: bool,
    /// Approved grants by product id.
    pub grants: HashMap<String, GrantEntry>,
    /// The clients that may act on its behalf (token exchange); `None`: any.
    pub may_act: Option<Vec<String>>,
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
    /// Whether `client_id` may act on this profile's behalf (RFC 8693 `may_act`).
    pub fn allows_actor(&self, client_id: &str) -> bool {
        self.may_act.as_ref().is_none_or(|allowed| allowed.iter().any(|c| c == client_id))
    }

    /// The scopes of its grants not expired at `now`, sorted, each once: the most a
    /// token of this profile may carry.
    pub fn live_scopes(&self, now: i64) -> Vec<&str> {
        let mut scopes: Vec<&str> = self
            .grants
            .values()
            .filter(|g| g.expires_at.is_none_or(|t| now < t))
            .flat_map(|g| g.scopes.iter().map(String::as_str))
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        scopes
    }

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
    /// the profile the client's; the client neither suspended nor its owner disabled;
    /// for a delegated token, the same of its subject and every earlier actor.
    pub fn token_holder(
        &self,
        claims: &AccessClaims,
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
        if let Some(stopped) = profile.stopped() {
            return Err(Inactive::Stopped(stopped));
        }
        // A delegated token lives only while everyone it acts for, or through, does.
        self.parties(claims, now)?;
        Ok((credential, profile))
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

/// The shared, atomically swapped snapshot, and when it was last known to be the
/// store's newest.
#[derive(Debug, Clone, Default)]
pub struct PolicyHandle(Arc<ArcSwap<Snapshot>>, Arc<std::sync::atomic::AtomicI64>);

impl PolicyHandle {
    pub fn current(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Publishes `snap` unless the current snapshot was read at a later version: a reload
    /// that started before a change (a revocation, say) and finished after the change
    /// was published must not bring the revoked credential back. Returns whether it did.
    pub fn publish(&self, snap: Snapshot) -> bool {
        let new = Arc::new(snap);
        loop {
            let current = self.0.load_full();
            if current.version > new.version {
                return false;
            }
            let previous = self.0.compare_and_swap(&current, new.clone());
            if Arc::ptr_eq(&previous, &current) {
                return true;
            }
        }
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
