//! Passwords of people: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
//! Hashing costs tens of milliseconds of CPU, so it runs on the blocking pool, never
//! on the async runtime's workers.
//!
//! Each hash needs 19 MiB of working memory. Allocated per hash, a burst of sign-ins
//! (an attacker's, from many addresses) would take 19 MiB per concurrent attempt, and
//! the allocator may keep what it freed on each blocking thread. So hashes run at most
//! one per core, each on one of as many buffers, allocated once and lent in turn: the
//! memory passwords take is fixed whatever arrives, and a caller that hangs up
//! mid-hash gives its buffer back when the hash ends.

use argon2::password_hash::{
    self, rand_core::OsRng, Decimal, Ident, Output, ParamsString, PasswordHash, PasswordHasher, PasswordVerifier, Salt,
    SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;
use std::sync::{Mutex, OnceLock};
use tokio::sync::Semaphore;

use crate::DomainError;

pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 256;

fn params() -> Params {
    #[allow(clippy::expect_used)]
    Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2id parameters are valid")
}

/// The working memory of the hashes that may run at once, lent one buffer per hash.
struct Memory {
    turns: Semaphore,
    free: Mutex<Vec<Vec<Block>>>,
    allocated: std::sync::atomic::AtomicUsize,
}

fn memory() -> &'static Memory {
    static MEMORY: OnceLock<Memory> = OnceLock::new();
    MEMORY.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Memory { turns: Semaphore::new(cores), free: Mutex::new(Vec::new()), allocated: Default::default() }
    })
}

/// Runs `work` on the blocking pool with a buffer of the pool's, once a turn is free.
/// The turn and the buffer travel with the work, so they come back when it ends even
/// if the caller stopped waiting.
async fn with_memory<T: Send + 'static>(
    work: impl FnOnce(&Argon2Lent<'_>) -> T + Send + 'static,
) -> Result<T, DomainError> {
    let memory = memory();
    let turn = memory.turns.acquire().await.map_err(|e| DomainError::Internal(format!("hashing turns: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let taken = memory.free.lock().ok().and_then(|mut free| free.pop());
        let mut blocks = taken.unwrap_or_else(|| {
            memory.allocated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            vec![Block::default(); params().block_count()]
        });
        let out = work(&Argon2Lent { blocks: RefCell::new(&mut blocks) });
        if let Ok(mut free) = memory.free.lock() {
            free.push(blocks);
        }
        drop(turn);
        out
    })
    .await
    .map_err(|e| DomainError::Internal(format!("hashing task: {e}")))
}

/// Argon2 computed in lent memory. Verification goes through the `password-hash`
/// traits, which read the stored hash's own parameters and compare in constant time.
struct Argon2Lent<'m> {
    blocks: RefCell<&'m mut Vec<Block>>,
}

impl PasswordHasher for Argon2Lent<'_> {
    type Params = Params;

    fn hash_password<'a>(&self, password: &[u8], salt: impl Into<Salt<'a>>) -> password_hash::Result<PasswordHash<'a>> {
        self.hash_password_customized(password, None, None, params(), salt)
    }

    fn hash_password_customized<'a>(
        &self,
        password: &[u8],
        algorithm: Option<Ident<'a>>,
        version: Option<Decimal>,
        params: Params,
        salt: impl Into<Salt<'a>>,
    ) -> password_hash::Result<PasswordHash<'a>> {
        let algorithm = algorithm.map(Algorithm::try_from).transpose()?.unwrap_or(Algorithm::Argon2id);
        let version = version.map(Version::try_from).transpose()?.unwrap_or(Version::V0x13);
        let salt = salt.into();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut blocks = self.blocks.borrow_mut();
        // A stored hash made with more memory than ours (older, stronger parameters)
        // still verifies; the buffer grows to it once.
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), Block::default());
        }
        let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let hash = Output::init_with(len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, &mut blocks[..params.block_count()])?)
        })?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(hash),
        })
    }
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
    with_memory(move |argon2| {
        let salt = SaltString::generate(&mut OsRng);
        argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| DomainError::Internal(format!("argon2: {e}")))
    })
    .await?
}

/// Verifies against `stored`, or against a fixed dummy hash when there is no account, so
/// that an unknown email costs the same time as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, DomainError> {
    let dummy = dummy_hash().await?;
    with_memory(move |argon2| {
        let (phc, real) = match stored {
            Some(s) => (s, true),
            None => (dummy, false),
        };
        let parsed = PasswordHash::new(&phc).map_err(|e| DomainError::Internal(format!("stored hash: {e}")))?;
        let ok = argon2.verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(ok && real)
    })
    .await?
}

async fn dummy_hash() -> Result<String, DomainError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY.get_or_try_init(|| hash("portcullis-no-such-account".into())).await.cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_here_and_with_the_stock_library_both_ways() {
        let ours = hash("tangerine-orbit-velvet-42".into()).await.unwrap();
        assert!(verify("tangerine-orbit-velvet-42".into(), Some(ours.clone())).await.unwrap());
        assert!(!verify("tangerine-orbit-velvet-43".into(), Some(ours.clone())).await.unwrap());
        assert!(!verify("portcullis-no-such-account".into(), None).await.unwrap(), "the dummy never signs anyone in");
        // Hashes stored before the memory was pooled, and by any other Argon2 library.
        let stock = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        assert!(stock.verify_password(b"tangerine-orbit-velvet-42", &PasswordHash::new(&ours).unwrap()).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = stock.hash_password(b"correct horse battery", &salt).unwrap().to_string();
        assert!(verify("correct horse battery".into(), Some(theirs.clone())).await.unwrap());
        assert!(!verify("correct horse batter".into(), Some(theirs)).await.unwrap());
        // Stronger parameters than ours still verify.
        let stronger = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32 * 1024, 3, 1, None).unwrap());
        let phc = stronger.hash_password(b"correct horse battery", &salt).unwrap().to_string();
        assert!(verify("correct horse battery".into(), Some(phc)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_attempts_half_of_them_abandoned_takes_one_buffer_per_core_at_most() {
        let attempts: Vec<_> = (0..24).map(|i| tokio::spawn(verify(format!("guess {i}"), None))).collect();
        for (i, attempt) in attempts.into_iter().enumerate() {
            if i % 2 == 0 {
                attempt.abort();
            } else {
                assert!(!attempt.await.unwrap().unwrap());
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // Wait out any hash still running for an abandoned caller, then nothing is lost.
        let _all = memory().turns.acquire_many(cores as u32).await.unwrap();
        let allocated = memory().allocated.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=cores).contains(&allocated), "{allocated} buffers for {cores} cores");
        assert_eq!(memory().free.lock().unwrap().len(), allocated, "every buffer came back");
    }

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
