//! Passwords of people: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
//! Hashing costs tens of milliseconds of CPU, so it runs on the blocking pool, never
//! on the async runtime's workers.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

use crate::DomainError;

pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 256;

fn argon2() -> Argon2<'static> {
    #[allow(clippy::expect_used)]
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Refuses passwords too short or too long, and those an attacker tries first: words from
/// breach lists (zxcvbn ranks the 30,000 most common), their leetspeak, keyboard walks,
/// repeats, dates and sequences, and the account's own email. zxcvbn's score 3 means
/// at least 10^8 guesses, beyond reach of a slow hash such as ours.
pub fn check_strength(password: &str, email: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!("Use a password of at least {MIN_PASSWORD_LEN} characters.")));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(DomainError::Invalid(format!("Use a password of at most {MAX_PASSWORD_LEN} characters.")));
    }
    let local = email.split('@').next().unwrap_or_default();
    if zxcvbn::zxcvbn(password, &[email, local]).score() < zxcvbn::Score::Three {
        return Err(DomainError::Invalid(
            "That password is among those attackers try first (common or leaked passwords, keyboard patterns, repeats, your email). Choose another: a few unrelated words work well.".into(),
        ));
    }
    Ok(())
}

pub async fn hash(password: String) -> Result<String, DomainError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| DomainError::Internal(format!("argon2: {e}")))
    })
    .await
    .map_err(|e| DomainError::Internal(format!("hashing task: {e}")))?
}

/// Verifies against `stored`, or against a fixed dummy hash when there is no account, so
/// that an unknown email costs the same time as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, DomainError> {
    let dummy = dummy_hash().to_owned();
    tokio::task::spawn_blocking(move || {
        let (phc, real) = match stored {
            Some(s) => (s, true),
            None => (dummy, false),
        };
        let parsed = PasswordHash::new(&phc).map_err(|e| DomainError::Internal(format!("stored hash: {e}")))?;
        let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(ok && real)
    })
    .await
    .map_err(|e| DomainError::Internal(format!("verify task: {e}")))?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2().hash_password(b"portcullis-no-such-account", &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::check_strength;

    #[test]
    fn refuses_breached_and_patterned_passwords_and_accepts_passphrases() {
        for weak in [
            "password1234",
            "Password1234!",
            "qwertyuiopasdf",
            "123456789012",
            "aaaaaaaaaaaaaa",
            "iloveyou2024!",
            "P@ssw0rd12345",
            "ada.lovelace@example.com",
            "ada.lovelace1",
        ] {
            assert!(check_strength(weak, "ada.lovelace@example.com").is_err(), "{weak} was accepted");
        }
        for fine in
            ["correct horse battery staple", "a long passphrase here", "tangerine-orbit-velvet-42", "9fQ#vL2!xR7mKp"]
        {
            assert_eq!(check_strength(fine, "ada@example.com").map_err(|e| e.to_string()), Ok(()), "{fine}");
        }
        assert!(check_strength("short", "a@example.com").is_err());
    }
}
