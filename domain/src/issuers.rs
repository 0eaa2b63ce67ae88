//! Trusted issuers (federation): registered, listed and disabled by admins; and the
//! identities at them linked to profiles, credentials of kind `federated` that are
//! listed, reviewed and revoked like every other credential.
//!
//! What a token from an issuer must satisfy is `crate::enforcement::federation`; here is
//! what an admin may register, checked before it is stored, so the snapshot never meets
//! an issuer it cannot use.

use serde_json::json;
use sqlx::Row;

use crate::access::{Access, Actor};
use crate::audit::{self, AdminEvent};
use crate::enforcement::{issuer_alg, parse_jwks, valid_subject_claim, MAX_SUBJECT};
use crate::error::Result;
use crate::model::{LinkedIdentity, NewTrustedIssuer, TrustedIssuerView};
use crate::scopes::Area;
use crate::store::{new_id, split_list, Store};
use crate::DomainError;

/// Audiences an issuer may be accepted for at most.
pub const MAX_AUDIENCES: usize = 10;
const MAX_TEXT: usize = 512;

fn invalid<T>(why: impl Into<String>) -> Result<T> {
    Err(DomainError::Invalid(why.into()))
}

/// A registration, checked: every refusal says what to change.
struct Checked {
    issuer: String,
    jwks_uri: Option<String>,
    jwks: Option<String>,
    audiences: Vec<String>,
    algorithms: Vec<String>,
    subject_claim: String,
}

fn check(new: NewTrustedIssuer) -> Result<Checked> {
    let issuer = new.issuer.trim().to_owned();
    if issuer.is_empty() || issuer.len() > MAX_TEXT || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("The issuer is its tokens' `iss`, exactly: up to 512 characters, no spaces.");
    }
    let jwks_uri = new.jwks_uri.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    let jwks = new.jwks.map(|j| j.trim().to_owned()).filter(|j| !j.is_empty());
    match (&jwks_uri, &jwks) {
        (Some(_), Some(_)) | (None, None) => {
            return invalid("Give either the issuer's JWKS URL or its JWKS (public keys), not both.");
        }
        (Some(uri), None) => {
            if !https_without_credentials(uri) || uri.len() > 2048 {
                return invalid(
                    "The JWKS URL must be an https URL without credentials in it: keys fetched over plain http could \
                     be anyone's.",
                );
            }
        }
        (None, Some(text)) => {
            parse_jwks(text).map_err(|e| DomainError::Invalid(e.0))?;
        }
    }
    let mut audiences: Vec<String> =
        new.audiences.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
    audiences.dedup();
    if audiences.is_empty() || audiences.len() > MAX_AUDIENCES {
        return invalid(format!(
            "Name 1 to {MAX_AUDIENCES} audiences: the `aud` values this issuer's tokens for Portcullis carry."
        ));
    }
    if audiences.iter().any(|a| a.len() > MAX_TEXT || a.chars().any(|c| c.is_whitespace() || c.is_control())) {
        return invalid("An audience is up to 512 characters, with no spaces.");
    }
    let mut algorithms: Vec<String> = new.algorithms.iter().map(|a| a.trim().to_owned()).collect();
    algorithms.sort();
    algorithms.dedup();
    if algorithms.is_empty() {
        return invalid("Choose the algorithms the issuer signs with: RS256, PS256, ES256 or EdDSA.");
    }
    if let Some(bad) = algorithms.iter().find(|a| issuer_alg(a).is_none()) {
        return invalid(format!(
            "{bad} is not accepted: only RS256, PS256, ES256 and EdDSA (asymmetric signatures; a shared secret \
             would let anyone holding it mint tokens)."
        ));
    }
    let subject_claim = new.subject_claim.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    let subject_claim = subject_claim.unwrap_or_else(|| "sub".to_owned());
    if !valid_subject_claim(&subject_claim) {
        return invalid(
            "The subject claim is the name of the claim that says who the caller is (`sub`, `azp`, `client_id`, …): \
             up to 64 letters, digits, `_`, `-`, `.` or `:`.",
        );
    }
    Ok(Checked { issuer, jwks_uri, jwks, audiences, algorithms, subject_claim })
}

fn view(r: &sqlx::any::AnyRow) -> Result<TrustedIssuerView> {
    let jwks: Option<String> = r.try_get("jwks")?;
    let static_keys = jwks
        .and_then(|j| parse_jwks(&j).ok())
        .map(|set| set.keys.into_iter().map(|k| k.thumbprint).collect())
        .unwrap_or_default();
    Ok(TrustedIssuerView {
        id: r.try_get("id")?,
        issuer: r.try_get("issuer")?,
        jwks_uri: r.try_get("jwks_uri")?,
        static_keys,
        audiences: split_list(&r.try_get::<String, _>("audiences")?, ' '),
        algorithms: split_list(&r.try_get::<String, _>("algorithms")?, ' '),
        subject_claim: r.try_get("subject_claim")?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
        linked: r.try_get("linked")?,
    })
}

