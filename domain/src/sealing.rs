//! Sealing signing keys at rest: their private half is stored encrypted (AES-256-GCM)
//! under a key derived from the server secret, bound to the key's `kid`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::error::Result;
use crate::DomainError;

/// The key that seals signing keys at rest. Never printed.
#[derive(Clone)]
pub(crate) struct SealingKey {
    pub(crate) current: [u8; 32],
    /// During a server-secret rotation: keys sealed before it still open.
    pub(crate) previous: Option<[u8; 32]>,
}

impl SealingKey {
    pub(crate) fn new(secret: &crate::secrets::ServerSecret) -> Self {
        const PURPOSE: &str = "signing-key-seal/v1";
        Self { current: secret.derive(PURPOSE), previous: secret.derive_previous(PURPOSE) }
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

pub(crate) fn seal(key: &SealingKey, kid: &str, plain: &[u8]) -> Result<String> {
    let cipher = Aes256Gcm::new((&key.current).into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: kid.as_bytes() })
        .map_err(|_| DomainError::Internal("sealing a signing key failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), sealed.as_slice()].concat()))
}

/// Which server secret a signing key was sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealedWith {
    Current,
    Previous,
}

pub(crate) fn unseal(key: &SealingKey, kid: &str, text: &str) -> Result<(Vec<u8>, SealedWith)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| DomainError::Internal("sealed key is not base64".into()))?;
    let (nonce, sealed) =
        bytes.split_at_checked(12).ok_or_else(|| DomainError::Internal("sealed key too short".into()))?;
    let open = |k: &[u8; 32]| {
        Aes256Gcm::new(k.into()).decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: kid.as_bytes() }).ok()
    };
    if let Some(plain) = open(&key.current) {
        return Ok((plain, SealedWith::Current));
    }
    match key.previous.as_ref().and_then(open) {
        Some(plain) => Ok((plain, SealedWith::Previous)),
        None => Err(DomainError::Internal(format!("signing key {kid} does not open with this server secret"))),
    }
}
