//! The enforcing gateway: `/gw/{product}/{*path}`.
//!
//! One pipeline for every client, agent or app: authenticate → resolve client and
//! profile → match the endpoint → authorize → rate limit → proxy → audit. Every step
//! reads the in-memory policy snapshot; nothing here queries the database. Every
//! request, allowed or refused, leaves one audit row.

mod proxy;
mod ratelimit;
mod refusal;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use portcullis_domain::audit_writer::{AuditSink, RequestEvent};
use portcullis_domain::model::CredentialKind;
use portcullis_domain::oauth::{AccessClaims, TokenError, TokenSettings};
use portcullis_domain::policy::{CredentialEntry, ProductEntry, ProfileEntry, Snapshot};
use portcullis_domain::routing::CanonicalPath;
use portcullis_domain::secrets::SecretHasher;
use portcullis_domain::store::Store;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub use refusal::Refusal;

/// Cloned for every request (axum state), so everything sits behind one `Arc`.
#[derive(Clone)]
pub struct Gateway(Arc<Parts>);

pub struct Parts {
    store: Store,
    tokens: TokenSettings,
    hasher: SecretHasher,
    audit: AuditSink,
    limits: ratelimit::Limits,
    http: reqwest::Client,
}

impl std::ops::Deref for Gateway {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Gateway {
    pub fn new(
        store: Store,
        tokens: TokenSettings,
        hasher: SecretHasher,
        audit: AuditSink,
        upstream_timeout: std::time::Duration,
        global_rate_per_second: u32,
    ) -> Self {
        let http = proxy::client(upstream_timeout);
        let limits = ratelimit::Limits::new(global_rate_per_second);
        Self(Arc::new(Parts { store, tokens, hasher, audit, limits, http }))
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(gateway: Gateway) -> Router<S> {
    // Everything under /gw reaches `handle`, even `/gw/` or `/gw/accounts`, so that no
    // gateway request escapes the audit trail by missing a route.
    Router::new().route("/gw", any(handle)).route("/gw/{*rest}", any(handle)).with_state(gateway)
}

/// Who called, once authenticated.
pub struct Caller<'s> {
    pub credential: &'s CredentialEntry,
    pub profile: &'s ProfileEntry,
    /// The access token's verified claims, whose scopes may be narrower than the
    /// grants; `None` for an API key, which carries the profile's grants as they are.
    token: Option<Arc<AccessClaims>>,
}

impl Caller<'_> {
    /// The one authorization decision, for `/gw` and for MCP discovery alike: a current
    /// grant for the product whose scopes, narrowed by the token's, cover `scope`.
    pub fn authorize(&self, product: &ProductEntry, scope: &str, now: i64) -> Result<(), Refusal> {
        let grant = self
            .profile
            .grants
            .get(&product.id)
            .filter(|g| g.expires_at.is_none_or(|t| now < t))
            .ok_or(Refusal::NotGranted)?;
        let token_allows = self.token.as_ref().is_none_or(|t| t.scope.split(' ').any(|s| s == scope));
        if grant.scopes.iter().any(|s| s == scope) && token_allows {
            Ok(())
        } else {
            Err(Refusal::InsufficientScope { required: scope.to_owned() })
        }
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Gateway {
    /// Who the headers' credential belongs to, checked against the snapshot: the same
    /// answer for `/gw` and for `/mcp`.
    pub fn authenticate<'s>(
        &self,
        snap: &'s Snapshot,
        headers: &HeaderMap,
        query: Option<&str>,
        now: i64,
    ) -> Result<Caller<'s>, Refusal> {
        authenticate(self, snap, headers, query, false, now)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Query parameters that would carry a credential. URLs end up in logs, proxies and
/// browser history, so a credential there is refused rather than used (RFC 6750 §5.3).
const CREDENTIAL_PARAMS: [&str; 4] = ["access_token", "api_key", "apikey", "client_secret"];

/// The query parameter a product may accept an API key in, when it opts in.
const QUERY_KEY_PARAM: &str = "api_key";

fn param_name(pair: &str) -> &str {
    pair.split('=').next().unwrap_or("")
}

/// Whether the query carries a credential; `api_key` is allowed where the product
/// accepts keys in the URL.
fn credential_in_query(query: Option<&str>, query_key_allowed: bool) -> bool {
    query.is_some_and(|q| {
        q.split('&').map(param_name).any(|name| {
            CREDENTIAL_PARAMS.iter().any(|c| name.eq_ignore_ascii_case(c))
                && !(query_key_allowed && name == QUERY_KEY_PARAM)
        })
    })
}

/// The API key of a `?api_key=` query parameter.
fn query_key(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs.into_iter().find(|(k, _)| k == QUERY_KEY_PARAM).map(|(_, v)| v)
}

/// The query without its `api_key` parameters: a key never travels upstream.
fn without_query_key(query: &str) -> String {
    query.split('&').filter(|pair| param_name(pair) != QUERY_KEY_PARAM).collect::<Vec<_>>().join("&")
}

fn authenticate<'s>(
    gw: &Gateway,
    snap: &'s Snapshot,
    headers: &HeaderMap,
    query: Option<&str>,
    query_key_allowed: bool,
    now: i64,
) -> Result<Caller<'s>, Refusal> {
    if credential_in_query(query, query_key_allowed) {
        return Err(Refusal::CredentialInQuery);
    }
    let in_query = if query_key_allowed { query_key(query) } else { None };
    let bearer = header_str(headers, "authorization").and_then(|a| {
        a.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| a.get(7..).unwrap_or("").trim())
    });
    let api_key = header_str(headers, "x-api-key").or(in_query.as_deref());
    let (credential, profile, token) = match (api_key, bearer) {
        (Some(key), _) => {
            // Lookup by keyed hash: what is compared is a hash, which leaks nothing usable.
            let credential = snap.credentials.get(&gw.hasher.hash(key.trim())).ok_or(Refusal::UnknownCredential)?;
            if credential.kind != CredentialKind::ApiKey {
                // A client secret is for the token endpoint, never a bearer of its own.
                return Err(Refusal::UnknownCredential);
            }
            if now >= credential.expires_at {
                return Err(Refusal::ExpiredCredential);
            }
            let profile = snap.profiles.get(&credential.profile_id).ok_or(Refusal::UnknownCredential)?;
            (credential, profile, None)
        }
        (None, Some(token)) => {
            let claims = gw.store.verify_access_token(&gw.tokens, token).map_err(Refusal::InvalidToken)?;
            if snap.revoked_tokens.contains(&claims.jti) {
                return Err(Refusal::InvalidToken(TokenError::Revoked));
            }
            // A token lives no longer than the credential it was obtained with.
            let credential = snap
                .credentials_by_id
                .get(&claims.cid)
                .filter(|c| now < c.expires_at && c.profile_id == claims.profile)
                .ok_or(Refusal::InvalidToken(TokenError::Revoked))?;
            let profile = snap
                .profiles
                .get(&claims.profile)
                .filter(|p| p.client_id == claims.client_id)
                .ok_or(Refusal::InvalidToken(TokenError::Revoked))?;
            (credential, profile, Some(claims))
        }
        (None, None) => return Err(Refusal::MissingCredential),
    };
    let claims_ok = header_str(headers, "x-client-id").is_none_or(|c| c == profile.client_id)
        && header_str(headers, "x-profile-id").is_none_or(|p| p == profile.id);
    if !claims_ok {
        return Err(Refusal::IdentityMismatch);
    }
    if profile.client_suspended {
        return Err(Refusal::ClientSuspended);
    }
    Ok(Caller { credential, profile, token })
}

