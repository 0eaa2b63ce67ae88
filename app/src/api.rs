//! Server functions: the portal's calls to the server. Each is thin: find the actor,
//! call the domain, translate its error. Endpoints are named so that the integration
//! tests (and anyone reading the network tab) can recognise them.

use leptos::prelude::*;
use portcullis_domain::model::{ClientDetail, ClientSummary, GrantView, IssuedSecret, ProductView, UserView};
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, fail, store};

#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    crate::ssr::current_user().await
}

/// Where to go after signing in or up: `next` when it is a path on this site, else the
/// client list. Anything that could leave the site (`//host`, `/\\host`, a scheme) or
/// smuggle a header is refused.
pub fn after_sign_in(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_owned()
        }
        _ => "/clients".to_owned(),
    }
}

#[server(endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::ssr::record_door;
    use portcullis_domain::audit::DoorEvent;
    let state = crate::ssr::state()?;
    let ip = crate::ssr::client_ip().await;
    if let Err(throttled) = state.throttle.check(&email, ip) {
        if state.throttle.first_throttled(ip) {
            record_door(DoorEvent::SignInThrottled { email: &email }, ip).await;
        }
        return Err(fail(throttled));
    }
    let user = state.store.authenticate(&email, password).await.map_err(domain)?;
    let Some(user) = user else {
        record_door(DoorEvent::SignInFailed { email: &email }, ip).await;
        return Err(fail(AppError::Invalid("That email and password do not match an account.".into())));
    };
    record_door(DoorEvent::SignedIn(&user), ip).await;
    crate::ssr::sign_in_session(&user).await?;
    leptos_axum::redirect(&after_sign_in(next.as_deref()));
    Ok(())
}

#[server(endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use portcullis_domain::model::Role;
    let state = crate::ssr::state()?;
    state.throttle.check(&email, crate::ssr::client_ip().await).map_err(fail)?;
    let user = state
        .store
        .create_user(&email, password, Role::Developer, None, portcullis_domain::access::Channel::Portal)
        .await
        .map_err(domain)?;
    crate::ssr::sign_in_session(&user).await?;
    leptos_axum::redirect(&after_sign_in(next.as_deref()));
    Ok(())
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    if let Some(user) = crate::ssr::current_user().await? {
        let ip = crate::ssr::client_ip().await;
        crate::ssr::record_door(portcullis_domain::audit::DoorEvent::SignedOut(&user), ip).await;
    }
    crate::ssr::sign_out_session().await?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(endpoint = "list_clients")]
pub async fn list_clients() -> Result<Vec<ClientSummary>, AppError> {
    let actor = actor().await?;
    store()?.list_clients(&actor).await.map_err(domain)
}

/// What registering a client answers: the new client's ids and its secret, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub client_id: String,
    pub client_name: String,
    pub secret: IssuedSecret,
}

/// Which act issued a secret to a client's profile, for the words shown with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Issued {
    Rotated,
    ApiKey,
    Profile,
}

/// A secret issued by a plain form post (no JavaScript), shown once on the page the post
/// redirects to. With JavaScript the secret is the server function's answer instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revealed {
    Registered(Registration),
    Issued(Issued, IssuedSecret),
    Token(portcullis_domain::model::IssuedToken),
}

/// The secret waiting for `page` after a plain form post, once; `None` when none waits.
#[server(endpoint = "take_reveal")]
pub async fn take_reveal(page: String) -> Result<Option<Revealed>, AppError> {
    crate::ssr::take_reveal(&page).await
}

#[server(endpoint = "register_client")]
pub async fn register_client(name: String, kind: String, description: String) -> Result<Registration, AppError> {
    use portcullis_domain::clients::NewClient;
    let actor = actor().await?;
    let kind = kind.parse().map_err(domain)?;
    let registered = store()?.register_client(&actor, NewClient { name, kind, description }).await.map_err(domain)?;
    let done = Registration {
        client_id: registered.client.client.id,
        client_name: registered.client.client.name,
        secret: registered.secret,
    };
    let page = format!("/clients/{}", done.client_id);
    crate::ssr::reveal_on(&page, &actor, &Revealed::Registered(done.clone())).await?;
    Ok(done)
}

