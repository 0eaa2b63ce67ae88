//! The signing-key ring: the keys that sign access tokens now and those that still verify.

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The algorithms access tokens can be signed with: Ed25519 by default, ECDSA P-256 for
/// resource servers whose libraries lack EdDSA. Each key has one, fixed when it is made;
/// a token is verified only with its key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    EdDSA,
    ES256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "EdDSA" => Some(SigningAlg::EdDSA),
            "ES256" => Some(SigningAlg::ES256),
            _ => None,
        }
    }

    pub(crate) fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::ES256 => Algorithm::ES256,
        }
    }
}

/// A published verification key (RFC 7517): OKP Ed25519 or EC P-256.
#[derive(Debug, Clone, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
    pub x: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A key that signs from `activates_at` until `retires_at`.
pub(crate) struct Signer {
    pub(crate) kid: String,
    pub(crate) activates_at: i64,
    pub(crate) retires_at: Option<i64>,
    pub(crate) alg: SigningAlg,
    pub(crate) key: EncodingKey,
}

#[derive(Default)]
pub struct KeyRing {
    /// Newest first: the current key, and a successor published ahead of its time.
    pub(crate) signers: Vec<Signer>,
    /// By kid: the key's one algorithm and its public key.
    pub(crate) verifiers: HashMap<String, (SigningAlg, DecodingKey)>,
    pub jwks: Vec<Jwk>,
}

impl KeyRing {
    /// The key that signs at `now`. Chosen at each signing, not at each load, so that a
    /// successor takes over at its time on every replica without anyone reloading.
    pub(crate) fn signer(&self, now: i64) -> Option<&Signer> {
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

    /// Puts a freshly loaded ring in place.
    pub(crate) fn replace(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }
}
