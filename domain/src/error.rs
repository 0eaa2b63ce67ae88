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
    /// The request conflicts with current state (duplicate email, grant already requested).
    #[error("{0}")]
    Conflict(String),
    /// The input is not acceptable; the message is safe to show to the user.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed. The cause is logged where handled, never shown.
    #[cfg(feature = "store")]
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
    #[cfg(feature = "store")]
    #[error("migration error")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Something that must not happen did (a password hasher failure, a task panic).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;
