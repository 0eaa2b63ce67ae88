//! What decides a request, in memory: the policy snapshot, the signing-key ring, the
//! verified-token cache, the keyed hasher and the clock.
//!
//! No database here. The store persists and loads (`Store::reload_policy`,
//! `Store::reload_keys`) and puts what it loaded in place; this type decides. The
//! gateway, the token endpoint, introspection and both MCP surfaces ask the same
//! `Enforcement`, so there is one hasher, one clock and one rule for whether a token is
//! live ([`Snapshot::token_holder`]).

mod certificates;
mod client_keys;
mod dpop;
mod exchange;
mod federation;
mod jws;
mod keys;
mod rekeys;
mod snapshot;
mod tasks;
#[cfg(test)]
mod test_keys;
mod tokens;

use std::sync::Arc;

pub use certificates::{
    certificate_key, certificate_subject, certificate_thumbprint, parse_subject, SubjectName, MAX_SUBJECT_DN,
};
pub use client_keys::{
    check_assertion, claimed_client, parse_public_key, Assertion, AssertionCheck, AssertionError, ClientKey, KeyError,
    PublicKey, ASSERTION_ALGS, ASSERTION_LEEWAY_SECS, ASSERTION_TYPE, MAX_ASSERTION_LIFETIME_SECS,
    MAX_KEYS_PER_PROFILE,
};
pub use dpop::{
    check_proof, token_hash, Nonces, Proof, ProofCheck, ProofError, ProofKey, DPOP_ALGS, MAX_PROOF_BYTES,
    PROOF_LEEWAY_SECS, PROOF_MAX_AGE_SECS,
};
pub use exchange::{
    delegate, Delegation, ExchangeRefusal, SubjectClaim, ACCESS_TOKEN_TYPE, MAX_ACTORS, TOKEN_EXCHANGE,
};
pub use federation::{
    claimed_issuer, discovery_url, issuer_alg, jwks_uri_from_discovery, parse_jwks, valid_subject_claim,
    verify_external, ExternalError, ExternalToken, IssuerEntry, IssuerKey, IssuerKeySet, IssuerKeys,
    EXTERNAL_LEEWAY_SECS, ISSUER_ALGS, MAX_DISCOVERY_BYTES, MAX_JWKS_BYTES, MAX_JWKS_KEYS, MAX_SUBJECT,
};
pub(crate) use keys::Signer;
pub use keys::{Jwk, KeyRing, KeyRingHandle, SigningAlg};
pub use rekeys::RekeyQueue;
pub use snapshot::{
    CredentialEntry, EndpointEntry, GrantEntry, Inactive, PolicyHandle, ProductEntry, ProfileEntry, Snapshot, Stopped,
};
pub use tasks::{parse_task, TaskDetail, MAX_TASK_ENDPOINTS, MAX_TASK_ID, MAX_TASK_USES, TASK_DETAIL_TYPE};
pub use tokens::{
    AccessClaims, ActorClaim, Confirmation, IssuedAccessToken, TokenAsk, TokenError, TokenRequestError, TokenSettings,
    LEEWAY_SECS, MAX_TOKEN_TTL_SECS, MIN_TOKEN_TTL_SECS,
};

use crate::clock::Clock;
use crate::secrets::{Rekey, SecretHasher, ServerSecret};

/// DPoP proofs remembered for the one-use check: at 60 s each, enough for 30,000
/// authenticated requests a second on one replica.
const PROOFS_REMEMBERED: u64 = 2_000_000;

/// Client assertions remembered for the one-use check: one per token request of a
/// client that proved its key, for at most five and a half minutes.
const ASSERTIONS_REMEMBERED: u64 = 1_000_000;

/// Cheap to clone: every part is shared, so a clone sees every change the store makes.
#[derive(Clone, Debug)]
pub struct Enforcement {
    clock: Clock,
    hasher: SecretHasher,
    snapshot: PolicyHandle,
    keys: KeyRingHandle,
    verified: tokens::VerifiedTokens,
    rekeys: Arc<RekeyQueue>,
    /// DPoP server nonces, the same on every replica holding the secret.
    nonces: Nonces,
    /// DPoP proofs used here lately, for the one-use check (see `first_use_local`).
    proofs_seen: moka::sync::Cache<[u8; 32], ()>,
    /// Client assertions used here lately, likewise (`first_assertion_use_local`).
    assertions_seen: moka::sync::Cache<[u8; 32], ()>,
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
            nonces: Nonces::new(secret),
            proofs_seen: moka::sync::Cache::builder()
                .max_capacity(PROOFS_REMEMBERED)
                .time_to_live(std::time::Duration::from_secs(
                    (PROOF_MAX_AGE_SECS + PROOF_LEEWAY_SECS + 5).unsigned_abs(),
                ))
                .build(),
            assertions_seen: moka::sync::Cache::builder()
                .max_capacity(ASSERTIONS_REMEMBERED)
                .time_to_live(std::time::Duration::from_secs(
                    (MAX_ASSERTION_LIFETIME_SECS + 2 * ASSERTION_LEEWAY_SECS).unsigned_abs(),
                ))
                .build(),
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

    /// DPoP server nonces.
    pub fn nonces(&self) -> &Nonces {
        &self.nonces
    }

    /// Checks a DPoP proof against the request it came with, by this server's clock. The
    /// one-use check is apart: `first_use_local` here, and across replicas the caller's.
    pub fn check_proof(&self, proof: &str, check: &ProofCheck<'_>) -> Result<Proof, ProofError> {
        check_proof(proof, check, &self.nonces, self.now())
    }

    /// Whether this process sees `proof` for the first time (and remembers it until it is
    /// too old to be accepted anyway). Only proofs of callers that authenticated are
    /// remembered, and at most `PROOFS_REMEMBERED` of them.
    pub fn first_use_local(&self, proof: &Proof) -> bool {
        self.proofs_seen.entry(proof.replay_key).or_insert(()).is_fresh()
    }

    /// Whether this process sees the client assertion for the first time (remembered
    /// until it expires). Only assertions that verified with a client's key get here.
    pub fn first_assertion_use_local(&self, assertion: &Assertion) -> bool {
        self.assertions_seen.entry(assertion.replay_key).or_insert(()).is_fresh()
    }

    /// How many DPoP proofs this process remembers now (for tests and metrics).
    pub fn proofs_remembered(&self) -> u64 {
        self.proofs_seen.run_pending_tasks();
        self.proofs_seen.entry_count()
    }

    /// How many client assertions this process remembers now (for tests and metrics).
    pub fn assertions_remembered(&self) -> u64 {
        self.assertions_seen.run_pending_tasks();
        self.assertions_seen.entry_count()
    }

    pub(crate) fn rekeys(&self) -> &RekeyQueue {
        &self.rekeys
    }
}
