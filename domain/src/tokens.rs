//! Personal access tokens: how a person's scripts call the management API. A token acts
//! as its owner, checked by the same `Actor` rules, and no further than its scopes.

use serde_json::json;
use sqlx::Row;

use crate::access::{Access, Actor, Channel};
use crate::audit::{self, AdminEvent};
use crate::error::Result;
use crate::model::{AccessTokenView, IssuedToken, UserView};
use crate::scopes::{Area, Scopes};
use crate::secrets::{self, ACCESS_TOKEN_PREFIX};
use crate::store::{enum_col, new_id, Store};
use crate::time::DAY;
use crate::DomainError;

pub const DEFAULT_TOKEN_DAYS: i64 = 90;
pub const MAX_TOKEN_DAYS: i64 = 366;

impl Store {
    /// A new token for the actor, limited to `scopes`, which must be some and no more than
    /// the actor holds: a token can make a narrower token, never a broader one.
    pub async fn create_access_token(
        &self,
        actor: &Actor,
        name: &str,
        days: Option<i64>,
        scopes: Scopes,
    ) -> Result<IssuedToken> {
        actor.permit(Area::Tokens, Access::Write)?;
        if scopes.is_empty() {
            return Err(DomainError::Invalid("Choose at least one area the token may read.".into()));
        }
        if !actor.scopes().covers(scopes) {
            return Err(DomainError::Forbidden("a token cannot create a token with scopes it does not hold itself"));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(DomainError::Invalid(
                "Name the token (up to 80 characters) so you can recognise it later.".into(),
            ));
        }
        let days = days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(DomainError::Invalid(format!("A token lives between 1 and {MAX_TOKEN_DAYS} days.")));
        }
        let now = self.now();
        let id = new_id("pat");
        let generated = secrets::generate(self.enforcement.hasher(), ACCESS_TOKEN_PREFIX);
        let expires_at = now + days * DAY;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO access_tokens (id, user_id, name, prefix, token_hash, hash_key, created_at, expires_at, scopes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(actor.id())
        .bind(name)
        .bind(&generated.display_prefix)
        .bind(&generated.hash)
        .bind(self.enforcement.hasher().fingerprint())
        .bind(now)
        .bind(expires_at)
        .bind(scopes.to_column())
        .execute(&mut *tx)
        .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "access_token.created",
                target_type: "access_token",
                target_id: &id,
                summary: json!({
                    "name": name,
                    "prefix": generated.display_prefix,
                    "expires_at": expires_at,
                    "scopes": scopes.names(),
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedToken { id, name: name.to_owned(), expires_at, token: generated.value, scopes })
    }

    pub async fn list_access_tokens(&self, actor: &Actor) -> Result<Vec<AccessTokenView>> {
        actor.permit(Area::Tokens, Access::Read)?;
        let now = self.now();
        let rows = sqlx::query(
            "SELECT id, name, prefix, created_at, expires_at, revoked_at, last_used_at, scopes FROM access_tokens
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(actor.id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let expires_at: i64 = r.try_get("expires_at")?;
                let revoked_at: Option<i64> = r.try_get("revoked_at")?;
                Ok(AccessTokenView {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    prefix: r.try_get("prefix")?,
                    created_at: r.try_get("created_at")?,
                    expires_at,
                    revoked_at,
                    last_used_at: r.try_get("last_used_at")?,
                    active: revoked_at.is_none() && now < expires_at,
                    scopes: scopes_col(r)?,
                })
            })
            .collect()
    }

    /// Revokes one of the actor's own tokens (nobody else's, admins included: a token is
    /// personal, and an admin who must cut one off disables the account instead).
    pub async fn revoke_access_token(&self, actor: &Actor, token_id: &str) -> Result<()> {
        actor.permit(Area::Tokens, Access::Write)?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE access_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(token_id)
        .bind(actor.id())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            let mine = sqlx::query("SELECT 1 FROM access_tokens WHERE id = $1 AND user_id = $2")
                .bind(token_id)
                .bind(actor.id())
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match mine {
                Some(_) => DomainError::Conflict("This token is already revoked.".into()),
                None => DomainError::NotFound,
            });
        }
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "access_token.revoked",
                target_type: "access_token",
                target_id: token_id,
                summary: json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The person a presented token acts for, held to the token's scopes, if it is live
    /// and its owner active.
    pub async fn authenticate_access_token(&self, presented: &str, channel: Channel) -> Result<Option<Actor>> {
        if !presented.starts_with(ACCESS_TOKEN_PREFIX) {
            return Ok(None);
        }
        let now = self.now();
        let find = |hash: String| {
            sqlx::query(
                "SELECT t.id AS token_id, t.scopes, t.last_used_at, u.id, u.email, u.role FROM access_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.disabled = 0",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
        };
        let (row, rekey) = match find(self.enforcement.hasher().hash(presented)).await? {
            Some(row) => (row, None),
            // During a server-secret rotation: made with the previous secret?
            None => match self.enforcement.hasher().rekey_for(presented) {
                Some(rekey) => match find(rekey.old_hash.clone()).await? {
                    Some(row) => (row, Some(rekey)),
                    None => return Ok(None),
                },
                None => return Ok(None),
            },
        };
        let token_id: String = row.try_get("token_id")?;
        if let Some(rekey) = rekey {
            self.rekey_access_token(&token_id, &rekey).await?;
        }
        // A script may call many times a second: its last use is kept to the minute, so
        // that using a token is a read, and a write at most once a minute.
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        if last_used.is_none_or(|t| now - t >= LAST_USED_PRECISION_MS) {
            sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token_id)
                .execute(&self.pool)
                .await?;
        }
        let user = UserView { id: row.try_get("id")?, email: row.try_get("email")?, role: enum_col(&row, "role")? };
        Ok(Some(Actor::with_scopes(user, channel, scopes_col(&row)?)))
    }
}

/// How precisely a token's last use is recorded.
const LAST_USED_PRECISION_MS: i64 = crate::time::MINUTE;

/// A stored scope list. One the server cannot read is an internal error, never a token
/// with more (or fewer) rights than it was made with.
fn scopes_col(row: &sqlx::any::AnyRow) -> Result<Scopes> {
    let column: String = row.try_get("scopes")?;
    Scopes::from_column(&column).map_err(|name| DomainError::Internal(format!("stored token scope {name:?}")))
}
