//! Access reviews: every client with its owner, grants and credentials, flagged where
//! access should be questioned, and the reviewer's actions on them. The security team
//! and admins review; every action is audited with the reviewer and the reason, and
//! takes effect at the gateway on the next request (the policy snapshot is republished).

use serde_json::json;
use sqlx::Row;

use crate::access::{Access, Actor};
use crate::audit::{self, AdminEvent};
use crate::error::{DomainError, Result};
use crate::model::{CredentialState, GrantStatus, ReviewClient, ReviewCredential, ReviewFlag, ReviewGrant};
use crate::scopes::Area;
use crate::store::Store;
use crate::time::DAY;

/// A credential unused for this long is flagged (one never used at once); so is a
/// grant expiring this soon.
const UNUSED_AFTER: i64 = 30 * DAY;
const EXPIRING_WITHIN: i64 = 14 * DAY;
/// Longest extension a reviewer may give a grant at once.
const MAX_EXTENSION_DAYS: i64 = 365;

fn reason(text: &str) -> Result<&str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DomainError::Invalid("Give a reason; it is kept with the review in the audit trail.".into()));
    }
    if text.chars().count() > 500 {
        return Err(DomainError::Invalid("Keep the reason under 500 characters.".into()));
    }
    Ok(text)
}

impl Store {
    /// Every client, flagged. Clients with flags come first, then by name.
    pub async fn access_review(&self, actor: &Actor) -> Result<Vec<ReviewClient>> {
        actor.permit(Area::Reviews, Access::Read)?;
        actor.require_security()?;
        let now = self.now();
        let clients = sqlx::query(
            "SELECT c.id, u.disabled FROM clients c JOIN users u ON u.id = c.owner_id ORDER BY c.name, c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        // Oldest first, so each client keeps its latest review: client → (when, by whom).
        let mut reviewed: std::collections::HashMap<String, (i64, Option<String>)> = Default::default();
        for r in sqlx::query(
            "SELECT e.target_id, e.occurred_at, u.email FROM audit_events e LEFT JOIN users u ON u.id = e.actor_user_id
             WHERE e.target_type = 'client' AND e.action = 'client.reviewed' ORDER BY e.occurred_at, e.id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            reviewed.insert(r.try_get("target_id")?, (r.try_get("occurred_at")?, r.try_get("email")?));
        }
        // Kept by the audit writer: the newest request each grant allowed.
        let grant_used: std::collections::HashMap<String, Option<i64>> =
            sqlx::query("SELECT id, last_used_at FROM grants WHERE status = 'approved'")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("last_used_at")?)))
                .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(clients.len());
        for row in &clients {
            let id: String = row.try_get("id")?;
            let owner_disabled = row.try_get::<i64, _>("disabled")? != 0;
            let detail = self.client_detail(actor, &id).await?;
            let mut credentials = Vec::new();
            let mut grants = Vec::new();
            for p in detail.profiles {
                for c in p.credentials.into_iter().filter(|c| c.state.is_usable()) {
                    let mut flags = Vec::new();
                    if now - c.created_at > self.policy.rotation_age_ms && c.state != CredentialState::Grace {
                        flags.push(ReviewFlag::StaleCredential);
                    }
                    match c.last_used_at {
                        None => flags.push(ReviewFlag::NeverUsedCredential),
                        Some(used) if now - used > UNUSED_AFTER => flags.push(ReviewFlag::UnusedCredential),
                        Some(_) => {}
                    }
                    let age_days = (now - c.created_at) / DAY;
                    credentials.push(ReviewCredential { credential: c, environment: p.environment, age_days, flags });
                }
                for g in p.grants.into_iter().filter(|g| g.status == GrantStatus::Approved) {
                    let last_used_at = grant_used.get(&g.id).copied().flatten();
                    let mut flags = Vec::new();
                    if g.expires_at.is_some_and(|e| (0..EXPIRING_WITHIN).contains(&(e - now))) {
                        flags.push(ReviewFlag::GrantExpiring);
                    }
                    if last_used_at.is_none() {
                        flags.push(ReviewFlag::GrantNeverUsed);
                    }
                    grants.push(ReviewGrant { grant: g, last_used_at, flags });
                }
            }
            let mut flags: Vec<ReviewFlag> = credentials
                .iter()
                .flat_map(|c| c.flags.iter())
                .chain(grants.iter().flat_map(|g| g.flags.iter()))
                .copied()
                .collect();
            if owner_disabled {
                flags.push(ReviewFlag::OwnerDisabled);
            }
            flags.sort_by_key(|f| f.as_str());
            flags.dedup();
            let (reviewed_at, reviewed_by) = reviewed.remove(&id).map_or((None, None), |(at, by)| (Some(at), by));
            out.push(ReviewClient {
                client: detail.client,
                owner_disabled,
                flags,
                credentials,
                grants,
                reviewed_at,
                reviewed_by,
            });
        }
        out.sort_by_key(|c| c.flags.is_empty());
        Ok(out)
    }

    /// Revokes a credential from a review; unlike an owner's revocation it needs a reason.
    pub async fn review_revoke_credential(&self, actor: &Actor, credential_id: &str, why: &str) -> Result<()> {
        actor.permit(Area::Reviews, Access::Write)?;
        actor.require_security()?;
        let why = reason(why)?;
        self.revoke_credential_checked(actor, credential_id, Some(why)).await
    }

    /// Ends an approved grant at once: the next request it would have allowed is refused.
    pub async fn review_end_grant(&self, actor: &Actor, grant_id: &str, why: &str) -> Result<()> {
        actor.permit(Area::Reviews, Access::Write)?;
        actor.require_security()?;
        let why = reason(why)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let changed = sqlx::query("UPDATE grants SET status = 'revoked' WHERE id = $1 AND status = 'approved'")
            .bind(grant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            let exists =
                sqlx::query("SELECT id FROM grants WHERE id = $1").bind(grant_id).fetch_optional(&mut *tx).await?;
            return Err(match exists {
                Some(_) => DomainError::Conflict("Only an approved grant can be ended.".into()),
                None => DomainError::NotFound,
            });
        }
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "grant.ended",
                target_type: "grant",
                target_id: grant_id,
                summary: json!({ "reason": why, "review": true }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await
    }

    /// Extends a current grant by `days` from its expiry, never past what an approval
    /// gives from today (`grant_lifetime_ms`): a reviewer keeps access going, but cannot
    /// grant more than an admin would, nor revive a grant that has lapsed (that is a new
    /// request for an admin). Returns the new expiry.
    pub async fn review_extend_grant(&self, actor: &Actor, grant_id: &str, days: i64, why: &str) -> Result<i64> {
        actor.permit(Area::Reviews, Access::Write)?;
        actor.require_security()?;
        let why = reason(why)?;
        if !(1..=MAX_EXTENSION_DAYS).contains(&days) {
            return Err(DomainError::Invalid(format!("Extend by 1 to {MAX_EXTENSION_DAYS} days.")));
        }
        let now = self.now();
        let cap = now + self.policy.grant_lifetime_ms;
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT g.status, g.expires_at, c.owner_id FROM grants g JOIN profiles p ON p.id = g.profile_id
             JOIN clients c ON c.id = p.client_id WHERE g.id = $1",
        )
        .bind(grant_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DomainError::NotFound)?;
        actor.require_other_than(&row.try_get::<String, _>("owner_id")?)?;
        let current = match (row.try_get::<String, _>("status")?.as_str(), row.try_get::<Option<i64>, _>("expires_at")?)
        {
            ("approved", Some(expiry)) if expiry > now => expiry,
            ("approved", Some(_)) => {
                return Err(DomainError::Conflict(
                    "This grant has expired; the client must request it again and an admin approve it.".into(),
                ))
            }
            ("approved", None) => return Err(DomainError::Conflict("This grant does not expire.".into())),
            _ => return Err(DomainError::Conflict("Only an approved grant can be extended.".into())),
        };
        let expires_at = (current + days * DAY).min(cap);
        // Less than a day gained means it already runs as long as an approval would.
        if expires_at - current < DAY {
            return Err(DomainError::Conflict(
                "This grant already runs as long as an approval would from today.".into(),
            ));
        }
        // Guarded on what was read, so a concurrent end or extension is not overwritten.
        let changed =
            sqlx::query("UPDATE grants SET expires_at = $1 WHERE id = $2 AND status = 'approved' AND expires_at = $3")
                .bind(expires_at)
                .bind(grant_id)
                .bind(current)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            return Err(DomainError::Conflict("This grant changed meanwhile; look again.".into()));
        }
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "grant.extended",
                target_type: "grant",
                target_id: grant_id,
                summary: json!({ "reason": why, "days": days, "from": current, "expires_at": expires_at, "review": true }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        Ok(expires_at)
    }

    /// Records that a reviewer looked at a client and found its access right.
    pub async fn mark_client_reviewed(&self, actor: &Actor, client_id: &str, note: &str) -> Result<()> {
        actor.permit(Area::Reviews, Access::Write)?;
        actor.require_security()?;
        let note = note.trim();
        if note.chars().count() > 500 {
            return Err(DomainError::Invalid("Keep the note under 500 characters.".into()));
        }
        let client = self.owned_client(actor, client_id, crate::access::Access::Read).await?;
        actor.require_other_than(&client.try_get::<String, _>("owner_id")?)?;
        audit::record_by(
            &self.pool,
            self.now(),
            actor,
            AdminEvent {
                action: "client.reviewed",
                target_type: "client",
                target_id: client_id,
                summary: json!({ "note": note }),
            },
        )
        .await
    }
}
