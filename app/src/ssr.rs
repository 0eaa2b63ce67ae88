//! Server-side plumbing for server functions: the shared state, the signed-in person,
//! and the translation of domain errors. Compiled only with the `ssr` feature.

use leptos::prelude::*;
use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::keyed::{identity_key, source_key, Limiter};
use portcullis_domain::model::UserView;
use portcullis_domain::store::Store;
use portcullis_domain::DomainError;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::Session;

use crate::error::AppError;

pub const SESSION_USER_KEY: &str = "uid";

/// What every server function can reach: provided as context by the server's router.
#[derive(Clone)]
pub struct PortalState {
    pub store: Store,
    pub throttle: Arc<LoginThrottle>,
    /// How this server issues tokens, and where its own gateway listens: "Test access"
    /// makes real gateway calls, over HTTP, like any client.
    pub tokens: portcullis_domain::enforcement::TokenSettings,
    pub gateway_base: String,
    pub http: reqwest::Client,
    /// The upstream TLS profiles this server was started with, which products may name.
    pub upstream_tls: portcullis_domain::upstream_tls::UpstreamTlsNames,
    /// How trusted issuers are reached (the gateway's client for their keys: https only,
    /// no redirects, a timeout): registering one may read its metadata first.
    pub issuer_http: reqwest::Client,
}

impl PortalState {
    /// Registers a trusted issuer (admins only). Given neither a JWKS URL nor a JWKS, the
    /// URL is read from the issuer's OpenID Provider metadata first (discovery), and the
    /// admin sees what was found; a provider that moves its keys' URL is registered anew.
    pub async fn register_issuer(
        &self,
        actor: &Actor,
        mut new: portcullis_domain::model::NewTrustedIssuer,
    ) -> Result<portcullis_domain::model::TrustedIssuerView, DomainError> {
        use portcullis_domain::enforcement::{discovery_url, jwks_uri_from_discovery, MAX_DISCOVERY_BYTES};
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|v| v.trim().is_empty());
        if blank(&new.jwks_uri) && blank(&new.jwks) {
            // Nothing is fetched on the word of someone who may not register issuers.
            portcullis_domain::issuers::may_register_issuers(actor)?;
            let issuer = new.issuer.trim();
            let url = discovery_url(issuer);
            // Only an issuer URL its keys could be fetched from is asked anything.
            if !portcullis_domain::issuers::https_without_credentials(&url) {
                return Err(DomainError::Invalid(format!(
                    "{issuer} is not an https URL without credentials, so its keys cannot be discovered: give its \
                     JWKS URL or its JWKS."
                )));
            }
            let found = fetch_capped(&self.issuer_http, &url, MAX_DISCOVERY_BYTES)
                .await
                .and_then(|document| jwks_uri_from_discovery(issuer, &document))
                .map_err(|why| {
                    DomainError::Invalid(format!(
                        "The keys of {issuer} could not be discovered: {why}. Give its JWKS URL or its JWKS instead."
                    ))
                })?;
            new.jwks_uri = Some(found);
        }
        self.store.register_issuer(actor, new, &self.tokens.issuer).await
    }
}

/// GETs `url` with `http` and reads at most `max` bytes of a successful answer: what is
/// read from another organisation's server is bounded before it is parsed.
pub async fn fetch_capped(http: &reqwest::Client, url: &str, max: usize) -> Result<Vec<u8>, String> {
    let mut response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let too_large = || format!("{url} sent more than {} KB", max / 1024);
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sign-in and sign-up attempts, limited per (account, address) and per address — never
/// per account alone, so that someone guessing a password from their address cannot lock
/// its owner out elsewhere. Keys are a fixed-size hash of the attempted email whether or
/// not an account exists: the limiter reveals nothing and a long email costs no memory.
pub struct LoginThrottle {
    per_account_source: Limiter<[u8; 16]>,
    per_source: Limiter<IpAddr>,
    /// Which addresses' throttled attempts were recorded this minute.
    recorded: portcullis_domain::keyed::OncePer,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        // 5 attempts at once per account and address, then three a minute; 30 per
        // address, then thirty a minute.
        Self {
            per_account_source: Limiter::new(3, 5, 100_000),
            per_source: Limiter::new(30, 30, 100_000),
            recorded: portcullis_domain::keyed::OncePer::new(Duration::from_secs(60), 100_000),
        }
    }
}