/// Answers a secret issued to `client_id`'s profile, or sends a plain form post to the
/// client's page to see it there.
#[cfg(feature = "ssr")]
async fn issued(
    actor: &portcullis_domain::access::Actor,
    what: Issued,
    secret: IssuedSecret,
) -> Result<IssuedSecret, AppError> {
    let page = format!("/clients/{}", secret.client_id);
    crate::ssr::reveal_on(&page, actor, &Revealed::Issued(what, secret.clone())).await?;
    Ok(secret)
}

#[server(endpoint = "get_client")]
pub async fn get_client(client_id: String) -> Result<ClientDetail, AppError> {
    let actor = actor().await?;
    store()?.client_detail(&actor, &client_id).await.map_err(domain)
}

#[server(endpoint = "add_profile")]
pub async fn add_profile(client_id: String, environment: String) -> Result<IssuedSecret, AppError> {
    let actor = actor().await?;
    let env: portcullis_domain::model::Environment = environment.parse().map_err(domain)?;
    let secret = store()?.add_profile(&actor, &client_id, env).await.map_err(domain)?;
    issued(&actor, Issued::Profile, secret).await
}

#[server(endpoint = "rotate_secret")]
pub async fn rotate_secret(profile_id: String) -> Result<IssuedSecret, AppError> {
    let actor = actor().await?;
    let secret = store()?.rotate_secret(&actor, &profile_id).await.map_err(domain)?;
    issued(&actor, Issued::Rotated, secret).await
}

#[server(endpoint = "issue_api_key")]
pub async fn issue_api_key(profile_id: String) -> Result<IssuedSecret, AppError> {
    let actor = actor().await?;
    let secret = store()?.issue_api_key(&actor, &profile_id).await.map_err(domain)?;
    issued(&actor, Issued::ApiKey, secret).await
}

#[server(endpoint = "revoke_credential")]
pub async fn revoke_credential(credential_id: String) -> Result<(), AppError> {
    let actor = actor().await?;
    store()?.revoke_credential(&actor, &credential_id).await.map_err(domain)
}

pub use portcullis_domain::model::ProfileOption;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub products: Vec<ProductView>,
    pub profiles: Vec<ProfileOption>,
}

#[server(endpoint = "get_catalog")]
pub async fn get_catalog() -> Result<Catalog, AppError> {
    let actor = actor().await?;
    let store = store()?;
    let products = store.list_products(&actor).await.map_err(domain)?;
    let profiles = store.requestable_profiles(&actor).await.map_err(domain)?;
    Ok(Catalog { products, profiles })
}

/// `scopes[]` checkboxes arrive as a list of the ticked ones (absent when none is).
#[server(endpoint = "request_access")]
pub async fn request_access(
    profile_id: String,
    product_id: String,
    scopes: Option<Vec<String>>,
    justification: String,
) -> Result<GrantView, AppError> {
    let actor = actor().await?;
    let scopes = scopes.unwrap_or_default();
    store()?.request_grant(&actor, &profile_id, &product_id, &scopes, &justification).await.map_err(domain)
}

#[server(endpoint = "pending_grants")]
pub async fn pending_grants() -> Result<Vec<GrantView>, AppError> {
    let actor = actor().await?;
    store()?.pending_grants(&actor).await.map_err(domain)
}

/// A form field holding a number of days; empty means "not given".
#[cfg(feature = "ssr")]
fn days_field(text: &str, what: &str) -> Result<Option<i64>, AppError> {
    match text.trim() {
        "" => Ok(None),
        d => d.parse().map(Some).map_err(|_| fail(AppError::Invalid(format!("{what} is a number of days.")))),
    }
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
    store()?.decide_grant(&actor, &grant_id, approve, &reason, days).await.map_err(domain)
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
    crate::ssr::reveal_on("/tokens", &actor, &Revealed::Token(token.clone())).await?;
    Ok(token)
}

