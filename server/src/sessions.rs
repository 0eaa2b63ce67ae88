//! Portal sessions, kept in the same database as everything else.
//!
//! tower-sessions has no store over `sqlx::Any`, so this picks the crate's SQLite or
//! PostgreSQL store from the database URL and delegates to it.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

#[derive(Debug, Clone)]
pub enum SessionBackend {
    /// The store, and its pool (to close it when the server stops).
    Sqlite(SqliteStore, sqlx::SqlitePool),
    Postgres(PostgresStore, sqlx::PgPool),
}

impl SessionBackend {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let store = if url.starts_with("sqlite:") {
            let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts.create_if_missing(true).busy_timeout(std::time::Duration::from_secs(5)))
                .await?;
            let store = SqliteStore::new(pool.clone());
            store.migrate().await?;
            SessionBackend::Sqlite(store, pool)
        } else {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(url).await?;
            let store = PostgresStore::new(pool.clone());
            store.migrate().await?;
            SessionBackend::Postgres(store, pool)
        };
        Ok(store)
    }

    /// Closes the pool: a stopped server holds no connection to the database file, so
    /// another process (the next server, an admin command) is never kept waiting by one.
    pub async fn close(&self) {
        match self {
            SessionBackend::Sqlite(_, pool) => pool.close().await,
            SessionBackend::Postgres(_, pool) => pool.close().await,
        }
    }

    /// Deletes expired sessions every ten minutes, for as long as the server runs.
    pub fn spawn_cleanup(&self) {
        let store = self.clone();
        tokio::spawn(async move {
            let result = match store {
                SessionBackend::Sqlite(s, _) => {
                    s.continuously_delete_expired(tokio::time::Duration::from_secs(600)).await
                }
                SessionBackend::Postgres(s, _) => {
                    s.continuously_delete_expired(tokio::time::Duration::from_secs(600)).await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "expired-session cleanup stopped");
            }
        });
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s, _) => s.create(record).await,
            SessionBackend::Postgres(s, _) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s, _) => s.save(record).await,
            SessionBackend::Postgres(s, _) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(s, _) => s.load(id).await,
            SessionBackend::Postgres(s, _) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s, _) => s.delete(id).await,
            SessionBackend::Postgres(s, _) => s.delete(id).await,
        }
    }
}
