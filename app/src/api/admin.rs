//! The admin pages: approvals, products (with OpenAPI import and gateway policy) and
//! people.

use leptos::prelude::*;
use portcullis_domain::model::{GrantView, ProductView, UserView};

#[cfg(feature = "ssr")]
use super::{days_field, Outcome};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, fail, said, store};

#[server(endpoint = "pending_grants")]
pub async fn pending_grants() -> Result<Vec<GrantView>, AppError> {
    let actor = actor().await?;
    store()?.pending_grants(&actor).await.map_err(domain)
}

/// `decision` is `approve` or `reject`.
#[server(endpoint = "decide_grant")]
pub async fn decide_grant(
    grant_id: String,
    decision: String,
    reason: String,
    days: Option<String>,
) -> Result<GrantView, AppError> {
    let actor = actor().await?;
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(fail(AppError::Invalid("The decision is `approve` or `reject`.".into()))),
    };
    let days = days_field(days.as_deref().unwrap_or_default(), "The expiry")?;
    let decided = store()?.decide_grant(&actor, &grant_id, approve, &reason, days).await.map_err(domain)?;
    said(&actor, Outcome::Decided(decided.clone())).await?;
    Ok(decided)
}

/// How many production requests wait for a decision: shown beside Approvals (admins).
#[server(endpoint = "pending_grant_count")]
pub async fn pending_grant_count() -> Result<usize, AppError> {
    // Asked by the top bar of every page: a visitor or a non-admin gets 0, not an error
    // (an error here would set the status of the page being rendered).
    let Some(user) = crate::ssr::current_user().await? else {
        return Ok(0);
    };
    if !user.is_admin() {
        return Ok(0);
    }
    let actor = portcullis_domain::access::Actor::new(user, portcullis_domain::access::Channel::Portal);
    Ok(store()?.pending_grants(&actor).await.map_err(domain)?.len())
}

#[server(endpoint = "list_products")]
pub async fn list_products() -> Result<Vec<ProductView>, AppError> {
    let actor = actor().await?;
    store()?.list_products(&actor).await.map_err(domain)
}

/// `tags` is a comma-separated list.
#[server(endpoint = "create_product")]
#[allow(clippy::too_many_arguments)]
pub async fn create_product(
    slug: String,
    name: String,
    description: String,
    owner: String,
    tags: String,
    sandbox_url: String,
    production_url: String,
) -> Result<ProductView, AppError> {
    use portcullis_domain::catalog::NewProduct;
    let actor = actor().await?;
    // The catalog trims, lowercases and drops empty tags.
    let tags = tags.split(',').map(str::to_owned).collect();
    let product = NewProduct { slug, name, description, owner, tags, sandbox_url, production_url };
    let created = store()?.create_product(&actor, product, Vec::new()).await.map_err(domain)?;
    said(&actor, Outcome::Said(format!("{} is published at /gw/{}/…", created.name, created.slug))).await?;
    Ok(created)
}

#[server(endpoint = "import_openapi")]
pub async fn import_openapi(
    product_id: String,
    document: String,
) -> Result<portcullis_domain::model::ImportSummary, AppError> {
    let actor = actor().await?;
    let summary = store()?.import_openapi(&actor, &product_id, &document).await.map_err(domain)?;
    let now = format!("OpenAPI imported: {} endpoints added, {} updated.", summary.added, summary.updated);
    said(&actor, Outcome::Said(now)).await?;
    Ok(summary)
}

#[server(endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<portcullis_domain::model::AccountView>, AppError> {
    let actor = actor().await?;
    store()?.list_users(&actor).await.map_err(domain)
}

/// `disabled` is `true` or `false`; the reason is kept in the audit trail.
#[server(endpoint = "set_user_disabled")]
pub async fn set_user_disabled(
    user_id: String,
    disabled: String,
    reason: String,
) -> Result<portcullis_domain::model::AccountView, AppError> {
    use portcullis_domain::access::Authority;
    let actor = actor().await?;
    let disabled = disabled == "true";
    let account =
        store()?.set_user_disabled(Authority::Admin(&actor), &user_id, disabled, &reason).await.map_err(domain)?;
    let what = if account.disabled { "disabled: their sessions, tokens and clients stop now" } else { "active again" };
    said(&actor, Outcome::Said(format!("{} is {what}.", account.user.email))).await?;
    Ok(account)
}

#[server(endpoint = "set_user_role")]
pub async fn set_user_role(user_id: String, role: String) -> Result<UserView, AppError> {
    let actor = actor().await?;
    let role = role.parse().map_err(domain)?;
    let user = store()?.set_user_role(&actor, &user_id, role).await.map_err(domain)?;
    said(&actor, Outcome::Said(format!("{} is now {}.", user.email, user.role.as_str()))).await?;
    Ok(user)
}

/// `upstream_tls` is the name of an upstream TLS profile, or empty (or absent) for the
/// default.
#[server(endpoint = "set_product_policy")]
pub async fn set_product_policy(
    product_id: String,
    rate_per_minute: String,
    api_key_in_query: Option<String>,
    upstream_tls: Option<String>,
) -> Result<ProductView, AppError> {
    use portcullis_domain::catalog::ProductPolicy;
    use portcullis_domain::upstream_tls::UpstreamTlsName;
    let actor = actor().await?;
    let rate = match rate_per_minute.trim() {
        "" => None,
        n => Some(n.parse::<i64>().map_err(|_| {
            fail(AppError::Invalid("The product's limit is a whole number of requests per minute, or empty.".into()))
        })?),
    };
    let upstream_tls = match upstream_tls.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(UpstreamTlsName::parse(name).map_err(domain)?),
    };
    let policy = ProductPolicy { rate_per_minute: rate, api_key_in_query: api_key_in_query.is_some(), upstream_tls };
    let state = crate::ssr::state()?;
    let product =
        state.store.set_product_policy(&actor, &product_id, policy, &state.upstream_tls).await.map_err(domain)?;
    said(&actor, Outcome::Said(format!("{}'s gateway policy is saved.", product.name))).await?;
    Ok(product)
}

/// The upstream TLS profiles this server has, which a product's gateway policy may name.
#[server(endpoint = "upstream_tls_profiles")]
pub async fn upstream_tls_profiles() -> Result<Vec<String>, AppError> {
    let actor = actor().await?;
    crate::ssr::state()?.upstream_tls.listed_for(&actor).map_err(domain)
}

#[server(endpoint = "update_product")]
#[allow(clippy::too_many_arguments)]
pub async fn update_product(
    product_id: String,
    slug: String,
    name: String,
    description: String,
    owner: String,
    tags: String,
    sandbox_url: String,
    production_url: String,
) -> Result<ProductView, AppError> {
    use portcullis_domain::catalog::NewProduct;
    let actor = actor().await?;
    // The catalog trims, lowercases and drops empty tags.
    let tags = tags.split(',').map(str::to_owned).collect();
    let product = NewProduct { slug, name, description, owner, tags, sandbox_url, production_url };
    let product = store()?.update_product(&actor, &product_id, product).await.map_err(domain)?;
    said(&actor, Outcome::Said(format!("{} is saved.", product.name))).await?;
    Ok(product)
}