#[server(endpoint = "revoke_token")]
pub async fn revoke_token(token_id: String) -> Result<(), AppError> {
    let actor = actor().await?;
    store()?.revoke_access_token(&actor, &token_id).await.map_err(domain)
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
    let tags = tags.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    let product = NewProduct { slug, name, description, owner, tags, sandbox_url, production_url };
    store()?.create_product(&actor, product, Vec::new()).await.map_err(domain)
}

#[server(endpoint = "import_openapi")]
pub async fn import_openapi(
    product_id: String,
    document: String,
) -> Result<portcullis_domain::model::ImportSummary, AppError> {
    let actor = actor().await?;
    store()?.import_openapi(&actor, &product_id, &document).await.map_err(domain)
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
    store()?.set_user_disabled(Authority::Admin(&actor), &user_id, disabled, &reason).await.map_err(domain)
}

/// `suspended` is `true` or `false`; the reason is kept in the audit trail.
#[server(endpoint = "set_client_suspended")]
pub async fn set_client_suspended(client_id: String, suspended: String, reason: String) -> Result<(), AppError> {
    use portcullis_domain::access::Authority;
    let actor = actor().await?;
    let suspended = suspended == "true";
    store()?.set_client_suspended(Authority::Admin(&actor), &client_id, suspended, &reason).await.map_err(domain)
}

#[server(endpoint = "set_user_role")]
pub async fn set_user_role(user_id: String, role: String) -> Result<UserView, AppError> {
    let actor = actor().await?;
    let role = role.parse().map_err(domain)?;
    store()?.set_user_role(&actor, &user_id, role).await.map_err(domain)
}

#[server(endpoint = "set_rate_limit")]
pub async fn set_rate_limit(profile_id: String, rate_per_minute: String, burst: String) -> Result<(), AppError> {
    let actor = actor().await?;
    let number = |v: &str, what: &str| {
        v.trim().parse::<i64>().map_err(|_| fail(AppError::Invalid(format!("The {what} is a whole number."))))
    };
    let (rate, burst) = (number(&rate_per_minute, "rate")?, number(&burst, "burst")?);
    store()?.set_rate_limit(&actor, &profile_id, rate, burst).await.map_err(domain)
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
    state.store.set_product_policy(&actor, &product_id, policy, &state.upstream_tls).await.map_err(domain)
}

/// The upstream TLS profiles this server has, which a product's gateway policy may name.
#[server(endpoint = "upstream_tls_profiles")]
pub async fn upstream_tls_profiles() -> Result<Vec<String>, AppError> {
    let actor = actor().await?;
    crate::ssr::state()?.upstream_tls.listed_for(&actor).map_err(domain)
}

#[server(endpoint = "set_token_lifetime")]
pub async fn set_token_lifetime(profile_id: String, seconds: String) -> Result<(), AppError> {
    let actor = actor().await?;
    let seconds = seconds
        .trim()
        .parse::<i64>()
        .map_err(|_| fail(AppError::Invalid("The token lifetime is a whole number of seconds.".into())))?;
    store()?.set_token_lifetime(&actor, &profile_id, seconds).await.map_err(domain)
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
    let tags = tags.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    let product = NewProduct { slug, name, description, owner, tags, sandbox_url, production_url };
    store()?.update_product(&actor, &product_id, product).await.map_err(domain)
}

#[server(endpoint = "recent_requests")]
pub async fn recent_requests(client_id: String) -> Result<Vec<portcullis_domain::model::RequestView>, AppError> {
    let actor = actor().await?;
    store()?.recent_requests(&actor, &client_id, 25).await.map_err(domain)
}

#[server(endpoint = "test_access")]
pub async fn test_access(
    profile_id: String,
    method: String,
    path: String,
) -> Result<portcullis_domain::model::TestAccessResult, AppError> {
    let actor = actor().await?;
    crate::ssr::test_access(&crate::ssr::state()?, &actor, &profile_id, &method, &path).await.map_err(domain)
}

/// The URL clients reach this Portcullis at (its token issuer), for examples.
#[server(endpoint = "public_url")]
pub async fn public_url() -> Result<String, AppError> {
    Ok(crate::ssr::state()?.tokens.issuer)
}

