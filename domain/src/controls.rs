//! Stopping a person or a client at once: admins (or the operator at the command line)
//! disable an account or suspend a client, with a reason, audited. A disabled person can
//! neither sign in nor use their tokens, and their clients are refused at the gateway; a
//! suspended client is refused at the gateway and the token endpoint. Both take effect
//! on the next request (the policy snapshot is republished) and on other servers within
//! their next version poll.

use serde_json::json;
use sqlx::Row;

use crate::access::Authority;
use crate::audit::{self, AdminEvent};
use crate::error::Result;
use crate::model::{AccountView, Role};
use crate::store::Store;
use crate::DomainError;

fn reason(text: &str) -> Result<&str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DomainError::Invalid("Give a reason; it is kept in the audit trail.".into()));
    }
    if text.chars().count() > 500 {
        return Err(DomainError::Invalid("Keep the reason under 500 characters.".into()));
    }
    Ok(text)
}

impl Store {
    /// Disables (or enables again) an account. Nobody disables themselves, and the last
    /// active admin stays, so the installation never locks itself out.
    pub async fn set_user_disabled(
        &self,
        by: Authority<'_>,
        user_id: &str,
        disabled: bool,
        why: &str,
    ) -> Result<AccountView> {
        by.check()?;
        let why = reason(why)?;
        if disabled && by.actor().is_some_and(|a| a.id() == user_id) {
            return Err(DomainError::Forbidden("you cannot disable your own account"));
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT id, email, role, disabled FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(DomainError::NotFound)?;
        let email: String = row.try_get("email")?;
        let role: Role = crate::store::enum_col(&row, "role")?;
        if (row.try_get::<i64, _>("disabled")? != 0) == disabled {
            let state = if disabled { "disabled" } else { "active" };
            return Err(DomainError::Conflict(format!("{email} is already {state}.")));
        }
        if disabled && role == Role::Admin {
            let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0")
                .fetch_one(&mut *tx)
                .await?;
            if admins <= 1 {
                return Err(DomainError::Conflict("This is the last admin; make someone else admin first.".into()));
            }
        }
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(i64::from(disabled))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let event = AdminEvent {
            action: if disabled { "user.disabled" } else { "user.enabled" },
            target_type: "user",
            target_id: user_id,
            summary: json!({ "email": email, "reason": why }),
        };
        audit::record(&mut *tx, now, by.actor(), by.channel(), event).await?;
        // The person's clients are refused at the gateway from the next request.
        self.commit_and_publish(tx).await?;
        Ok(AccountView { user: crate::model::UserView { id: user_id.to_owned(), email, role }, disabled })
    }

    /// Suspends (or resumes) a client: every profile's requests and token requests are
    /// refused until it is resumed. Its credentials and grants are kept.
    pub async fn set_client_suspended(
        &self,
        by: Authority<'_>,
        client_id: &str,
        suspended: bool,
        why: &str,
    ) -> Result<()> {
        by.check()?;
        let why = reason(why)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT name, suspended FROM clients WHERE id = $1")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(DomainError::NotFound)?;
        let name: String = row.try_get("name")?;
        if (row.try_get::<i64, _>("suspended")? != 0) == suspended {
            let state = if suspended { "suspended" } else { "active" };
            return Err(DomainError::Conflict(format!("{name} is already {state}.")));
        }
        sqlx::query("UPDATE clients SET suspended = $1 WHERE id = $2")
            .bind(i64::from(suspended))
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        let event = AdminEvent {
            action: if suspended { "client.suspended" } else { "client.resumed" },
            target_type: "client",
            target_id: client_id,
            summary: json!({ "name": name, "reason": why }),
        };
        audit::record(&mut *tx, now, by.actor(), by.channel(), event).await?;
        self.commit_and_publish(tx).await
    }

    /// An account's id by email, disabled or not (for the operator's command line).
    pub async fn user_id_by_email(&self, email: &str) -> Result<String> {
        let email = crate::users::Email::parse(email)?;
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(DomainError::NotFound)
    }
}