impl LoginThrottle {
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), AppError> {
        let ip = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.per_source.check(&source_key(ip)).map_err(|_| AppError::TooManyAttempts)?;
        self.per_account_source.check(&identity_key(email, ip)).map_err(|_| AppError::TooManyAttempts)
    }

    /// Whether a throttled attempt is its address's first this minute, so worth an audit
    /// event of its own (a flood of made-up emails from one address is one event).
    pub fn first_throttled(&self, ip: Option<IpAddr>) -> bool {
        self.recorded.first(&ip.map(|i| source_key(i).to_string()).unwrap_or_default())
    }
}

/// Records a door event (sign-in, sign-out) of the portal. A failure to record is
/// logged; the person's answer does not wait on it.
pub async fn record_door(event: portcullis_domain::audit::DoorEvent<'_>, ip: Option<IpAddr>) {
    if let Ok(store) = store() {
        if let Err(e) = store.record_door(event, Channel::Portal.as_str(), ip).await {
            tracing::error!(error = %e, "door event not recorded");
        }
    }
}

pub fn state() -> Result<PortalState, AppError> {
    use_context::<PortalState>().ok_or_else(|| {
        tracing::error!("PortalState missing from the server function context");
        AppError::Internal
    })
}

pub fn store() -> Result<Store, AppError> {
    Ok(state()?.store)
}

/// Sets the response status of the current server function and returns the error.
/// Only for a call to the server function itself (`/api/…`), not one made while a page
/// renders.
///
/// A form post is left alone: leptos answers it with a redirect back to the form
/// carrying the error (`?__err=`), which a 4xx status would break.
pub fn fail(err: AppError) -> AppError {
    // A server function also runs inside a page's render (its resources): the page's
    // status is the page's to decide (`PageError`), not that of whichever call failed.
    let called_directly =
        use_context::<axum::http::request::Parts>().is_some_and(|p| p.uri.path().starts_with("/api/"));
    if plain_form_post() || !called_directly {
        return err;
    }
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(
            axum::http::StatusCode::from_u16(err.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        );
    }
    err
}

/// Whether this server-function call is an HTML form the browser posted (every form of
/// the portal), whose answer is a page, not data.
pub fn plain_form_post() -> bool {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.headers.get(axum::http::header::ACCEPT)?.to_str().ok().map(|a| a.contains("text/html")))
        .unwrap_or(false)
}

/// Domain errors become portal errors here, and only here.
pub fn domain(err: DomainError) -> AppError {
    fail(match err {
        DomainError::NotFound => AppError::NotFound,
        DomainError::Forbidden(why) => AppError::Forbidden(format!("Not allowed: {why}.")),
        // The portal's session holds every scope; only a token lacks one.
        e @ DomainError::InsufficientScope(_) => AppError::Forbidden(format!("Not allowed: {e}.")),
        DomainError::Conflict(msg) => AppError::Conflict(msg),
        DomainError::Invalid(msg) => AppError::Invalid(msg),
        DomainError::Storage(e) => {
            tracing::error!(error = %e, "storage error in a server function");
            AppError::Internal
        }
        DomainError::Migration(e) => {
            tracing::error!(error = %e, "migration error in a server function");
            AppError::Internal
        }
        DomainError::Internal(e) => {
            tracing::error!(error = %e, "internal error in a server function");
            AppError::Internal
        }
    })
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|e| {
        tracing::error!(error = %e, "no session layer in front of the portal");
        fail(AppError::Internal)
    })
}

/// The address a request comes from, as the server decided it once for every route
/// (a trusted proxy's `X-Forwarded-For`, else the connection's peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub async fn client_ip() -> Option<IpAddr> {
    leptos_axum::extract::<axum::Extension<ClientIp>>().await.ok().map(|axum::Extension(ClientIp(ip))| ip)
}

fn session_err(e: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %e, "session store error");
    fail(AppError::Internal)
}

/// The signed-in person, if any.
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    let session = session().await?;
    let Some(uid) = session.get::<String>(SESSION_USER_KEY).await.map_err(session_err)? else {
        return Ok(None);
    };
    let user = store()?.active_user(&uid).await.map_err(domain)?;
    if user.is_none() {
        // The account was disabled or removed since sign-in: end the session.
        session.flush().await.map_err(session_err)?;
    }
    Ok(user)
}

