//! People: accounts, passwords and roles.

use serde_json::json;
use sqlx::Row;

use crate::access::{Access, Actor, Channel};
use crate::audit::{self, AdminEvent};
use crate::error::Result;
use crate::model::{Role, UserView};
use crate::password;
use crate::scopes::Area;
use crate::store::{enum_col, new_id, Store};
use crate::DomainError;

/// An email address, trimmed and lower-cased, with one `@` and something either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@'));
        if valid {
            Ok(Self(email))
        } else {
            Err(DomainError::Invalid("Enter a valid email address.".into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn user_view(row: &sqlx::any::AnyRow) -> Result<UserView> {
    Ok(UserView { id: row.try_get("id")?, email: row.try_get("email")?, role: enum_col(row, "role")? })
}

impl Store {
    /// Creates an account. `actor` is the admin who created it, or `None` for self
    /// sign-up (channel `portal`) and the operator's command line (channel `cli`).
    pub async fn create_user(
        &self,
        email: &str,
        password: String,
        role: Role,
        actor: Option<&Actor>,
        channel: Channel,
    ) -> Result<UserView> {
        if let Some(admin) = actor {
            admin.permit(Area::Users, Access::Write)?;
            admin.require_admin()?;
        }
        let email = Email::parse(email)?;
        password::check_strength(&password, email.as_str())?;
        let hash = password::hash(password).await?;
        let id = new_id("us");
        let now = self.now();
        let mut tx = self.begin().await?;
        let exists =
            sqlx::query("SELECT 1 FROM users WHERE email = $1").bind(email.as_str()).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            return Err(DomainError::Conflict("An account with this email already exists.".into()));
        }
        sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(email.as_str())
            .bind(&hash)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut *tx,
            now,
            actor,
            channel.as_str(),
            AdminEvent {
                action: "user.created",
                target_type: "user",
                target_id: &id,
                summary: json!({ "email": email.as_str(), "role": role.as_str() }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(UserView { id, email: email.0, role })
    }

    /// Checks an email and password. Unknown accounts, disabled accounts and wrong
    /// passwords all answer `None` after the same amount of hashing work.
    pub async fn authenticate(&self, email: &str, password: String) -> Result<Option<UserView>> {
        let email = Email::parse(email).ok();
        let row = match &email {
            Some(e) => {
                sqlx::query("SELECT id, email, role, password_hash, disabled FROM users WHERE email = $1")
                    .bind(e.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => None,
        };
        let stored = row.as_ref().map(|r| r.try_get::<String, _>("password_hash")).transpose()?;
        let ok = password::verify(password, stored).await?;
        match row {
            Some(r) if ok && r.try_get::<i64, _>("disabled")? == 0 => Ok(Some(user_view(&r)?)),
            _ => Ok(None),
        }
    }

    /// The account behind a session; `None` when it was deleted or disabled since.
    pub async fn active_user(&self, id: &str) -> Result<Option<UserView>> {
        let row = sqlx::query("SELECT id, email, role FROM users WHERE id = $1 AND disabled = 0")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_view).transpose()
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserView>> {
        let email = Email::parse(email)?;
        let row = sqlx::query("SELECT id, email, role FROM users WHERE email = $1 AND disabled = 0")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_view).transpose()
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?.try_get("n")?)
    }
}

impl Store {
    /// Every account, disabled ones too, for the admins' list.
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<crate::model::AccountView>> {
        actor.permit(Area::Users, Access::Read)?;
        actor.require_admin()?;
        let rows = sqlx::query("SELECT id, email, role, disabled FROM users ORDER BY disabled, email")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::AccountView { user: user_view(r)?, disabled: r.try_get::<i64, _>("disabled")? != 0 })
            })
            .collect()
    }

    /// Changes a person's role (admins only). The last admin cannot be demoted, so the
    /// installation never locks itself out of approvals and publishing.
    pub async fn set_user_role(&self, actor: &Actor, user_id: &str, role: Role) -> Result<UserView> {
        actor.permit(Area::Users, Access::Write)?;
        actor.require_admin()?;
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT id, email, role FROM users WHERE id = $1 AND disabled = 0")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(DomainError::NotFound)?;
        let before = user_view(&row)?;
        if before.role == role {
            return Ok(before);
        }
        if before.role == Role::Admin {
            let admins: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0")
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if admins <= 1 {
                return Err(DomainError::Conflict("This is the last admin; make someone else admin first.".into()));
            }
        }
        let now = self.now();
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "user.role_changed",
                target_type: "user",
                target_id: user_id,
                summary: json!({ "email": before.email, "from": before.role.as_str(), "to": role.as_str() }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(UserView { role, ..before })
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in ["", "ada", "@example.com", "ada@", "ada@example", "a b@example.com", "ada@.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