/// One request to enforce, from whichever route received it: `/gw` builds it from the
/// HTTP request as it came, `/mcp` from an `execute_endpoint` tool call.
pub struct Call {
    /// `rest` or `mcp`, as recorded in the audit row.
    pub channel: &'static str,
    /// The MCP tool that made the call, recorded in the audit row.
    pub tool: Option<String>,
    pub method: Method,
    pub product: String,
    /// The path below the product, as the caller wrote it (normalised here).
    pub path: String,
    pub query: Option<String>,
    /// The caller's headers: its credential, its identity claims and what may be
    /// forwarded (credentials and identity claims never are).
    pub headers: HeaderMap,
    pub body: Body,
    pub peer: IpAddr,
}

async fn handle(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // `/gw/{product}/{path}`: the product is the first segment, the rest is the path.
    let after_gw = uri.path().strip_prefix("/gw").unwrap_or("").trim_start_matches('/');
    let (product, path) = match after_gw.find('/') {
        Some(i) => (after_gw.get(..i).unwrap_or(""), after_gw.get(i..).unwrap_or("")),
        None => (after_gw, ""),
    };
    let call = Call {
        channel: "rest",
        tool: None,
        method,
        product: product.to_owned(),
        path: path.to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        peer: peer.ip(),
    };
    gw.execute(call).await
}

