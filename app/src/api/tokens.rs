//! The tokens page: personal access tokens.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::{days_field, Outcome};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, fail, said, store};

#[server(endpoint = "list_tokens")]
pub async fn list_tokens() -> Result<Vec<portcullis_domain::model::AccessTokenView>, AppError> {
    let actor = actor().await?;
    store()?.list_access_tokens(&actor).await.map_err(domain)
}

/// The token form's scopes: one field per area (`access[clients]` and so on), each
/// `none`, `read` or `write`. Anything else is refused, never read as "none".
#[cfg(feature = "ssr")]
fn chosen_scopes(
    access: &std::collections::BTreeMap<String, String>,
) -> Result<portcullis_domain::scopes::Scopes, AppError> {
    let mut names = Vec::new();
    for (area, level) in access {
        match level.as_str() {
            "none" => {}
            "read" | "write" => names.push(format!("{area}:{level}")),
            _ => return Err(fail(AppError::Invalid(format!("Choose none, read or write for {area}.")))),
        }
    }
    portcullis_domain::scopes::Scopes::parse(&names)
        .map_err(|name| fail(AppError::Invalid(format!("There is no scope {name}."))))
}

/// `days` comes from a form field; empty means the default lifetime.
#[server(endpoint = "create_token")]
pub async fn create_token(
    name: String,
    days: String,
    access: std::collections::BTreeMap<String, String>,
) -> Result<portcullis_domain::model::IssuedToken, AppError> {
    let actor = actor().await?;
    let days = days_field(&days, "The lifetime")?;
    let scopes = chosen_scopes(&access)?;
    let token = store()?.create_access_token(&actor, &name, days, scopes).await.map_err(domain)?;
    crate::ssr::outcome_on("/tokens", &actor, &Outcome::Token(token.clone())).await?;
    Ok(token)
}

#[server(endpoint = "revoke_token")]
pub async fn revoke_token(token_id: String) -> Result<(), AppError> {
    let actor = actor().await?;
    store()?.revoke_access_token(&actor, &token_id).await.map_err(domain)?;
    said(&actor, Outcome::Said("Token revoked. Scripts using it are refused from their next call.".into())).await
}
