//! One-time reveals. A secret issued by a plain form post (a browser without JavaScript,
//! or one whose wasm has not arrived yet) cannot be the answer to that post: the answer
//! is a redirect to the page that shows it. So the secret waits for that page in its
//! person's session, sealed: the session store is a database table, which must never
//! hold a secret in the clear. The seal is bound to the person and to a deadline a few
//! minutes ahead, so a sealed copy lifted from the table opens for no one else, and for
//! no one at all once the deadline has passed. The portal removes it as it shows it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::clock::Clock;
use crate::error::{DomainError, Result};

/// How long a sealed secret waits for its page: the redirect is followed at once, so
/// minutes are plenty, and an abandoned one is dead soon after.
pub const REVEAL_TTL_MS: i64 = 5 * 60 * 1000;

const PURPOSE: &str = "one-time-reveal/v1";

/// The key that seals secrets waiting for their page (`Store::reveals`). Never printed.
#[derive(Clone)]
pub struct RevealKey {
    clock: Clock,
    current: [u8; 32],
    /// During a server-secret rotation, a replica still on the old secret may have
    /// sealed the secret this one is asked to show.
    previous: Option<[u8; 32]>,
}

impl RevealKey {
    pub(crate) fn new(secret: &crate::secrets::ServerSecret, clock: Clock) -> Self {
        Self { clock, current: secret.derive(PURPOSE), previous: secret.derive_previous(PURPOSE) }
    }

    /// Seals `plain` for `user_id` to open within [`REVEAL_TTL_MS`].
    pub fn seal(&self, user_id: &str, plain: &[u8]) -> Result<String> {
        self.seal_at(user_id, plain, self.clock.now())
    }

    /// Opens what [`RevealKey::seal`] sealed for `user_id`, if its deadline has not
    /// passed. Anything else (another person's, expired, tampered, malformed) is `None`.
    pub fn open(&self, user_id: &str, sealed: &str) -> Option<Vec<u8>> {
        self.open_at(user_id, sealed, self.clock.now())
    }
}

impl std::fmt::Debug for RevealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevealKey(<redacted>)")
    }
}

fn associated(user_id: &str, deadline: i64) -> String {
    format!("{PURPOSE}|{user_id}|{deadline}")
}

impl RevealKey {
    fn seal_at(&self, user_id: &str, plain: &[u8], now: i64) -> Result<String> {
        let deadline = now + REVEAL_TTL_MS;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated(user_id, deadline);
        let sealed = Aes256Gcm::new((&self.current).into())
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: aad.as_bytes() })
            .map_err(|_| DomainError::Internal("sealing a secret to reveal failed".into()))?;
        Ok(format!("{deadline}.{}", URL_SAFE_NO_PAD.encode([nonce.as_slice(), sealed.as_slice()].concat())))
    }

    fn open_at(&self, user_id: &str, sealed: &str, now: i64) -> Option<Vec<u8>> {
        let (deadline, body) = sealed.split_once('.')?;
        let deadline: i64 = deadline.parse().ok()?;
        if now >= deadline {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(12)?;
        let aad = associated(user_id, deadline);
        let open = |key: &[u8; 32]| {
            Aes256Gcm::new(key.into())
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
                .ok()
        };
        open(&self.current).or_else(|| self.previous.as_ref().and_then(open))
    }
}

#[cfg(test)]
mod tests {
    use super::{RevealKey, REVEAL_TTL_MS};
    use crate::secrets::ServerSecret;

    fn key(secret: &str) -> RevealKey {
        RevealKey::new(&ServerSecret::parse(secret).unwrap(), Default::default())
    }

    #[test]
    fn opens_for_its_person_before_its_deadline_only() {
        let now = 1_700_000_000_000;
        let a = key("a-server-secret-of-enough-length-0123456789");
        let sealed = a.seal_at("usr_1", b"pc_secret", now).unwrap();
        assert!(!sealed.contains("pc_secret"));
        assert_eq!(a.open_at("usr_1", &sealed, now).as_deref(), Some(&b"pc_secret"[..]));
        assert_eq!(a.open_at("usr_2", &sealed, now), None, "bound to its person");

        // A later deadline written in front does not extend it: the deadline is sealed too.
        let (_, body) = sealed.split_once('.').unwrap();
        assert_eq!(a.open_at("usr_1", &format!("{}.{body}", i64::MAX), now), None);
        for broken in ["", ".", "x.y", "1.", &sealed[..sealed.len() - 2]] {
            assert_eq!(a.open_at("usr_1", broken, now), None, "{broken}");
        }
        let other = key("another-server-secret-of-enough-length-987654");
        assert_eq!(other.open_at("usr_1", &sealed, now), None, "another server secret");
        assert_eq!(a.open_at("usr_1", &sealed, now + REVEAL_TTL_MS), None, "past its deadline");
    }
}
