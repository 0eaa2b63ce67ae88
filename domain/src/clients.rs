//! Clients and their profiles, shown with their credentials. Issuing, rotating and
//! revoking credentials is in [`credentials`](super::credentials).
//!
//! Every public function takes the acting person and passes through
//! [`Actor::check_owner`]: there is no way to reach a client here without that check.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::access::{Access, Actor};
use crate::audit::{self, AdminEvent};
use crate::error::Result;
use crate::model::{
    ClientDetail, ClientKind, ClientSummary, CredentialKind, CredentialState, CredentialView, Environment,
    IssuedSecret, ProfileDetail,
};
use crate::scopes::Area;
use crate::store::{enum_col, new_id, Store};
use crate::DomainError;

pub const MAX_NAME_LEN: usize = 80;
pub const MAX_DESCRIPTION_LEN: usize = 1000;

/// The rate-limit policy a new profile starts with: (requests per minute, burst).
pub fn default_rate_limit(env: Environment) -> (i64, i64) {
    match env {
        Environment::Sandbox => (60, 20),
        Environment::Production => (600, 100),
    }
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub kind: ClientKind,
    pub description: String,
}

impl NewClient {
    fn validated(self) -> Result<Self> {
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(DomainError::Invalid("Give the client a name.".into()));
        }
        if name.chars().count() > MAX_NAME_LEN {
            return Err(DomainError::Invalid(format!("Keep the name under {MAX_NAME_LEN} characters.")));
        }
        let description = self.description.trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(DomainError::Invalid(format!("Keep the description under {MAX_DESCRIPTION_LEN} characters.")));
        }
        Ok(Self { name, kind: self.kind, description })
    }
}

/// What registering a client returns: its details and the sandbox secret, shown once.
#[derive(Debug, Clone)]
pub struct Registered {
    pub client: ClientDetail,
    pub secret: IssuedSecret,
}

/// The owner and environment of a profile, loaded to check access before acting on it.
pub(crate) struct ProfileRef {
    pub(crate) id: String,
    pub(crate) client_id: String,
    pub(crate) environment: Environment,
}

pub(crate) fn credential_state(
    row_expires: i64,
    rotated: Option<i64>,
    revoked: Option<i64>,
    now: i64,
    warn_ms: i64,
) -> CredentialState {
    if revoked.is_some() {
        CredentialState::Revoked
    } else if now >= row_expires {
        CredentialState::Expired
    } else if rotated.is_some() {
        CredentialState::Grace
    } else if row_expires - now <= warn_ms {
        CredentialState::Expiring
    } else {
        CredentialState::Active
    }
}

/// A value a profile's policy column is set to.
enum PolicyValue<'a> {
    Int(i64),
    Text(&'a str),
}

impl Store {
    pub async fn register_client(&self, actor: &Actor, new: NewClient) -> Result<Registered> {
        actor.permit(Area::Clients, Access::Write)?;
        let new = new.validated()?;
        let now = self.now();
        let client_id = new_id("cl");
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO clients (id, owner_id, name, kind, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&client_id)
        .bind(actor.id())
        .bind(&new.name)
        .bind(new.kind.as_str())
        .bind(&new.description)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::record_by(
            &mut *tx,
            now,
            actor,
            AdminEvent {
                action: "client.created",
                target_type: "client",
                target_id: &client_id,
                summary: json!({ "name": new.name, "kind": new.kind.as_str() }),
            },
        )
        .await?;
        let secret = self.insert_profile(&mut tx, actor, &client_id, Environment::Sandbox).await?;
        self.commit_and_publish(tx).await?;
        let client = self.client_detail(actor, &client_id).await?;
        Ok(Registered { client, secret })
    }

