//! Grants: a product assigned to a profile with scopes, an approver, a reason and an
//! expiry. Sandbox requests are approved by policy at once; production requests wait for
//! an admin.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::access::{Access, Actor};
use crate::audit::{self, AdminEvent};
use crate::error::Result;
use crate::model::{Environment, GrantStatus, GrantView};
use crate::scopes::Area;
use crate::store::{enum_col, new_id, split_list, Store};
use crate::DomainError;

/// Recorded as the decider of grants that policy approved without a person.
pub const SANDBOX_POLICY: &str = "policy:sandbox-auto-approve";

const GRANT_SELECT: &str = "SELECT g.id, g.profile_id, p.environment, c.id AS client_id, c.name AS client_name,
        g.product_id, pr.name AS product_name, g.scopes, g.status, g.justification, ru.email AS requested_by,
        g.requested_at, g.decided_by, du.email AS decided_by_email, g.decided_at, g.decision_reason, g.expires_at
    FROM grants g
    JOIN profiles p ON p.id = g.profile_id
    JOIN clients c ON c.id = p.client_id
    JOIN products pr ON pr.id = g.product_id
    JOIN users ru ON ru.id = g.requested_by
    LEFT JOIN users du ON du.id = g.decided_by";

fn grant_view(r: &AnyRow) -> Result<GrantView> {
    let decided_by: Option<String> = r.try_get("decided_by")?;
    let decided_by_email: Option<String> = r.try_get("decided_by_email")?;
    Ok(GrantView {
        id: r.try_get("id")?,
        profile_id: r.try_get("profile_id")?,
        environment: enum_col(r, "environment")?,
        client_id: r.try_get("client_id")?,
        client_name: r.try_get("client_name")?,
        product_id: r.try_get("product_id")?,
        product_name: r.try_get("product_name")?,
        scopes: split_list(&r.try_get::<String, _>("scopes")?, ' '),
        status: enum_col(r, "status")?,
        justification: r.try_get("justification")?,
        requested_by: r.try_get("requested_by")?,
        requested_at: r.try_get("requested_at")?,
        decided_by: decided_by_email.or(decided_by.map(|d| {
            if d == SANDBOX_POLICY {
                "Sandbox policy (automatic)".to_owned()
            } else {
                d
            }
        })),
        decided_at: r.try_get("decided_at")?,
        decision_reason: r.try_get("decision_reason")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Scopes from a request: known, deduplicated, at least one.
/// The scopes asked for, each one the product's endpoints require (`read`, `write`, or
/// a custom scope an OpenAPI import brought, such as `loans:approve`).
pub fn parse_scopes(requested: &[String], offered: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in requested.iter().flat_map(|s| s.split_whitespace()) {
        if !offered.iter().any(|o| o == s) {
            let s = crate::audit_text::AuditText::new(s, 64);
            return Err(DomainError::Invalid(format!(
                "This product has no scope `{s}`; choose from {}.",
                offered.join(", ")
            )));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(DomainError::Invalid("Choose at least one scope.".into()));
    }
    out.sort();
    Ok(out)
}

impl Store {
    pub(crate) async fn grants_of_profile(&self, profile_id: &str) -> Result<Vec<GrantView>> {
        let rows =
            sqlx::query(&format!("{GRANT_SELECT} WHERE g.profile_id = $1 ORDER BY g.requested_at DESC, g.id DESC"))
                .bind(profile_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(grant_view).collect()
    }

    async fn grant(&self, id: &str) -> Result<GrantView> {
        let row = sqlx::query(&format!("{GRANT_SELECT} WHERE g.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(DomainError::NotFound)?;
        grant_view(&row)
    }

    /// Asks for a product on one of the actor's profiles.
    pub async fn request_grant(
        &self,
        actor: &Actor,
        profile_id: &str,
        product_id: &str,
        scopes: &[String],
        justification: &str,
    ) -> Result<GrantView> {
        actor.permit(Area::Clients, Access::Write)?;
        let justification = justification.trim();
        if justification.chars().count() > 1000 {
            return Err(DomainError::Invalid("Keep the justification under 1000 characters.".into()));
        }
        let profile = sqlx::query(
            "SELECT p.environment, c.owner_id FROM profiles p JOIN clients c ON c.id = p.client_id WHERE p.id = $1",
        )
        .bind(profile_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(DomainError::NotFound)?;
        actor.check_owner(&profile.try_get::<String, _>("owner_id")?, Access::Write)?;
        let env: Environment = enum_col(&profile, "environment")?;
        if env == Environment::Production && justification.is_empty() {
            return Err(DomainError::Invalid("Production access needs a justification for the approver.".into()));
        }
        let product = self.product(product_id).await?;
        let scopes = parse_scopes(scopes, &product.scopes())?;
        let now = self.now();
        let id = new_id("gr");
        let mut tx = self.begin().await?;
        // Holds the profile's row until commit, so two requests for the same product
        // cannot both find none open (PostgreSQL reads committed data per statement).
        sqlx::query("UPDATE profiles SET id = id WHERE id = $1").bind(profile_id).execute(&mut *tx).await?;
        let open = sqlx::query(
            "SELECT status FROM grants WHERE profile_id = $1 AND product_id = $2 AND status IN ('pending', 'approved')
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(profile_id)
        .bind(product_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(open) = open {
            let status: String = open.try_get("status")?;
            return Err(DomainError::Conflict(if status == GrantStatus::Pending.as_str() {
                format!("This profile already has a pending request for {}; an admin will review it.", product.name)
            } else {
                format!("This profile already has access to {}.", product.name)
            }));
        }
        let (status, decided_by, decided_at, reason, expires_at) = match env {
            Environment::Sandbox => (
                GrantStatus::Approved,
                Some(SANDBOX_POLICY.to_owned()),
                Some(now),
                Some("Sandbox access is granted automatically.".to_owned()),
                Some(now + self.policy.grant_lifetime_ms),
            ),
            Environment::Production => (GrantStatus::Pending, None, None, None, None),
        };
        sqlx::query(
            "INSERT INTO grants (id, profile_id, product_id, scopes, status, justification, requested_by, requested_at,
                                 decided_by, decided_at, decision_reason, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(profile_id)
        .bind(product_id)
        .bind(scopes.join(" "))
        .bind(status.as_str())
        .bind(justification)
        .bind(actor.id())
        .bind(now)
        .bind(decided_by)
        .bind(decided_at)
        .bind(reason)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "grant.requested",
                target_type: "grant",
                target_id: &id,
                summary: json!({ "profile_id": profile_id, "product": product.slug, "scopes": scopes, "environment": env.as_str(), "status": status.as_str() }),
            },
        )
        .await?;
        if status == GrantStatus::Approved {
            audit::record(
                &mut *tx,
                now,
                None,
                actor.channel.as_str(),
                AdminEvent {
                    action: "grant.approved",
                    target_type: "grant",
                    target_id: &id,
                    summary: json!({ "by": SANDBOX_POLICY, "expires_at": expires_at }),
                },
            )
            .await?;
        }
        self.commit_and_publish(tx).await?;
        self.grant(&id).await
    }

    /// Production requests waiting for a decision, oldest first (admins only).
    pub async fn pending_grants(&self, actor: &Actor) -> Result<Vec<GrantView>> {
        actor.permit(Area::Grants, Access::Read)?;
        actor.require_admin()?;
        let rows = sqlx::query(&format!("{GRANT_SELECT} WHERE g.status = 'pending' ORDER BY g.requested_at, g.id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_view).collect()
    }

    /// Approves or rejects a pending request, with the reason recorded (admins only). An
    /// approval lasts `days` (1 to the deployment's grant lifetime, which is also the
    /// default); a rejection has no expiry.
    pub async fn decide_grant(
        &self,
        actor: &Actor,
        grant_id: &str,
        approve: bool,
        reason: &str,
        days: Option<i64>,
    ) -> Result<GrantView> {
        actor.permit(Area::Grants, Access::Write)?;
        actor.require_admin()?;
        let longest = (self.policy.grant_lifetime_ms / crate::time::DAY).max(1);
        let lifetime_ms = match days {
            _ if !approve => 0,
            None => self.policy.grant_lifetime_ms,
            Some(d) if (1..=longest).contains(&d) => d * crate::time::DAY,
            Some(_) => return Err(DomainError::Invalid(format!("An approval lasts 1 to {longest} days."))),
        };
        if approve {
            let parties = sqlx::query(
                "SELECT c.owner_id, g.requested_by FROM grants g JOIN profiles p ON p.id = g.profile_id
                 JOIN clients c ON c.id = p.client_id WHERE g.id = $1",
            )
            .bind(grant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(DomainError::NotFound)?;
            actor.require_other_than(&parties.try_get::<String, _>("owner_id")?)?;
            actor.require_other_than(&parties.try_get::<String, _>("requested_by")?)?;
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DomainError::Invalid("Give a reason for the decision; it is kept for access reviews.".into()));
        }
        let now = self.now();
        let (status, expires_at) =
            if approve { (GrantStatus::Approved, Some(now + lifetime_ms)) } else { (GrantStatus::Rejected, None) };
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE grants SET status = $1, decided_by = $2, decided_at = $3, decision_reason = $4, expires_at = $5
             WHERE id = $6 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(actor.id())
        .bind(now)
        .bind(reason)
        .bind(expires_at)
        .bind(grant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return match self.grant(grant_id).await {
                Ok(g) => Err(DomainError::Conflict(format!("This request was already {}.", g.status.as_str()))),
                Err(e) => Err(e),
            };
        }
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: if approve { "grant.approved" } else { "grant.rejected" },
                target_type: "grant",
                target_id: grant_id,
                summary: json!({ "reason": reason, "expires_at": expires_at }),
            },
        )
        .await?;
        self.commit_and_publish(tx).await?;
        self.grant(grant_id).await
    }
}