/// The signed-in person as an actor, or `Unauthenticated`.
pub async fn actor() -> Result<Actor, AppError> {
    match current_user().await? {
        Some(user) => Ok(Actor::new(user, Channel::Portal)),
        None => Err(fail(AppError::Unauthenticated)),
    }
}

/// Starts a session for `user` under a fresh id, so a session id planted before sign-in
/// is worthless after it.
pub async fn sign_in_session(user: &UserView) -> Result<(), AppError> {
    let session = session().await?;
    session.cycle_id().await.map_err(session_err)?;
    session.insert(SESSION_USER_KEY, &user.id).await.map_err(session_err)
}

/// Where the outcome of a form post waits in the session: the path of the page that will
/// show it, and the outcome sealed for its person (see `portcullis_domain::reveal`): it
/// may hold a secret.
const SESSION_OUTCOME_KEY: &str = "outcome";

/// After a server function did something: when the call was a form post, whose answer
/// can only be a redirect, what it did waits sealed in the session and the browser is
/// sent to `page` (a path, with a query and a fragment or not), which shows it once
/// ([`take_outcome`]).
/// A call made with `fetch` gets the outcome in its answer, and nothing waits.
pub async fn outcome_on(page: &str, actor: &Actor, outcome: &crate::api::Outcome) -> Result<(), AppError> {
    if !plain_form_post() {
        return Ok(());
    }
    let plain = serde_json::to_vec(outcome).map_err(|e| {
        tracing::error!(error = %e, "an outcome to show did not serialize");
        fail(AppError::Internal)
    })?;
    let sealed = store()?.reveals().seal(&actor.user.id, &plain).map_err(domain)?;
    // A page built from a form's field (an anchor) could hold a control character, which
    // no Location header can: such a page is this site's start page.
    let page = if page.chars().any(char::is_control) { "/" } else { page };
    let path = page.split(['?', '#']).next().unwrap_or(page);
    session().await?.insert(SESSION_OUTCOME_KEY, (path, sealed)).await.map_err(session_err)?;
    leptos_axum::redirect(page);
    Ok(())
}

/// [`outcome_on`] the page the form was posted from, as its `Referer` names it (without
/// the error a previous post left in its query).
pub async fn said(actor: &Actor, outcome: crate::api::Outcome) -> Result<(), AppError> {
    said_at(actor, outcome, None).await
}

/// [`said`], and the browser scrolled to the element `anchor` names (its `id`): where
/// the page shows the outcome when that is not at its top.
pub async fn said_at(actor: &Actor, outcome: crate::api::Outcome, anchor: Option<&str>) -> Result<(), AppError> {
    if !plain_form_post() {
        return Ok(());
    }
    let referer = use_context::<axum::http::request::Parts>()
        .and_then(|p| p.headers.get(axum::http::header::REFERER)?.to_str().ok().map(str::to_owned));
    let back = back_to(referer.as_deref());
    let page = match anchor {
        Some(anchor) => format!("{back}#{anchor}"),
        None => back,
    };
    outcome_on(&page, actor, &outcome).await
}

/// The page a `Referer` names, as a path on this site (a path and a query) to send the
/// browser back to: without the `__err`/`__path` a refused post added, and `/` for
/// anything that is not a path here (so a redirect never leaves the site).
pub fn back_to(referer: Option<&str>) -> String {
    let Some(uri) = referer.and_then(|r| r.parse::<axum::http::Uri>().ok()) else {
        return "/".to_owned();
    };
    let path = uri.path();
    if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
        return "/".to_owned();
    }
    match crate::components::without_refusal(uri.query().unwrap_or_default()) {
        query if query.is_empty() => path.to_owned(),
        query => format!("{path}?{query}"),
    }
}

/// What waits for `page` (a path), removed as it is read: a reload shows nothing. One
/// waiting for another page stays (and dies at its deadline).
pub async fn take_outcome(page: &str) -> Result<Option<crate::api::Outcome>, AppError> {
    // The session is already loaded for this request: most page views end here, without
    // looking the person up.
    let session = session().await?;
    let Some((waits_for, sealed)) = session.get::<(String, String)>(SESSION_OUTCOME_KEY).await.map_err(session_err)?
    else {
        return Ok(None);
    };
    if waits_for != page {
        return Ok(None);
    }
    let Some(user) = current_user().await? else {
        return Ok(None);
    };
    session.remove_value(SESSION_OUTCOME_KEY).await.map_err(session_err)?;
    Ok(store()?.reveals().open(&user.id, &sealed).and_then(|plain| serde_json::from_slice(&plain).ok()))
}