    /// Adds the production (or a missing sandbox) profile, with its first client secret.
    pub async fn add_profile(&self, actor: &Actor, client_id: &str, env: Environment) -> Result<IssuedSecret> {
        actor.permit(Area::Clients, Access::Write)?;
        self.owned_client(actor, client_id, Access::Write).await?;
        let mut tx = self.begin().await?;
        let existing = sqlx::query("SELECT 1 FROM profiles WHERE client_id = $1 AND environment = $2")
            .bind(client_id)
            .bind(env.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let exists = || DomainError::Conflict(format!("This client already has a {} profile.", env.as_str()));
        if existing.is_some() {
            return Err(exists());
        }
        // Two requests at once both find none; the unique (client, environment) decides.
        let secret = self.insert_profile(&mut tx, actor, client_id, env).await.map_err(|e| match e {
            DomainError::Conflict(_) => exists(),
            e => e,
        })?;
        self.commit_and_publish(tx).await?;
        Ok(secret)
    }

    async fn insert_profile(
        &self,
        tx: &mut Transaction<'_, Any>,
        actor: &Actor,
        client_id: &str,
        env: Environment,
    ) -> Result<IssuedSecret> {
        let now = self.now();
        let profile_id = new_id("pf");
        let (rate, burst) = default_rate_limit(env);
        sqlx::query(
            "INSERT INTO profiles (id, client_id, environment, rate_per_minute, burst, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&profile_id)
        .bind(client_id)
        .bind(env.as_str())
        .bind(rate)
        .bind(burst)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        audit::record_by(
            &mut **tx,
            now,
            actor,
            AdminEvent {
                action: "profile.created",
                target_type: "profile",
                target_id: &profile_id,
                summary: json!({ "client_id": client_id, "environment": env.as_str(), "rate_per_minute": rate, "burst": burst }),
            },
        )
        .await?;
        let profile = ProfileRef { id: profile_id, client_id: client_id.to_owned(), environment: env };
        self.insert_credential(tx, actor, &profile, CredentialKind::ClientSecret).await
    }

    /// Sets a profile's rate-limit policy (admins only): requests per minute and burst.
    pub async fn set_rate_limit(
        &self,
        actor: &Actor,
        profile_id: &str,
        rate_per_minute: i64,
        burst: i64,
    ) -> Result<()> {
        actor.permit(Area::Clients, Access::Write)?;
        actor.require_admin()?;
        if !(1..=1_000_000).contains(&rate_per_minute) || !(1..=100_000).contains(&burst) {
            return Err(DomainError::Invalid(
                "The rate is 1 to 1,000,000 requests per minute and the burst 1 to 100,000.".into(),
            ));
        }
        let set = [("rate_per_minute", PolicyValue::Int(rate_per_minute)), ("burst", PolicyValue::Int(burst))];
        let summary = json!({ "rate_per_minute": rate_per_minute, "burst": burst });
        self.change_profile_policy(actor, profile_id, &set, "profile.rate_limit_changed", summary).await
    }

    /// Sets how long the profile's access tokens live. Short by default (15 minutes): a
    /// token cannot be recalled from an agent that copied it, only refused once revoked.
    pub async fn set_token_lifetime(&self, actor: &Actor, profile_id: &str, seconds: i64) -> Result<()> {
        actor.permit(Area::Clients, Access::Write)?;
        actor.require_admin()?;
        if !(crate::enforcement::MIN_TOKEN_TTL_SECS..=crate::enforcement::MAX_TOKEN_TTL_SECS).contains(&seconds) {
            return Err(DomainError::Invalid(format!(
                "A token lives {} to {} seconds.",
                crate::enforcement::MIN_TOKEN_TTL_SECS,
                crate::enforcement::MAX_TOKEN_TTL_SECS
            )));
        }
        let set = [("token_ttl_seconds", PolicyValue::Int(seconds))];
        let summary = json!({ "token_ttl_seconds": seconds });
        self.change_profile_policy(actor, profile_id, &set, "profile.token_lifetime_changed", summary).await
    }

    /// Sets whether the profile accepts only sender-constrained (DPoP-bound) tokens. With
    /// `dpop`, bearer tokens and API keys of the profile are refused from the next
    /// request on, on every channel, and the token endpoint issues only bound tokens.
    pub async fn set_sender_constraint(
        &self,
        actor: &Actor,
        profile_id: &str,
        constraint: crate::model::SenderConstraint,
    ) -> Result<()> {
        actor.permit(Area::Clients, Access::Write)?;
        actor.require_admin()?;
        let set = [("sender_constraint", PolicyValue::Text(constraint.as_str()))];
        let summary = json!({ "sender_constraint": constraint.as_str() });
        self.change_profile_policy(actor, profile_id, &set, "profile.sender_constraint_changed", summary).await
    }

    /// Who may act on behalf of the profile's client through token exchange (RFC 8693
    /// `may_act`): any client holding one of its tokens (`None`, the default), or only
    /// the clients listed (none: nobody). Its owner decides, or an admin. From the next
    /// request, a delegated token whose chain names a client no longer allowed is refused.
    pub async fn set_may_act(&self, actor: &Actor, profile_id: &str, actors: Option<Vec<String>>) -> Result<()> {
        actor.permit(Area::Clients, Access::Write)?;
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        let value = match &actors {
            None => ANY_ACTOR.to_owned(),
            Some(list) => {
                let mut list: Vec<&str> = list.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
                list.sort_unstable();
                list.dedup();
                if list.len() > MAX_MAY_ACT {
                    return Err(DomainError::Invalid(format!("Name at most {MAX_MAY_ACT} clients.")));
                }
                for id in &list {
                    if *id == profile.client_id {
                        return Err(DomainError::Invalid("A client never acts on its own behalf.".into()));
                    }
                    let known: Option<String> = sqlx::query_scalar("SELECT id FROM clients WHERE id = $1")
                        .bind(*id)
                        .fetch_optional(&self.pool)
                        .await?;
                    if known.is_none() {
                        return Err(DomainError::Invalid(format!("There is no client {id}.")));
                    }
                }
                list.join(" ")
            }
        };
        let set = [("may_act", PolicyValue::Text(&value))];
        let summary = json!({ "may_act": may_act(&value) });
        self.change_profile_policy(actor, profile_id, &set, "profile.may_act_changed", summary).await
    }

    /// A change to a profile's policy by an admin, or by its owner where the caller allows
    /// it (the caller checked who may and what is valid): the columns set and the audit event in one transaction, then announced to
    /// every replica, which apply it from the next request.
    async fn change_profile_policy(
        &self,
        actor: &Actor,
        profile_id: &str,
        set: &[(&'static str, PolicyValue<'_>)],
        action: &'static str,
        summary: serde_json::Value,
    ) -> Result<()> {
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        let now = self.now();
        let columns: Vec<String> = set.iter().enumerate().map(|(i, (c, _))| format!("{c} = ${}", i + 1)).collect();
        let sql = format!("UPDATE profiles SET {} WHERE id = ${}", columns.join(", "), set.len() + 1);
        let mut update = sqlx::query(&sql);
        for (_, value) in set {
            update = match value {
                PolicyValue::Int(v) => update.bind(*v),
                PolicyValue::Text(v) => update.bind(*v),
            };
        }
        let mut tx = self.begin().await?;
        update.bind(&profile.id).execute(&mut *tx).await?;
        let event = AdminEvent { action, target_type: "profile", target_id: &profile.id, summary };
        audit::record_by(&mut *tx, now, actor, event).await?;
        self.commit_and_publish(tx).await?;
        Ok(())
    }

    /// The clients this person owns, newest first. (Reviewing everyone's clients is the
    /// security console's job, not this list's.)
    pub async fn list_clients(&self, actor: &Actor) -> Result<Vec<ClientSummary>> {
        actor.permit(Area::Clients, Access::Read)?;
        let rows = sqlx::query(
            "SELECT c.id, c.name, c.kind, c.description, c.created_at, c.suspended, u.email AS owner_email FROM clients c
             JOIN users u ON u.id = c.owner_id WHERE c.owner_id = $1 ORDER BY c.created_at DESC, c.id DESC",
        )
        .bind(actor.id())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let environments = self.environments(&id).await?;
            out.push(summary(row, environments)?);
        }
        Ok(out)
    }

    async fn environments(&self, client_id: &str) -> Result<Vec<Environment>> {
        let rows = sqlx::query("SELECT environment FROM profiles WHERE client_id = $1 ORDER BY environment DESC")
            .bind(client_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| enum_col(r, "environment")).collect()
    }

    pub async fn client_detail(&self, actor: &Actor, client_id: &str) -> Result<ClientDetail> {
        actor.permit(Area::Clients, Access::Read)?;
        let row = self.owned_client(actor, client_id, Access::Read).await?;
        let profile_rows = sqlx::query(
            "SELECT id, environment, rate_per_minute, burst, token_ttl_seconds, sender_constraint, may_act, created_at
             FROM profiles WHERE client_id = $1 ORDER BY environment DESC",
        )
        .bind(client_id)
        .fetch_all(&self.pool)
        .await?;
        let now = self.now();
        let mut profiles = Vec::with_capacity(profile_rows.len());
        for p in &profile_rows {
            let id: String = p.try_get("id")?;
            let credentials = sqlx::query(
                "SELECT id, kind, prefix, created_at, expires_at, rotated_at, revoked_at, last_used_at FROM credentials
                 WHERE profile_id = $1 ORDER BY created_at DESC, id DESC",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|c| credential_view(c, now, self.policy.expiry_warning_ms))
            .collect::<Result<Vec<_>>>()?;
            let grants = self.grants_of_profile(&id).await?;
            profiles.push(ProfileDetail {
                id,
                client_id: client_id.to_owned(),
                environment: enum_col(p, "environment")?,
                rate_per_minute: p.try_get("rate_per_minute")?,
                token_ttl_seconds: p.try_get("token_ttl_seconds")?,
                sender_constraint: enum_col(p, "sender_constraint")?,
                may_act: may_act(&p.try_get::<String, _>("may_act")?),
                burst: p.try_get("burst")?,
                created_at: p.try_get("created_at")?,
                credentials,
                grants,
            });
        }
        let environments = profiles.iter().map(|p| p.environment).collect();
        Ok(ClientDetail { client: summary(&row, environments)?, profiles })
    }

    /// Loads a client after checking the actor may access it.
    pub(crate) async fn owned_client(&self, actor: &Actor, client_id: &str, access: Access) -> Result<AnyRow> {
        let row = sqlx::query(
            "SELECT c.id, c.owner_id, c.name, c.kind, c.description, c.created_at, c.suspended, u.email AS owner_email FROM clients c
             JOIN users u ON u.id = c.owner_id WHERE c.id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(DomainError::NotFound)?;
        actor.check_owner(&row.try_get::<String, _>("owner_id")?, access)?;
        Ok(row)
    }

    pub(crate) async fn owned_profile(&self, actor: &Actor, profile_id: &str, access: Access) -> Result<ProfileRef> {
        let row = sqlx::query(
            "SELECT p.id, p.client_id, p.environment, c.owner_id FROM profiles p JOIN clients c ON c.id = p.client_id WHERE p.id = $1",
        )
        .bind(profile_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(DomainError::NotFound)?;
        actor.check_owner(&row.try_get::<String, _>("owner_id")?, access)?;
        Ok(ProfileRef {
            id: row.try_get("id")?,
            client_id: row.try_get("client_id")?,
            environment: enum_col(&row, "environment")?,
        })
    }

    /// The profiles a person may request products for: those of their own clients.
    pub async fn requestable_profiles(&self, actor: &Actor) -> Result<Vec<crate::model::ProfileOption>> {
        actor.permit(Area::Clients, Access::Read)?;
        let rows = sqlx::query(
            "SELECT p.id, p.client_id, c.name, p.environment FROM profiles p JOIN clients c ON c.id = p.client_id
             WHERE c.owner_id = $1 ORDER BY c.name, p.environment DESC",
        )
        .bind(actor.id())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::ProfileOption {
                    profile_id: r.try_get("id")?,
                    client_id: r.try_get("client_id")?,
                    client_name: r.try_get("name")?,
                    environment: enum_col(r, "environment")?,
                })
            })
            .collect()
    }
}

fn summary(row: &AnyRow, environments: Vec<Environment>) -> Result<ClientSummary> {
    Ok(ClientSummary {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: enum_col(row, "kind")?,
        description: row.try_get("description")?,
        owner_email: row.try_get("owner_email")?,
        created_at: row.try_get("created_at")?,
        environments,
        suspended: crate::store::flag(row, "suspended")?,
    })
}

fn credential_view(row: &AnyRow, now: i64, warn_ms: i64) -> Result<CredentialView> {
    let expires_at: i64 = row.try_get("expires_at")?;
    let rotated_at: Option<i64> = row.try_get("rotated_at")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    Ok(CredentialView {
        id: row.try_get("id")?,
        kind: enum_col(row, "kind")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        expires_at,
        revoked_at,
        rotated_at,
        last_used_at: row.try_get("last_used_at")?,
        state: credential_state(expires_at, rotated_at, revoked_at, now, warn_ms),
    })
}

/// `profiles.may_act` as stored: `*` for any client, else client ids separated by spaces.
const ANY_ACTOR: &str = "*";
/// Clients one profile may name as its actors.
const MAX_MAY_ACT: usize = 32;

/// The clients a stored `may_act` allows; `None`: any.
pub(crate) fn may_act(stored: &str) -> Option<Vec<String>> {
    (stored != ANY_ACTOR).then(|| stored.split_whitespace().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_states() {
        let warn = 14;
        assert_eq!(credential_state(100, None, None, 10, warn), CredentialState::Active);
        assert_eq!(credential_state(100, None, None, 90, warn), CredentialState::Expiring);
        assert_eq!(credential_state(100, Some(5), None, 10, warn), CredentialState::Grace);
        assert_eq!(credential_state(100, Some(5), None, 100, warn), CredentialState::Expired);
        assert_eq!(credential_state(100, None, Some(5), 10, warn), CredentialState::Revoked);
    }
}
