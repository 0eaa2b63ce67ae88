//! The domain's one error type. Each variant is a decision the caller must map to a
//! status: the portal and the management API do so with exhaustive matches.

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The thing does not exist, or exists but is not the caller's to see. The two are
    /// deliberately indistinguishable so ids of other people's clients leak nothing.
    #[error("not found")]
    NotFound,
    /// The caller may see the thing but not do this to it (e.g. a developer approving).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The person may do this, but the personal access token they sent is not scoped for
    /// it (`clients:write`, …). Told apart from `Forbidden` so a script knows that a
    /// broader token, not another person, would be allowed.
    #[error("the token's scopes do not include {0}")]
    InsufficientScope(crate::scopes::Scope),
    /// The request conflicts with current state (duplicate email, grant already requested).
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable; the message is safe to show to the user.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed. The cause is logged where handled, never shown.
    #[cfg(feature = "store")]
    #[error("storage error")]
    Storage(sqlx::Error),
    #[cfg(feature = "store")]
    #[error("migration error")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Something that must not happen did (a password hasher failure, a task panic).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A write that lost a race to an equal one (two requests creating the same profile,
/// product or account at once) is a conflict the caller can act on, never a 500: the
/// database's unique constraints decide, and this is where their verdict is translated.
#[cfg(feature = "store")]
impl From<sqlx::Error> for DomainError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                DomainError::Conflict("This exists already (created a moment ago); look again.".into())
            }
            _ => DomainError::Storage(e),
        }
    }
}

impl DomainError {
    /// As `From<sqlx::Error>`, but a lost race is told in the caller's words: what was
    /// just created by the other writer.
    #[cfg(feature = "store")]
    pub(crate) fn lost_race(e: sqlx::Error, what_happened: impl FnOnce() -> String) -> Self {
        match e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
            true => DomainError::Conflict(what_happened()),
            false => DomainError::Storage(e),
        }
    }
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;

#[cfg(all(test, feature = "store"))]
mod tests {
    use super::DomainError;

    #[tokio::test]
    async fn a_unique_violation_is_a_conflict_and_other_failures_are_storage() {
        sqlx::any::install_default_drivers();
        // One connection: each in-memory SQLite connection is a database of its own.
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT UNIQUE)").execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO t VALUES ('a')").execute(&pool).await.unwrap();
        let twice = sqlx::query("INSERT INTO t VALUES ('a')").execute(&pool).await.unwrap_err();
        assert!(matches!(DomainError::from(twice), DomainError::Conflict(_)));
        let broken = sqlx::query("INSERT INTO missing VALUES (1)").execute(&pool).await.unwrap_err();
        assert!(matches!(DomainError::from(broken), DomainError::Storage(_)));
    }
}