const SELECT_ISSUERS: &str = "SELECT i.id, i.issuer, i.jwks_uri, i.jwks, i.audiences, i.algorithms, i.subject_claim,
        i.created_at, i.disabled_at,
        (SELECT COUNT(*) FROM credentials c WHERE c.issuer_id = i.id AND c.revoked_at IS NULL) AS linked
     FROM trusted_issuers i";

/// Whether `url` is one an issuer's keys or metadata may be fetched from: https, with a
/// host, and no credentials in it.
pub fn https_without_credentials(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "https" && u.host_str().is_some() && u.username().is_empty() && u.password().is_none()
    })
}

/// Whether `actor` may register a trusted issuer: an admin, with a token (if any) that
/// may write the catalog — the checks [`Store::register_issuer`] starts with, for a
/// caller that would fetch something on the actor's word first (discovery).
pub fn may_register_issuers(actor: &Actor) -> Result<()> {
    actor.permit(Area::Catalog, Access::Write)?;
    actor.require_admin()
}

impl Store {
    /// Registers an issuer whose tokens the gateway will accept for the identities
    /// linked to profiles (none yet). Admins only. `own_issuer` is this server's: its
    /// tokens are verified with its own keys, never trusted as another's.
    pub async fn register_issuer(
        &self,
        actor: &Actor,
        new: NewTrustedIssuer,
        own_issuer: &str,
    ) -> Result<TrustedIssuerView> {
        actor.permit(Area::Catalog, Access::Write)?;
        actor.require_admin()?;
        let c = check(new)?;
        if c.issuer == own_issuer {
            return invalid("That is this server's own issuer: its tokens are verified with its own keys.");
        }
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM trusted_issuers WHERE issuer = $1")
            .bind(&c.issuer)
            .fetch_optional(&self.pool)
            .await?;
        if taken.is_some() {
            return Err(DomainError::Conflict(format!("The issuer {} is registered already.", c.issuer)));
        }
        let id = new_id("is");
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO trusted_issuers (id, issuer, jwks_uri, jwks, audiences, algorithms, subject_claim, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&c.issuer)
        .bind(&c.jwks_uri)
        .bind(&c.jwks)
        .bind(c.audiences.join(" "))
        .bind(c.algorithms.join(" "))
        .bind(&c.subject_claim)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let summary = json!({
            "issuer": c.issuer, "jwks_uri": c.jwks_uri, "static_jwks": c.jwks.is_some(),
            "audiences": c.audiences, "algorithms": c.algorithms, "subject_claim": c.subject_claim,
        });
        let event = AdminEvent { action: "issuer.registered", target_type: "issuer", target_id: &id, summary };
        audit::record_by(&mut *tx, now, actor, event).await?;
        self.commit_and_publish(tx).await?;
        self.issuer(actor, &id).await
    }

    /// Every registered issuer, disabled ones too. Admins and the security team.
    pub async fn list_issuers(&self, actor: &Actor) -> Result<Vec<TrustedIssuerView>> {
        actor.permit(Area::Catalog, Access::Read)?;
        actor.require_security()?;
        let rows = sqlx::query(&format!("{SELECT_ISSUERS} ORDER BY i.created_at, i.id")).fetch_all(&self.pool).await?;
        rows.iter().map(view).collect()
    }

