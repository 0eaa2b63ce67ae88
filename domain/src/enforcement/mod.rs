//! What decides a request, in memory: the policy snapshot, the signing-key ring, the
//! verified-token cache, the keyed hasher and the clock.
//!
//! No database here. The store persists and loads (`Store::reload_policy`,
//! `Store::reload_keys`) and puts what it loaded in place; this type decides. The
//! gateway, the token endpoint, introspection and both MCP surfaces ask the same
//! `Enforcement`, so there is one hasher, one clock and one rule for whether a token is
//! live ([`Snapshot::token_holder`]).

mod keys;
mod rekeys;
mod snapshot;
mod tokens;

use std::sync::Arc;

pub(crate) use keys::Signer;
pub use keys::{Jwk, KeyRing, KeyRingHandle};
pub use rekeys::RekeyQueue;
pub use snapshot::{
    CredentialEntry, EndpointEntry, GrantEntry, Inactive, PolicyHandle, ProductEntry, ProfileEntry, Snapshot, Stopped,
};
pub use tokens::{
    AccessClaims, ActorClaim, IssuedAccessToken, TokenError, TokenRequestError, TokenSettings, LEEWAY_SECS,
    MAX_TOKEN_TTL_SECS, MIN_TOKEN_TTL_SECS,
};

use crate::clock::Clock;
use crate::secrets::{Rekey, SecretHasher, ServerSecret};

/// Cheap to clone: every part is shared, so a clone sees every change the store makes.
#[derive(Clone, Debug)]
pub struct Enforcement {
    clock: Clock,
    hasher: SecretHasher,
    snapshot: PolicyHandle,
    keys: KeyRingHandle,
    verified: tokens::VerifiedTokens,
    rekeys: Arc<RekeyQueue>,
}

impl Enforcement {
    /// Empty until the store loads a snapshot and a key ring into it.
    pub fn new(secret: &ServerSecret, clock: Clock) -> Self {
        Self {
            clock,
            hasher: SecretHasher::new(secret),
            snapshot: PolicyHandle::default(),
            keys: KeyRingHandle::default(),
            verified: tokens::VerifiedTokens::default(),
            rekeys: Arc::default(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, in Unix milliseconds, by this server's clock (which tests control).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Hashes presented secrets for lookup, under the current (and, during a rotation,
    /// the previous) server secret.
    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// The gateway's view of clients, credentials, grants and products.
    pub fn snapshot(&self) -> &PolicyHandle {
        &self.snapshot
    }

    pub fn keys(&self) -> &KeyRingHandle {
        &self.keys
    }

    /// Asks for a credential found under the previous secret to be re-keyed; cheap and
    /// non-blocking, for the request path. `Store::run_rekeys` does the writing.
    pub fn request_rekey(&self, credential_id: &str, rekey: Rekey) {
        self.rekeys.request(credential_id, rekey);
    }

    pub(crate) fn rekeys(&self) -> &RekeyQueue {
        &self.rekeys
    }
}
