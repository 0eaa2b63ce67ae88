//! Credentials of machines: client secrets, API keys and personal access tokens.
//!
//! Each is a fixed prefix plus 256 random bits (base64url). Only an HMAC-SHA256 of the
//! whole value, keyed with a key derived from the server secret, is stored: a stolen
//! database alone cannot be used to check guesses. Lookup is by that hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::fmt;

use crate::model::CredentialKind;

type HmacSha256 = Hmac<Sha256>;

pub const CLIENT_SECRET_PREFIX: &str = "pcs_";
pub const API_KEY_PREFIX: &str = "pck_";
pub const ACCESS_TOKEN_PREFIX: &str = "pcp_";

/// How many characters of a secret the portal shows to recognise it.
const DISPLAY_CHARS: usize = 8;

/// The server's master secret. Refused when short: a weak key makes every stored hash
/// guessable offline.
#[derive(Clone)]
pub struct ServerSecret(Vec<u8>);

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

impl ServerSecret {
    pub const MIN_LEN: usize = 32;

    pub fn parse(value: &str) -> Result<Self, crate::DomainError> {
        let value = value.trim();
        if value.len() < Self::MIN_LEN {
            return Err(crate::DomainError::Invalid(format!(
                "the server secret must be at least {} characters of random data",
                Self::MIN_LEN
            )));
        }
        let distinct = value.bytes().collect::<std::collections::HashSet<_>>().len();
        if distinct < 10 {
            return Err(crate::DomainError::Invalid("the server secret is too repetitive to be random".into()));
        }
        Ok(Self(value.as_bytes().to_vec()))
    }

    /// A fresh random secret, for demo mode and `portcullis generate-secret`.
    pub fn generate_text() -> String {
        random_token("")
    }

    /// A key for one purpose, so that no two uses share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"portcullis/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> HmacSha256 {
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

/// Hashes presented secrets for storage and lookup.
#[derive(Clone)]
pub struct SecretHasher {
    key: [u8; 32],
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher(<redacted>)")
    }
}

impl SecretHasher {
    pub fn new(secret: &ServerSecret) -> Self {
        Self { key: secret.derive("credential-hash/v1") }
    }

    pub fn hash(&self, presented: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(presented.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A newly generated secret together with what may be stored about it.
pub struct Generated {
    pub value: String,
    pub hash: String,
    pub display_prefix: String,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated").field("display_prefix", &self.display_prefix).finish()
    }
}

pub fn generate(hasher: &SecretHasher, prefix: &str) -> Generated {
    let value = random_token(prefix);
    let display_prefix = value.chars().take(prefix.len() + DISPLAY_CHARS).collect();
    Generated { hash: hasher.hash(&value), value, display_prefix }
}

pub fn prefix_for(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ClientSecret => CLIENT_SECRET_PREFIX,
        CredentialKind::ApiKey => API_KEY_PREFIX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_and_hash_with_the_server_key() {
        let a = SecretHasher::new(&ServerSecret::parse("0123456789abcdefghijklmnopqrstuvwxyz").unwrap());
        let b = SecretHasher::new(&ServerSecret::parse("zyxwvutsrqponmlkjihgfedcba9876543210").unwrap());
        let g = generate(&a, API_KEY_PREFIX);
        assert!(g.value.starts_with("pck_"));
        assert_eq!(URL_SAFE_NO_PAD.decode(&g.value[4..]).unwrap().len(), 32);
        assert_eq!(g.hash, a.hash(&g.value));
        assert_ne!(g.hash, b.hash(&g.value), "the hash must depend on the server key");
        assert!(!format!("{g:?}").contains(&g.value));
    }

    #[test]
    fn weak_server_secrets_are_refused() {
        assert!(ServerSecret::parse("short").is_err());
        assert!(ServerSecret::parse(&"a".repeat(64)).is_err());
        assert!(ServerSecret::parse(&ServerSecret::generate_text()).is_ok());
    }
}
