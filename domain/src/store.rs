//! The store: one `sqlx::Any` pool over SQLite or PostgreSQL.
//!
//! Why `Any` and not a trait with two implementations: every query here binds only text
//! and 64-bit integers (ids, Unix-millisecond timestamps, 0/1 flags, JSON as text), which
//! is exactly what `Any` supports, and both databases accept `$1` placeholders. One SQL
//! text per query then serves both backends, and a query cannot drift between two
//! copies. The price is no compile-time-checked queries; the integration tests run every
//! query against both databases instead. Schemas differ only in types, so each backend
//! has its own migration folder.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use crate::clock::Clock;
use crate::enforcement::Enforcement;
use crate::error::Result;
use crate::reveal::RevealKey;
use crate::sealing::SealingKey;
use crate::secrets::ServerSecret;
use crate::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DomainError::Invalid("the database URL must start with sqlite: or postgres://".into()))
        }
    }
}

/// Policy numbers the store applies. Defaults follow the foundation issue.
#[derive(Debug, Clone)]
pub struct Policy {
    pub credential_lifetime_ms: i64,
    pub rotation_grace_ms: i64,
    pub expiry_warning_ms: i64,
    pub grant_lifetime_ms: i64,
    /// Access reviews flag credentials older than this: rotate before they expire.
    pub rotation_age_ms: i64,
    /// The algorithm of the signing keys made from now on (existing keys keep theirs).
    pub token_signing_alg: crate::enforcement::SigningAlg,
}

impl Default for Policy {
    fn default() -> Self {
        use crate::time::{DAY, HOUR};
        Self {
            credential_lifetime_ms: 90 * DAY,
            rotation_grace_ms: 24 * HOUR,
            expiry_warning_ms: 14 * DAY,
            grant_lifetime_ms: crate::model::GRANT_LIFETIME_DAYS * DAY,
            rotation_age_ms: 60 * DAY,
            token_signing_alg: crate::enforcement::SigningAlg::EdDSA,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) policy: Policy,
    /// What decides requests, in memory: the store loads into it and the gateway reads
    /// from it. It holds the one clock and the one hasher of secrets.
    pub(crate) enforcement: Enforcement,
    /// Seals signing keys at rest; derived from the server secret.
    pub(crate) sealing_key: SealingKey,
    /// Seals secrets waiting to be shown once after a plain form post.
    pub(crate) reveal_key: RevealKey,
    /// Where the database is, for connections outside the pool (PostgreSQL's `LISTEN`).
    pub(crate) url: DatabaseUrl,
}

/// A database URL, which may hold a password: never printed.
#[derive(Clone)]
pub(crate) struct DatabaseUrl(pub(crate) std::sync::Arc<str>);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(…)")
    }
}

static DRIVERS: Once = Once::new();

/// How long a start waits for a SQLite file another process holds locked.
const STARTUP_LOCK_WAIT: Duration = Duration::from_secs(30);

/// SQLite's "database is locked" (`SQLITE_BUSY` and its extended codes), however it
/// reached us.
fn sqlite_busy(e: &DomainError) -> bool {
    let db = match e {
        DomainError::Storage(sqlx::Error::Database(db)) => db,
        DomainError::Migration(
            sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))
            | sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(db), _),
        ) => db,
        _ => return false,
    };
    db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 5)
}

impl Store {
    /// Connects, applies the backend's migrations, and returns a ready store.
    pub async fn connect(url: &str, secret: &ServerSecret, clock: Clock, policy: Policy) -> Result<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Backend::from_url(url)?;
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let store = Self {
            pool,
            backend,
            policy,
            enforcement: Enforcement::new(secret, clock.clone()),
            sealing_key: SealingKey::new(secret),
            reveal_key: RevealKey::new(secret, clock),
            url: DatabaseUrl(url.into()),
        };
        // Another process may hold the SQLite file at this moment (a `portcullis admin`
        // command, a server still closing it): SQLite then refuses at once, without its
        // busy timeout, in some of the steps below. Waiting is right; exiting is not.
        let deadline = std::time::Instant::now() + STARTUP_LOCK_WAIT;
        loop {
            match store.open().await {
                Err(e) if sqlite_busy(&e) && std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "the database is locked by another process; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(store),
            }
        }
    }

    /// Everything `connect` does once the pool is there; each step may be repeated.
    async fn open(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            // WAL lets the portal read while the audit writer writes; it persists in the file.
            self.pool.execute("PRAGMA journal_mode = WAL;").await?;
        }
        self.migrate().await?;
        self.adopt_secret().await?;
        self.reload_policy().await?;
        self.reload_keys().await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn clock(&self) -> &Clock {
        self.enforcement.clock()
    }

    /// The in-memory state that decides requests, which this store keeps current.
    pub fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    /// Secrets waiting to be shown once, sealed for their person (see `crate::reveal`).
    pub fn reveals(&self) -> &RevealKey {
        &self.reveal_key
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn now(&self) -> i64 {
        self.enforcement.now()
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes cannot wait for a
    /// concurrent writer (the audit writer, say) and fails with "database is locked",
    /// whereas an immediate one waits for the busy timeout.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether `close` was called: background work on this store stops then.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// A new id: a short type prefix and a time-ordered UUID, e.g. `cl_0193…`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Reads a text column into one of the model's text enums.
pub(crate) fn enum_col<T: FromStr<Err = DomainError>>(row: &AnyRow, col: &str) -> Result<T> {
    use sqlx::Row;
    let text: String = row.try_get(col)?;
    text.parse()
}

pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(col)? != 0)
}

pub(crate) fn split_list(text: &str, sep: char) -> Vec<String> {
    text.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