/// One page of the audit trail for the URL query `query` (the page's own query string,
/// parsed exactly as `GET /api/v1/audit` parses it).
#[server(endpoint = "search_audit")]
pub async fn search_audit(query: String) -> Result<portcullis_domain::model::AuditPage, AppError> {
    use portcullis_domain::audit_search::DEFAULT_PAGE;
    let actor = actor().await?;
    let filter = serde_urlencoded::from_str(query.trim_start_matches('?'))
        .map_err(|e| fail(AppError::Invalid(format!("The search could not be read: {e}"))))?;
    store()?.search_audit(&actor, &filter, DEFAULT_PAGE).await.map_err(domain)
}

/// One audit event, by row id or (from Test access) by request id.
#[server(endpoint = "audit_event")]
pub async fn audit_event(key: String, by_request: bool) -> Result<portcullis_domain::model::AuditRecord, AppError> {
    use portcullis_domain::audit_search::AuditKey;
    let actor = actor().await?;
    let store = store()?;
    if !by_request {
        let id = key.parse().map_err(|_| fail(AppError::NotFound))?;
        return store.audit_event(&actor, &AuditKey::Id(id)).await.map_err(domain);
    }
    // A request's row is written a moment after its response (the batch writer), and
    // Test access links to it at once: give the writer up to a second.
    // Only for what looks like one of our request ids (UUIDs), so that guessing costs
    // the guesser, not the server.
    let polls = if key.len() == 36 && key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') { 20 } else { 0 };
    let key = AuditKey::Request(key);
    for _ in 0..polls {
        match store.audit_event(&actor, &key).await {
            Err(portcullis_domain::DomainError::NotFound) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            other => return other.map_err(domain),
        }
    }
    store.audit_event(&actor, &key).await.map_err(domain)
}

/// What one client did over the last 30 days (its owner, security and admins).
#[server(endpoint = "client_activity")]
pub async fn client_activity(client_id: String) -> Result<portcullis_domain::model::ClientActivity, AppError> {
    let actor = actor().await?;
    store()?.client_activity(&actor, &client_id).await.map_err(domain)
}

/// The security team's overview of the last 30 days.
#[server(endpoint = "security_dashboard")]
pub async fn security_dashboard() -> Result<portcullis_domain::model::SecurityDashboard, AppError> {
    let actor = actor().await?;
    store()?.security_dashboard(&actor).await.map_err(domain)
}

/// Every client, flagged for review (security and admins).
#[server(endpoint = "access_review")]
pub async fn access_review() -> Result<Vec<portcullis_domain::model::ReviewClient>, AppError> {
    let actor = actor().await?;
    store()?.access_review(&actor).await.map_err(domain)
}

/// A reviewer's decision on one item. `action` is `revoke_credential` (target: the
/// credential), `end_grant` or `extend_grant` (target: the grant; `days` for an
/// extension) or `mark_reviewed` (target: the client). Each is audited with `reason`.
#[server(endpoint = "review_action")]
pub async fn review_action(
    action: String,
    target: String,
    reason: String,
    #[server(default)] days: Option<String>,
) -> Result<String, AppError> {
    let actor = actor().await?;
    let store = store()?;
    let done = match action.as_str() {
        "revoke_credential" => {
            store.review_revoke_credential(&actor, &target, &reason).await.map(|_| "Credential revoked.")
        }
        "end_grant" => store.review_end_grant(&actor, &target, &reason).await.map(|_| "Grant ended."),
        "extend_grant" => {
            let days = days
                .as_deref()
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(|_| fail(AppError::Invalid("Give the number of days.".into())))?;
            store.review_extend_grant(&actor, &target, days, &reason).await.map(|_| "Grant extended.")
        }
        "mark_reviewed" => store.mark_client_reviewed(&actor, &target, &reason).await.map(|_| "Marked reviewed."),
        _ => return Err(fail(AppError::Invalid("Unknown review action.".into()))),
    };
    done.map(str::to_owned).map_err(domain)
}
