//! Administrative audit events. Each is written in the same transaction as the change it
//! describes, so a change without its event (or an event without its change) cannot be
//! committed. Summaries are JSON of what changed, and never contain a secret.

use sqlx::{Any, Row};

use crate::access::Actor;
use crate::error::Result;
use crate::model::AuditEventView;
use crate::store::Store;

pub struct AdminEvent<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub summary: serde_json::Value,
}

pub(crate) async fn record<'c, E>(
    exec: E,
    now: i64,
    actor: Option<&Actor>,
    channel: &str,
    event: AdminEvent<'_>,
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO audit_events (occurred_at, channel, actor_user_id, action, target_type, target_id, summary)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now)
    .bind(channel)
    .bind(actor.map(|a| a.user.id.clone()))
    .bind(event.action)
    .bind(event.target_type)
    .bind(event.target_id)
    .bind(event.summary.to_string())
    .execute(exec)
    .await?;
    Ok(())
}

pub(crate) async fn record_by<'c, E>(exec: E, now: i64, actor: &Actor, event: AdminEvent<'_>) -> Result<()>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    record(exec, now, Some(actor), actor.channel.as_str(), event).await
}

/// What happened at a door of the portal or the management API. Each is an
/// administrative event; what the caller typed (an email, a token) is escaped and capped.
pub enum DoorEvent<'a> {
    SignedIn(&'a crate::model::UserView),
    SignedOut(&'a crate::model::UserView),
    /// Unknown account, wrong password or disabled account: one event for all.
    SignInFailed {
        email: &'a str,
    },
    /// Refused by the sign-in throttle before the password was checked; recorded once
    /// per address a minute (naming the first email), however many attempts it made.
    SignInThrottled {
        email: &'a str,
    },
    /// A personal access token that is unknown, revoked or expired, or whose owner is
    /// disabled; recorded once per address per window.
    TokenRefused {
        presented: &'a str,
    },
}

impl Store {
    /// Records a door event for `channel` (`portal` or `api`), with the caller's address.
    pub async fn record_door(&self, event: DoorEvent<'_>, channel: &str, ip: Option<std::net::IpAddr>) -> Result<()> {
        use crate::audit_text::{cap, AuditText};
        let ip = ip.map(|i| i.to_string());
        let email = |e: &str| AuditText::new(e.trim(), cap::ID).to_string();
        let (action, actor, target_type, target_id, summary) = match &event {
            DoorEvent::SignedIn(u) => {
                ("user.signed_in", Some(u.id.as_str()), "user", u.id.clone(), serde_json::json!({ "ip": ip }))
            }
            DoorEvent::SignedOut(u) => {
                ("user.signed_out", Some(u.id.as_str()), "user", u.id.clone(), serde_json::json!({ "ip": ip }))
            }
            DoorEvent::SignInFailed { email: e } => {
                ("user.sign_in_failed", None, "email", email(e), serde_json::json!({ "ip": ip }))
            }
            DoorEvent::SignInThrottled { email: e } => (
                "user.sign_in_throttled",
                None,
                "email",
                email(e),
                serde_json::json!({ "ip": ip, "note": "further throttled attempts from this address within a minute are not recorded one by one" }),
            ),
            DoorEvent::TokenRefused { presented } => (
                "access_token.refused",
                None,
                "access_token",
                // The token's public prefix, enough to recognise a revoked one.
                AuditText::new(presented.get(..8).unwrap_or("?"), cap::ID).to_string(),
                serde_json::json!({ "ip": ip, "note": "further refusals from this address within a minute are not recorded one by one" }),
            ),
        };
        sqlx::query(
            "INSERT INTO audit_events (occurred_at, channel, actor_user_id, action, target_type, target_id, summary)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.now())
        .bind(channel)
        .bind(actor)
        .bind(action)
        .bind(target_type)
        .bind(target_id)
        .bind(summary.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Requests refused at the door because their source had been refused too often:
    /// not written one row each, but counted per channel and recorded as one event.
    pub async fn record_suppressed(&self, source: &str, counts: serde_json::Value) -> Result<()> {
        let event = AdminEvent {
            action: "requests.suppressed",
            target_type: "source",
            target_id: source,
            summary: serde_json::json!({ "refused_at_the_door": counts }),
        };
        record(&self.pool, self.now(), None, "system", event).await
    }
}

impl Store {
    /// The administrative events about one target, newest first.
    pub async fn audit_for_target(
        &self,
        target_type: &str,
        target_id: &str,
        limit: i64,
    ) -> Result<Vec<AuditEventView>> {
        let rows = sqlx::query(
            "SELECT e.id, e.occurred_at, e.channel, u.email AS actor_email, e.action, e.target_type, e.target_id, e.summary
             FROM audit_events e LEFT JOIN users u ON u.id = e.actor_user_id
             WHERE e.target_type = $1 AND e.target_id = $2
             ORDER BY e.occurred_at DESC, e.id DESC LIMIT $3",
        )
        .bind(target_type)
        .bind(target_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEventView {
                    id: r.try_get("id")?,
                    occurred_at: r.try_get("occurred_at")?,
                    channel: r.try_get("channel")?,
                    actor_email: r.try_get("actor_email")?,
                    action: r.try_get("action")?,
                    target_type: r.try_get("target_type")?,
                    target_id: r.try_get("target_id")?,
                    summary: r.try_get("summary")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// The latest requests a client made (gateway and token endpoint), newest first.
    pub async fn recent_requests(
        &self,
        actor: &crate::access::Actor,
        client_id: &str,
        limit: i64,
    ) -> Result<Vec<crate::model::RequestView>> {
        actor.permit(crate::scopes::Area::Clients, crate::access::Access::Read)?;
        self.owned_client(actor, client_id, crate::access::Access::Read).await?;
        let rows = sqlx::query(
            "SELECT request_id, occurred_at, channel, tool, profile_id, product, endpoint, method, path, status, decision, reason,
                    latency_us, sender_key
             FROM audit_events WHERE client_id = $1 AND action = 'request'
             ORDER BY occurred_at DESC, id DESC LIMIT $2",
        )
        .bind(client_id)
        .bind(limit.clamp(1, 200))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::RequestView {
                    request_id: r.try_get::<Option<String>, _>("request_id")?.unwrap_or_default(),
                    occurred_at: r.try_get("occurred_at")?,
                    channel: r.try_get("channel")?,
                    tool: r.try_get("tool")?,
                    profile_id: r.try_get("profile_id")?,
                    product: r.try_get("product")?,
                    endpoint: r.try_get("endpoint")?,
                    method: r.try_get::<Option<String>, _>("method")?.unwrap_or_default(),
                    path: r.try_get::<Option<String>, _>("path")?.unwrap_or_default(),
                    status: r.try_get::<Option<i64>, _>("status")?.unwrap_or_default(),
                    decision: r.try_get::<Option<String>, _>("decision")?.unwrap_or_default(),
                    reason: r.try_get::<Option<String>, _>("reason")?.unwrap_or_default(),
                    latency_us: r.try_get::<Option<i64>, _>("latency_us")?.unwrap_or_default(),
                    sender_key: r.try_get("sender_key")?,
                })
            })
            .collect()
    }
}

/// Rows deleted per statement when purging: small enough that the audit writer, which
/// shares the table, never waits long.
const PURGE_BATCH: i64 = 5_000;

impl Store {
    /// Deletes audit rows older than `retention_ms`, in batches, and records the purge
    /// (how many rows, up to when) as an event of its own. Returns the rows deleted.
    pub async fn purge_audit(&self, retention_ms: i64) -> Result<u64> {
        let cutoff = self.now() - retention_ms;
        let mut total = 0u64;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM audit_events WHERE id IN
                   (SELECT id FROM audit_events WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2)",
            )
            .bind(cutoff)
            .bind(PURGE_BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
            total += deleted;
            if deleted < PURGE_BATCH as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        if total > 0 {
            record(
                &self.pool,
                self.now(),
                None,
                "system",
                AdminEvent {
                    action: "audit.purged",
                    target_type: "audit",
                    target_id: "retention",
                    summary: serde_json::json!({ "rows": total, "before": cutoff, "retention_days": retention_ms / crate::time::DAY }),
                },
            )
            .await?;
        }
        Ok(total)
    }
}