pub async fn sign_out_session() -> Result<(), AppError> {
    session().await?.flush().await.map_err(session_err)
}

/// How much of a Test access answer is read: a test of a large download must not make
/// the portal hold it.
const TEST_ACCESS_MAX_BODY: usize = 64 * 1024;

/// Runs one real gateway call, over HTTP like any client, with a token issued for this
/// profile's own credential: the portal's "Test access" and `POST /api/v1/profiles/{id}/test-access`.
pub async fn test_access(
    portal: &PortalState,
    actor: &portcullis_domain::access::Actor,
    profile_id: &str,
    method: &str,
    path: &str,
) -> Result<portcullis_domain::model::TestAccessResult, DomainError> {
    use portcullis_domain::enforcement::ProofKey;
    use portcullis_domain::model::SenderConstraint;
    use portcullis_domain::{access::Access, scopes::Area};
    // Before the input is read: a token without the scope learns nothing from it.
    actor.permit(Area::Clients, Access::Write)?;
    let method = match method {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => method,
        _ => return Err(DomainError::Invalid("Choose GET, POST, PUT, PATCH or DELETE.".into())),
    };
    let path = path.trim();
    if !path.starts_with("/gw/") || path.chars().any(char::is_whitespace) {
        return Err(DomainError::Invalid("The path starts with /gw/, e.g. /gw/accounts/accounts.".into()));
    }
    // A profile that accepts only DPoP-bound tokens is tested as a DPoP client would
    // call: with a token bound to a key made for this test, and a proof of it.
    let snap = portal.store.enforcement().snapshot().current();
    let dpop = snap.profiles.get(profile_id).is_some_and(|p| p.sender_constraint == SenderConstraint::Dpop);
    let key = if dpop { Some(ProofKey::generate()?) } else { None };
    let jkt = key.as_ref().map(ProofKey::jkt);
    let token = portal.store.issue_token_for_profile(actor, &portal.tokens, profile_id, (method, path), jkt).await?;
    let url = format!("{}{path}", portal.gateway_base);
    let mut request = portal.http.request(
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| DomainError::Internal(e.to_string()))?,
        &url,
    );
    request = match &key {
        Some(key) => {
            // The proof names the public URL, which is what the gateway compares.
            let public = format!("{}{path}", portal.tokens.issuer);
            let proof = key.proof(method, &public, &token.token, portal.store.now())?;
            request.header("authorization", format!("DPoP {}", token.token)).header("dpop", proof)
        }
        None => request.bearer_auth(&token.token),
    };
    let mut res = request
        .send()
        .await
        .map_err(|e| DomainError::Internal(format!("test access: the gateway did not answer: {e}")))?;
    let status = res.status().as_u16();
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = header("x-request-id").unwrap_or_default();
    let rate_limit = match (header("ratelimit-limit"), header("ratelimit-remaining")) {
        (Some(l), Some(r)) => Some(format!("limit {l}, remaining {r}")),
        _ => None,
    };
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= TEST_ACCESS_MAX_BODY {
            bytes.truncate(TEST_ACCESS_MAX_BODY);
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let outcome = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(|c| c.as_str())
        .filter(|_| status >= 400)
        .unwrap_or(if status < 400 { "allowed" } else { "upstream_error" })
        .to_owned();
    let body = parsed.and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or(text);
    // The page this answer leads to lists Recent requests, and the batch writer stores
    // the call's audit row a moment after the response: give it up to a second, so the
    // call is in the list. The response goes first: a body left unread is recorded as
    // the caller going away, and only once the portal lets go of it.
    drop(res);
    if !request_id.is_empty() {
        use portcullis_domain::audit_search::AuditKey;
        let key = AuditKey::Request(request_id.clone());
        for _ in 0..20 {
            match portal.store.audit_event(actor, &key).await {
                Err(DomainError::NotFound) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                _ => break,
            }
        }
    }
    Ok(portcullis_domain::model::TestAccessResult {
        status,
        outcome,
        request_id,
        rate_limit,
        body: body.chars().take(4000).collect(),
    })
}
