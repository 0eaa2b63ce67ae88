//! Federation in the portal: trusted issuers (admins register and disable them) and the
//! identities at them linked to profiles.

use leptos::prelude::*;
use portcullis_domain::model::{LinkedIdentity, TrustedIssuerView};

#[cfg(feature = "ssr")]
use super::Outcome;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, said, store};

#[server(endpoint = "list_issuers")]
pub async fn list_issuers() -> Result<Vec<TrustedIssuerView>, AppError> {
    let actor = actor().await?;
    store()?.list_issuers(&actor).await.map_err(domain)
}

/// The issuers an identity may be linked from, for the client page's admin form: the
/// enabled ones for an admin, none for anyone else (not an error: the page renders for
/// its owner too, and an error here would set the page's status).
#[server(endpoint = "issuer_choices")]
pub async fn issuer_choices() -> Result<Vec<TrustedIssuerView>, AppError> {
    let Some(user) = crate::ssr::current_user().await? else {
        return Ok(Vec::new());
    };
    if !user.is_admin() {
        return Ok(Vec::new());
    }
    let actor = portcullis_domain::access::Actor::new(user, portcullis_domain::access::Channel::Portal);
    let all = store()?.list_issuers(&actor).await.map_err(domain)?;
    Ok(all.into_iter().filter(|i| i.disabled_at.is_none()).collect())
}

/// `audiences` is separated by spaces, commas or lines; `algorithms[]` checkboxes arrive
/// as the ticked ones. Either `jwks_uri` or `jwks` is filled.
#[server(endpoint = "register_issuer")]
pub async fn register_issuer(
    issuer: String,
    jwks_uri: Option<String>,
    jwks: Option<String>,
    audiences: String,
    algorithms: Option<Vec<String>>,
    subject_claim: Option<String>,
) -> Result<TrustedIssuerView, AppError> {
    let actor = actor().await?;
    let state = crate::ssr::state()?;
    let new = portcullis_domain::model::NewTrustedIssuer {
        issuer,
        jwks_uri,
        jwks,
        audiences: audiences.split([' ', ',', '\n', '\r']).filter(|a| !a.is_empty()).map(str::to_owned).collect(),
        algorithms: algorithms.unwrap_or_default(),
        subject_claim,
    };
    let registered = state.register_issuer(&actor, new).await.map_err(domain)?;
    said(
        &actor,
        Outcome::Said(format!("{} is trusted. Link identities at it from a client's page.", registered.issuer)),
    )
    .await?;
    Ok(registered)
}

#[server(endpoint = "disable_issuer")]
pub async fn disable_issuer(issuer_id: String) -> Result<TrustedIssuerView, AppError> {
    let actor = actor().await?;
    let disabled = store()?.disable_issuer(&actor, &issuer_id).await.map_err(domain)?;
    let now = format!("{} is disabled: its tokens are refused from the next request.", disabled.issuer);
    said(&actor, Outcome::Said(now)).await?;
    Ok(disabled)
}

#[server(endpoint = "link_identity")]
pub async fn link_identity(profile_id: String, issuer_id: String, subject: String) -> Result<LinkedIdentity, AppError> {
    let actor = actor().await?;
    let linked = store()?.link_identity(&actor, &profile_id, &issuer_id, subject.trim()).await.map_err(domain)?;
    said(&actor, Outcome::Linked(linked.clone())).await?;
    Ok(linked)
}
