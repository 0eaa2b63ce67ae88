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

/// The server's master secret, and during a rotation the one it replaces. Refused when
/// short: a weak key makes every stored hash guessable offline.
///
/// The previous secret is only ever *accepted*: hashes and seals made with it still
/// verify (and are re-made with the current one when they can be), nothing new is made
/// with it.
#[derive(Clone)]
pub struct ServerSecret {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

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
        Ok(Self { current: value.as_bytes().to_vec(), previous: None })
    }

    /// This secret, still accepting what `previous` keyed until it is re-keyed.
    pub fn with_previous(self, previous: ServerSecret) -> Result<Self, crate::DomainError> {
        if previous.current == self.current {
            return Err(crate::DomainError::Invalid(
                "the previous server secret is the current one; give the secret being replaced".into(),
            ));
        }
        Ok(Self { previous: Some(previous.current), ..self })
    }

    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// A fresh random secret, for demo mode and `portcullis generate-secret`.
    pub fn generate_text() -> String {
        random_token("")
    }

    /// A key for one purpose, so that no two uses share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        derive(&self.current, purpose)
    }

    /// The previous secret's key for `purpose`, during a rotation.
    pub fn derive_previous(&self, purpose: &str) -> Option<[u8; 32]> {
        self.previous.as_deref().map(|previous| derive(previous, purpose))
    }
}

fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"portcullis/");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// What the store records of the key a hash was made with: one-way, so it names the
/// key without helping anyone guess it.
fn fingerprint(key: &[u8; 32]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"fingerprint");
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// An HMAC-SHA256 keyed with `key` (HMAC takes keys of any length, so this cannot fail).
pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac())
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
    previous: Option<[u8; 32]>,
}

/// A presented secret found under the previous server secret: its stored hash and the
/// hash the current secret gives it, to re-key the row with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekey {
    pub old_hash: String,
    pub new_hash: String,
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher(<redacted>)")
    }
}

impl SecretHasher {
    pub fn new(secret: &ServerSecret) -> Self {
        const PURPOSE: &str = "credential-hash/v1";
        Self { key: secret.derive(PURPOSE), previous: secret.derive_previous(PURPOSE) }
    }

    /// The hash new secrets are stored under.
    pub fn hash(&self, presented: &str) -> String {
        hash_with(&self.key, presented)
    }

    /// Looks a presented secret up by its hash under the current server secret, then,
    /// during a rotation, under the previous one; a find under the previous one says
    /// how to re-key it. Without a previous secret this is one hash and one lookup.
    pub fn find<T>(&self, presented: &str, get: impl Fn(&str) -> Option<T>) -> Option<(T, Option<Rekey>)> {
        let new_hash = self.hash(presented);
        if let Some(found) = get(&new_hash) {
            return Some((found, None));
        }
        let old_hash = hash_with(self.previous.as_ref()?, presented);
        get(&old_hash).map(|found| (found, Some(Rekey { old_hash, new_hash })))
    }

    /// The hashes of `presented` under the previous and the current secret, during a
    /// rotation: for lookups that cannot use `find` (a database query).
    pub fn rekey_for(&self, presented: &str) -> Option<Rekey> {
        let old_hash = hash_with(self.previous.as_ref()?, presented);
        Some(Rekey { old_hash, new_hash: self.hash(presented) })
    }

    /// The name the store keeps of the current hashing key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }

    /// The name of the previous hashing key, during a rotation.
    pub fn previous_fingerprint(&self) -> Option<String> {
        self.previous.as_ref().map(fingerprint)
    }
}

fn hash_with(key: &[u8; 32], presented: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    mac.update(presented.as_bytes());
    hex::encode(mac.finalize().into_bytes())
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

/// The prefix of a secret the server generates; a public key is brought by the
/// developer, a federated identity is the issuer's and a certificate subject the
/// certificate authority's: none is generated.
pub fn prefix_for(kind: CredentialKind) -> Option<&'static str> {
    match kind {
        CredentialKind::ClientSecret => Some(CLIENT_SECRET_PREFIX),
        CredentialKind::ApiKey => Some(API_KEY_PREFIX),
        CredentialKind::PublicKey | CredentialKind::Federated | CredentialKind::CertificateSubject => None,
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
    fn a_rotation_finds_old_hashes_and_says_how_to_rekey_them() {
        let old = ServerSecret::parse("0123456789abcdefghijklmnopqrstuvwxyz").unwrap();
        let new = ServerSecret::parse("zyxwvutsrqponmlkjihgfedcba9876543210").unwrap();
        let stored = generate(&SecretHasher::new(&old), API_KEY_PREFIX);
        let table = std::collections::HashMap::from([(stored.hash.clone(), "cred")]);
        let get = |h: &str| table.get(h).copied();

        assert_eq!(SecretHasher::new(&new).find(&stored.value, get), None, "without the old secret: unknown");
        let rotating = SecretHasher::new(&new.clone().with_previous(old.clone()).unwrap());
        let (found, rekey) = rotating.find(&stored.value, get).unwrap();
        assert_eq!(found, "cred");
        let rekey = rekey.unwrap();
        assert_eq!(rekey.old_hash, stored.hash);
        assert_eq!(rekey.new_hash, SecretHasher::new(&new).hash(&stored.value));
        assert_eq!(rotating.hash(&stored.value), rekey.new_hash, "new hashes use the current secret");
        assert_eq!(rotating.find("pck_other", get), None);

        let rekeyed = std::collections::HashMap::from([(rekey.new_hash.clone(), "cred")]);
        assert_eq!(rotating.find(&stored.value, |h| rekeyed.get(h).copied()), Some(("cred", None)));

        assert_ne!(rotating.fingerprint(), SecretHasher::new(&old).fingerprint());
        assert_eq!(rotating.previous_fingerprint(), Some(SecretHasher::new(&old).fingerprint()));
        assert!(new.clone().with_previous(new).is_err(), "a secret cannot replace itself");
    }

    #[test]
    fn weak_server_secrets_are_refused() {
        assert!(ServerSecret::parse("short").is_err());
        assert!(ServerSecret::parse(&"a".repeat(64)).is_err());
        assert!(ServerSecret::parse(&ServerSecret::generate_text()).is_ok());
    }
}
