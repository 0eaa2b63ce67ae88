//! MCP sessions ended before they expired, as every replica must learn of them.
//!
//! A session id is sealed (the server's `mcp::session` module) and valid on any replica
//! without a row; what the store keeps is only the ends, by a hash of the id. Replicas
//! read the rows after the last id they have seen, so each poll costs an index range.

use sqlx::Row;

use crate::error::Result;
use crate::store::Store;

/// One ended session, as a replica reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// SHA-256 of the session id.
    pub hash: [u8; 32],
    /// When the session would have expired; the row is useless after it.
    pub expires_at: i64,
}

/// One read of ended sessions.
#[derive(Debug, Default)]
pub struct EndedPage {
    pub sessions: Vec<EndedSession>,
    /// The highest row id read (a malformed row included): where the next read starts.
    pub last_id: Option<i64>,
    /// The read hit its limit: more rows may follow at once.
    pub full: bool,
}

impl Store {
    /// Records that a session ended. `false` when it had already ended (on any replica):
    /// the caller answers as for an unknown session.
    pub async fn end_mcp_session(&self, hash: &[u8; 32], profile_id: &str, expires_at: i64) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO mcp_ended_sessions (session_hash, profile_id, expires_at, ended_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_hash) DO NOTHING",
        )
        .bind(hex::encode(hash))
        .bind(profile_id)
        .bind(expires_at)
        .bind(self.now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Ended sessions with a row id above `after`, oldest first, from at most `limit` rows.
    pub async fn ended_mcp_sessions_after(&self, after: i64, limit: i64) -> Result<EndedPage> {
        let rows = sqlx::query(
            "SELECT id, session_hash, expires_at FROM mcp_ended_sessions WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut page = EndedPage { sessions: Vec::with_capacity(rows.len()), last_id: None, full: false };
        page.full = i64::try_from(rows.len()).is_ok_and(|n| n >= limit);
        for r in rows {
            let id: i64 = r.try_get("id")?;
            page.last_id = Some(id);
            let text: String = r.try_get("session_hash")?;
            let mut hash = [0u8; 32];
            // Only this module writes the column; a row someone else put there cannot end
            // a session anyway, so it is passed over rather than stopping every read after it.
            if hex::decode_to_slice(&text, &mut hash).is_err() {
                tracing::warn!(row = id, "malformed mcp_ended_sessions row ignored");
                continue;
            }
            page.sessions.push(EndedSession { hash, expires_at: r.try_get("expires_at")? });
        }
        Ok(page)
    }

    /// Deletes the rows of sessions that expired before `before`. Returns how many.
    pub async fn purge_ended_mcp_sessions(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM mcp_ended_sessions WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