    pub async fn issuer(&self, actor: &Actor, id: &str) -> Result<TrustedIssuerView> {
        actor.permit(Area::Catalog, Access::Read)?;
        actor.require_security()?;
        let row = sqlx::query(&format!("{SELECT_ISSUERS} WHERE i.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(DomainError::NotFound)?;
        view(&row)
    }

    /// Stops trusting an issuer: from the next request its tokens are refused, whatever
    /// identity they name. Its links stay, for the record. Admins only; not undone (a
    /// new registration would be a new decision).
    pub async fn disable_issuer(&self, actor: &Actor, id: &str) -> Result<TrustedIssuerView> {
        actor.permit(Area::Catalog, Access::Write)?;
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let changed = sqlx::query("UPDATE trusted_issuers SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            drop(tx);
            self.issuer(actor, id).await?;
            return Err(DomainError::Conflict("This issuer is already disabled.".into()));
        }
        let event = AdminEvent { action: "issuer.disabled", target_type: "issuer", target_id: id, summary: json!({}) };
        audit::record_by(&mut *tx, now, actor, event).await?;
        self.commit_and_publish(tx).await?;
        self.issuer(actor, id).await
    }

    /// Links an identity at a trusted issuer (the value of its subject claim) to a
    /// profile: the issuer's tokens naming it are then accepted as the profile, with its
    /// grants, limits and audit. Admins only: a link decides whose tokens act as a
    /// client, which its developer cannot vouch for. One live link per identity.
    pub async fn link_identity(
        &self,
        actor: &Actor,
        profile_id: &str,
        issuer_id: &str,
        subject: &str,
    ) -> Result<LinkedIdentity> {
        actor.permit(Area::Clients, Access::Write)?;
        actor.require_admin()?;
        let profile = self.owned_profile(actor, profile_id, Access::Write).await?;
        if subject.is_empty() || subject.len() > MAX_SUBJECT || subject.chars().any(char::is_control) {
            return invalid(format!(
                "The subject is the value of the issuer's subject claim for this agent: 1 to {MAX_SUBJECT} characters."
            ));
        }
        let issuer = sqlx::query("SELECT issuer, subject_claim, disabled_at FROM trusted_issuers WHERE id = $1")
            .bind(issuer_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DomainError::Invalid(format!("There is no trusted issuer {issuer_id}.")))?;
        if issuer.try_get::<Option<i64>, _>("disabled_at")?.is_some() {
            return Err(DomainError::Conflict("This issuer is disabled: its tokens are not accepted.".into()));
        }
        let (iss, claim): (String, String) = (issuer.try_get("issuer")?, issuer.try_get("subject_claim")?);
        let now = self.now();
        let linked: Option<String> = sqlx::query_scalar(
            "SELECT p.client_id FROM credentials c JOIN profiles p ON p.id = c.profile_id
             WHERE c.issuer_id = $1 AND c.external_subject = $2 AND c.kind = 'federated' AND c.revoked_at IS NULL",
        )
        .bind(issuer_id)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        if linked.is_some() {
            return Err(DomainError::Conflict(
                "This identity is linked to a profile already: revoke that link first. A token means one client."
                    .into(),
            ));
        }
        let id = new_id("cr");
        let expires_at = now + self.policy.credential_lifetime_ms;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO credentials (id, profile_id, kind, prefix, secret_hash, created_at, expires_at, issuer_id,
                                      external_subject)
             VALUES ($1, $2, 'federated', $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&profile.id)
        .bind(subject)
        .bind(format!("fed:{id}"))
        .bind(now)
        .bind(expires_at)
        .bind(issuer_id)
        .bind(subject)
        .execute(&mut *tx)
        .await;
        // Two admins linking the same identity at once: the unique index decides.
        inserted.map_err(|e| DomainError::lost_race(e, || "This identity was just linked to a profile.".into()))?;
        let summary = json!({
            "profile_id": profile.id, "kind": "federated", "issuer_id": issuer_id, "issuer": iss,
            "subject_claim": claim, "subject": subject, "expires_at": expires_at,
        });
        let event = AdminEvent { action: "credential.issued", target_type: "credential", target_id: &id, summary };
        audit::record_by(&mut *tx, now, actor, event).await?;
        self.commit_and_publish(tx).await?;
        Ok(LinkedIdentity {
            credential_id: id,
            client_id: profile.client_id.clone(),
            profile_id: profile.id.clone(),
            environment: profile.environment,
            issuer_id: issuer_id.to_owned(),
            issuer: iss,
            subject_claim: claim,
            subject: subject.to_owned(),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> NewTrustedIssuer {
        NewTrustedIssuer {
            issuer: "https://login.example.com/t".into(),
            jwks_uri: Some("https://login.example.com/t/keys".into()),
            audiences: vec!["api://portcullis".into()],
            algorithms: vec!["RS256".into()],
            ..NewTrustedIssuer::default()
        }
    }

    #[test]
    fn a_registration_is_refused_with_what_to_change() {
        let refused = |patch: fn(&mut NewTrustedIssuer)| {
            let mut n = new();
            patch(&mut n);
            check(n).err().map(|e| e.to_string())
        };
        assert!(check(new()).is_ok());
        assert_eq!(check(new()).unwrap().subject_claim, "sub", "`sub` unless said otherwise");
        for (why, patch) in [
            (
                "plain http",
                (|n: &mut NewTrustedIssuer| n.jwks_uri = Some("http://login.example.com/keys".into())) as fn(&mut _),
            ),
            ("credentials in the URL", |n| n.jwks_uri = Some("https://u:p@login.example.com/keys".into())),
            ("not a URL", |n| n.jwks_uri = Some("login.example.com/keys".into())),
            ("no keys at all", |n| n.jwks_uri = None),
            ("both", |n| n.jwks = Some("{\"keys\":[]}".into())),
            ("a symmetric algorithm", |n| n.algorithms = vec!["HS256".into()]),
            ("`none`", |n| n.algorithms = vec!["none".into()]),
            ("no algorithm", |n| n.algorithms = vec![]),
            ("no audience", |n| n.audiences = vec![" ".into()]),
            ("eleven audiences", |n| n.audiences = (0..11).map(|i| format!("a{i}")).collect()),
            ("a spaced issuer", |n| n.issuer = "https://a b".into()),
            ("an empty issuer", |n| n.issuer = String::new()),
            ("`iss` as the subject", |n| n.subject_claim = Some("iss".into())),
            ("an unkeyed JWKS", |n| {
                n.jwks_uri = None;
                n.jwks = Some("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}".into());
            }),
        ] {
            assert!(refused(patch).is_some(), "{why} is refused");
        }
    }
}