impl Gateway {
    /// The one enforcement path: authenticate, authorize, rate limit, proxy, audit. Every
    /// channel calls this; no other code decides whether a request reaches an upstream.
    pub async fn execute(&self, call: Call) -> Response {
        let started = Instant::now();
        let request_id = uuid::Uuid::now_v7().to_string();
        let now = self.store.now();
        let snap = self.store.snapshot().current();
        let mut event = RequestEvent {
            request_id: request_id.clone(),
            occurred_at: now,
            channel: call.channel,
            tool: call.tool,
            product: Some(call.product.clone()),
            method: call.method.to_string(),
            path: call.path.clone(),
            bytes_in: content_length(&call.headers),
            client_ip: Some(call.peer.to_string()),
            user_agent: header_str(&call.headers, "user-agent").map(str::to_owned),
            ..RequestEvent::default()
        };
        let target =
            Target { method: &call.method, product: &call.product, path: &call.path, query: call.query.as_deref() };
        let outcome = enforce(self, &snap, &mut event, target, &call.headers, now, call.body).await;
        let response = match outcome {
            Ok(res) => {
                event.decision = "allowed";
                event.reason = "allowed";
                res
            }
            Err(refusal) => {
                event.decision = "refused";
                event.reason = refusal.reason();
                refusal.into_response(&request_id)
            }
        };
        event.status = response.status().as_u16();
        event.bytes_out = content_length(response.headers());
        event.latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
        if let Err(refusal) = self.record(event).await {
            return refusal.into_response(&request_id);
        }
        response
    }

    /// Hands an audit row to the writer. In fail-closed mode with a full queue the
    /// caller must not get an unaudited answer, so this is a refusal of its own.
    pub async fn record(&self, event: RequestEvent) -> Result<(), Refusal> {
        let request_id = event.request_id.clone();
        self.audit.record(event).await.map_err(|_| {
            tracing::error!(request.id = %request_id, "audit queue full; request refused");
            Refusal::AuditUnavailable
        })
    }
}

/// What a call asks for, once its caller is known.
struct Target<'c> {
    method: &'c Method,
    product: &'c str,
    path: &'c str,
    query: Option<&'c str>,
}

fn content_length(headers: &HeaderMap) -> i64 {
    header_str(headers, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn enforce(
    gw: &Gateway,
    snap: &Snapshot,
    event: &mut RequestEvent,
    target: Target<'_>,
    headers: &HeaderMap,
    now: i64,
    body: Body,
) -> Result<Response, Refusal> {
    let Target { method, product: product_slug, path: raw_path, query } = target;
    // Looked up first for its `?api_key=` policy; an unknown product is refused only
    // after authentication, so a bad credential is a 401 whatever the path.
    let product = snap.products.get(product_slug);
    let caller = authenticate(gw, snap, headers, query, product.is_some_and(|p| p.api_key_in_query), now)?;
    let profile = caller.profile;
    event.client_id = Some(profile.client_id.clone());
    event.profile_id = Some(profile.id.clone());
    event.client_type = Some(profile.client_kind.as_str());
    event.credential_id = Some(caller.credential.id.clone());

    let product = product.ok_or(Refusal::UnknownProduct)?;
    let path = CanonicalPath::parse(raw_path).map_err(|_| Refusal::UnknownEndpoint)?;
    let upstream_path = path.to_upstream();
    event.path = upstream_path.clone();
    let endpoint = product.match_endpoint(method.as_str(), &path).ok_or(Refusal::UnknownEndpoint)?;
    event.endpoint = Some(endpoint.path_template.clone());

    caller.authorize(product, &endpoint.scope, now)?;

    let (limit, remaining) = gw
        .limits
        .check((&profile.id, profile.rate_per_minute, profile.burst), (&product.id, product.rate_per_minute))
        .map_err(|(scope, limit, retry_after_secs)| Refusal::RateLimited {
            scope,
            retry_after_secs,
            limit,
            reset_secs: retry_after_secs,
        })?;
    if !gw.audit.has_room() {
        return Err(Refusal::AuditUnavailable);
    }

    let mut url = format!("{}{upstream_path}", product.upstream(profile.environment));
    let query: Option<std::borrow::Cow<str>> =
        query.map(|q| if product.api_key_in_query { without_query_key(q).into() } else { q.into() });
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(&q);
    }
    let identity = [
        ("x-portcullis-client-id", profile.client_id.as_str()),
        ("x-portcullis-profile-id", profile.id.as_str()),
        ("x-portcullis-environment", profile.environment.as_str()),
        ("x-portcullis-client-type", profile.client_kind.as_str()),
    ];
    let upstream_headers = proxy::upstream_headers(headers, &event.request_id, &identity);
    let mut res = proxy::forward(&gw.http, method.clone(), url, upstream_headers, body).await?;
    let h = res.headers_mut();
    h.insert(HeaderName::from_static("ratelimit-limit"), HeaderValue::from(limit));
    h.insert(HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(remaining));
    if let Ok(v) = HeaderValue::from_str(&event.request_id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    // The upstream shares the portal's origin through us: it must not set cookies there.
    h.remove(header::SET_COOKIE);
    Ok(res)
}
