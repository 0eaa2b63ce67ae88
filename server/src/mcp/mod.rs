//! The Model Context Protocol over Streamable HTTP, on two routes that share it:
//!
//! - the Gateway MCP, `/mcp`: an agent authenticates exactly as at `/gw` (the gateway's
//!   own `authenticate`), sees only what its profile's grants allow, and
//!   `execute_endpoint` runs through `Gateway::execute`;
//! - the Management MCP, `/mcp/manage`: a person's automation, with a personal access
//!   token; its tools (`manage.rs`) are the domain's operations under that person's
//!   rules and the token's scopes.
//!
//! This module only speaks the protocol. README.md beside this file lists the revisions
//! served, the spec sections followed and the decisions.
//!
//! Every HTTP request reserves its audit row before anything else, and every way it can
//! end — a transport refusal, a protocol fault, a tool's answer — finishes that row: one
//! row per request (per message in a 2025-03-26 batch). `execute_endpoint` hands its row
//! to the gateway, which writes it as for any REST call.

mod jsonrpc;
mod manage;
mod session;
mod tools;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use portcullis_app::ssr::ClientIp;
use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::audit_writer::{Committed, PendingRow};
use portcullis_domain::keyed::Limiter;
use portcullis_domain::model::RequestChannel;
use portcullis_domain::policy::Snapshot;
use portcullis_domain::secrets::ServerSecret;
use portcullis_domain::upstream_tls::UpstreamTlsNames;
use portcullis_domain::DomainError;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::audit;
use crate::body::{self as request_body, BodyError};
use crate::gateway::{bearer, header_str, Caller, Gateway, Query};
use jsonrpc::{
    Message, RpcError, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use session::{EndError, Sessions};

/// Revisions with the `initialize` handshake and sessions, newest first.
const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The stateless revision: every request carries its version, no session.
const STATELESS_VERSION: &str = "2026-07-28";
/// Every revision served, oldest first, as `server/discover` and `-32022` list them.
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", STATELESS_VERSION];

const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// A JSON-RPC body larger than this is refused with 413, unread.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Messages in one 2025-03-26 batch.
const MAX_BATCH: usize = 16;

const MANAGE_INSTRUCTIONS: &str = "Portcullis manages who may call which API. These tools act for the person \
    whose personal access token you hold, with exactly their rights, narrowed by the token's scopes: list and register \
    clients, issue and revoke their credentials, request and decide access, search the audit trail and review access. \
    Every change is recorded in the audit trail as theirs. A secret in a result is shown once: keep it out of logs.";

const INSTRUCTIONS: &str = "Portcullis is an API gateway. Call list_collections to see the APIs this client may use, \
    list_endpoints and endpoint_details to learn one, and execute_endpoint to call it. Every call uses this client's \
    own credential and is checked against its grants, rate limited and audited like any application's.";

/// Which of the two MCP routes a server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/mcp`: agents, with their client credential.
    Gateway,
    /// `/mcp/manage`: people's automation, with a personal access token.
    Manage,
}

#[derive(Clone)]
pub struct McpServer {
    gateway: Gateway,
    surface: Surface,
    sessions: Arc<Sessions>,
    /// Ends of Management MCP sessions per person: each is kept by every replica until
    /// the session would have expired, so nobody may record them without bound (a
    /// Gateway MCP end is paid from the profile's own rate limit instead).
    person_ends: Arc<Limiter<String>>,
    /// The upstream TLS profiles this server has, which a product's policy may name.
    upstream_tls: UpstreamTlsNames,
    /// The MCP endpoint's own URL: the protected resource of RFC 9728.
    resource: String,
    /// Where the protected resource metadata is served, named in every 401.
    metadata_url: String,
    issuer: String,
    /// The public URL's `host[:port]`, the one `Host` a request may name besides
    /// loopback (DNS rebinding protection).
    public_host: String,
}

impl McpServer {
    /// `base` is the public URL, also the token issuer; session ids are sealed with a key
    /// derived from `secret`, so every replica holding it serves every session.
    pub fn new(gateway: Gateway, base: &str, secret: &ServerSecret, upstream_tls: UpstreamTlsNames) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let public_host = origin_of(&base).split_once("://").map(|(_, h)| h.to_owned()).unwrap_or_default();
        Self {
            gateway,
            surface: Surface::Gateway,
            sessions: Arc::new(Sessions::new(secret)),
            person_ends: Arc::new(Limiter::new(60, 60, 100_000)),
            upstream_tls,
            resource: format!("{base}/mcp"),
            metadata_url: format!("{base}/.well-known/oauth-protected-resource/mcp"),
            issuer: base,
            public_host,
        }
    }
}

impl McpServer {
    /// The Management MCP beside this Gateway MCP: the same protocol and session ids
    /// (a session is bound to its profile or person, whose ids never coincide).
    fn manage(&self) -> McpServer {
        McpServer {
            surface: Surface::Manage,
            resource: format!("{}/mcp/manage", self.issuer),
            metadata_url: format!("{}/.well-known/oauth-protected-resource/mcp/manage", self.issuer),
            ..self.clone()
        }
    }

    fn path(&self) -> &'static str {
        match self.surface {
            Surface::Gateway => "/mcp",
            Surface::Manage => "/mcp/manage",
        }
    }

    fn channel(&self) -> RequestChannel {
        match self.surface {
            Surface::Gateway => RequestChannel::Mcp,
            Surface::Manage => RequestChannel::McpManage,
        }
    }

    fn instructions(&self) -> &'static str {
        match self.surface {
            Surface::Gateway => INSTRUCTIONS,
            Surface::Manage => MANAGE_INSTRUCTIONS,
        }
    }

    fn server_info(&self) -> Value {
        let title = match self.surface {
            Surface::Gateway => "Portcullis Gateway MCP",
            Surface::Manage => "Portcullis Management MCP",
        };
        json!({ "name": "portcullis", "title": title, "version": env!("CARGO_PKG_VERSION") })
    }

    fn tool_definitions(&self) -> Value {
        match self.surface {
            Surface::Gateway => tools::definitions(),
            Surface::Manage => manage::definitions(),
        }
    }
}

impl McpServer {
    /// Learns every session ended so far, then follows new ends in the background: call
    /// before serving, so a replica that starts never accepts a session ended elsewhere.
    pub async fn follow_ended_sessions(&self) -> Result<(), DomainError> {
        session::follow(self.sessions.clone(), self.gateway.store().clone()).await
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

pub fn router<S: Clone + Send + Sync + 'static>(server: McpServer) -> Router<S> {
    let manage = server.manage();
    Router::new()
        .route("/mcp", get(get_stream).post(post).delete(delete))
        .route("/.well-known/oauth-protected-resource", get(resource_metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(resource_metadata))
        .with_state(server)
        .merge(
            Router::new()
                .route("/mcp/manage", get(get_stream).post(post).delete(delete))
                .route("/.well-known/oauth-protected-resource/mcp/manage", get(resource_metadata))
                .with_state(manage),
        )
}

/// RFC 9728 §2: who protects `/mcp` and how to present a token to it.
async fn resource_metadata(State(mcp): State<McpServer>) -> Response {
    if mcp.surface == Surface::Manage {
        // Personal access tokens come from the portal (or `POST /api/v1/tokens`), not
        // from an authorization server a client could ask.
        return Json(json!({
            "resource": mcp.resource,
            "authorization_servers": [],
            "bearer_methods_supported": ["header"],
            "scopes_supported": portcullis_domain::scopes::Scopes::all().names(),
            "resource_name": "Portcullis Management MCP",
            "resource_documentation": format!("{}/tokens", mcp.issuer),
        }))
        .into_response();
    }
    let snap = mcp.gateway.store().snapshot().current();
    let mut scopes: Vec<&str> =
        snap.products.values().flat_map(|p| p.endpoints.iter().map(|e| e.scope.as_str())).collect();
    scopes.sort_unstable();
    scopes.dedup();
    Json(json!({
        "resource": mcp.resource,
        "authorization_servers": [mcp.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes,
        "resource_name": "Portcullis Gateway MCP",
    }))
    .into_response()
}

/// A JSON-RPC message as the HTTP answer.
fn rpc_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn rpc_fault(status: StatusCode, id: &Value, e: &RpcError) -> Response {
    rpc_response(status, jsonrpc::error(id, e))
}

/// Loopback names: a DNS-rebinding page can never have one as its origin or host.
fn is_loopback_host(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    matches!(host.to_ascii_lowercase().as_str(), "localhost" | "127.0.0.1" | "::1")
}

/// DNS rebinding protection (Streamable HTTP, "Security Warning"): the `Host` must be
/// ours (public URL or loopback), and a browser's `Origin`, when sent, too. A request
/// without `Origin` does not come from a web page. Returns the refusal, if it is one.
fn foreign_request(mcp: &McpServer, headers: &HeaderMap) -> Option<(&'static str, Response)> {
    let ours = |host_port: &str| host_port.eq_ignore_ascii_case(&mcp.public_host) || is_loopback_host(host_port);
    let host_ok = header_str(headers, "host").is_some_and(ours);
    let origin_ok = header_str(headers, "origin").is_none_or(|o| {
        let authority = o.split_once("://").map_or("", |(_, rest)| rest);
        o.starts_with("http") && ours(authority)
    });
    if host_ok && origin_ok {
        return None;
    }
    let (what, reason) = if host_ok { ("Origin", "origin_not_allowed") } else { ("Host", "host_not_allowed") };
    Some((
        reason,
        rpc_fault(
            StatusCode::FORBIDDEN,
            &Value::Null,
            &RpcError::new(INVALID_REQUEST, format!("{what} not allowed for this MCP endpoint; set --public-url.")),
        ),
    ))
}

/// Reserves the row of an HTTP request to `/mcp`; without one, the request is refused
/// (fail closed with a full audit queue) before anything is read.
async fn reserve(
    mcp: &McpServer,
    method: &Method,
    headers: &HeaderMap,
    peer: IpAddr,
    started: Instant,
) -> Result<PendingRow, Response> {
    if let Err(retry_after_secs) = mcp.gateway.sources().admit(peer, mcp.channel()) {
        let request_id = uuid::Uuid::now_v7().to_string();
        return Err(crate::gateway::Refusal::TooManyRefusals { retry_after_secs }.into_response(&request_id));
    }
    let event = audit::event(mcp.channel(), mcp.gateway.store().now(), method, mcp.path(), headers, peer);
    let request_id = event.request_id.clone();
    mcp.gateway.reserve(event, started).await.map_err(|refusal| refusal.into_response(&request_id))
}

/// Finishes `row` as refused for `reason` with the answer `res`; the refusal counts
/// against the caller's address (`crate::sources`).
async fn refuse(mcp: &McpServer, peer: IpAddr, mut row: PendingRow, reason: &'static str, res: Response) -> Response {
    mcp.gateway.sources().refused(peer);
    row.event.refused(reason);
    audit::answer(row, res).await
}

/// Who an MCP request comes from, once authenticated.
enum Principal<'s> {
    /// An agent at `/mcp`, as the gateway authenticated it.
    Agent(Caller<'s>),
    /// A person at `/mcp/manage`, held to their token's scopes.
    Person(Actor),
}

impl Principal<'_> {
    /// What a session is bound to: the agent's profile, or the person.
    fn subject(&self) -> &str {
        match self {
            Principal::Agent(c) => &c.profile.id,
            Principal::Person(a) => a.id(),
        }
    }

    fn stamp(&self, event: &mut portcullis_domain::audit_writer::RequestEvent) {
        match self {
            Principal::Agent(c) => c.stamp(event),
            Principal::Person(a) => event.actor_user_id = Some(AuditText::new(a.id(), cap::ID)),
        }
    }
}

/// One MCP request's context once its caller is authenticated.
struct Ctx<'a> {
    mcp: &'a McpServer,
    snap: &'a Snapshot,
    caller: Principal<'a>,
    headers: &'a HeaderMap,
    peer: IpAddr,
    now: i64,
}

/// What every POST and DELETE passes first: the DNS-rebinding check, then the
/// gateway's own authentication (or, at `/mcp/manage`, the personal access token's).
/// The refusal comes with its audit reason.
async fn admit<'s>(
    mcp: &McpServer,
    snap: &'s Snapshot,
    uri: &Uri,
    headers: &HeaderMap,
    row: &mut PendingRow,
) -> Result<Principal<'s>, (&'static str, Box<Response>)> {
    if let Some((reason, refused)) = foreign_request(mcp, headers) {
        return Err((reason, Box::new(refused)));
    }
    if mcp.surface == Surface::Manage {
        let person = Principal::Person(person(mcp, headers).await?);
        person.stamp(&mut row.event);
        return Ok(person);
    }
    let now = mcp.gateway.store().now();
    match mcp.gateway.authenticate(snap, headers, &Query::parse(uri.query()), false, now) {
        Ok(caller) => {
            caller.stamp(&mut row.event);
            Ok(Principal::Agent(caller))
        }
        Err(refusal) => {
            let named = mcp.gateway.named_client(snap, headers, &Query::parse(None), false);
            row.event.attempted_client_id = named.map(|c| AuditText::new(c, cap::ID));
            let reason = refusal.reason();
            Err((reason, Box::new(refusal.into_response_for(&row.event.request_id, Some(&mcp.metadata_url)))))
        }
    }
}

/// The person a Management MCP request's personal access token acts for. A client
/// credential, or anything else, is refused like an unknown token: this route is for
/// people's automation, never an agent's own access.
async fn person(mcp: &McpServer, headers: &HeaderMap) -> Result<Actor, (&'static str, Box<Response>)> {
    let unauthorized = |reason: &'static str, message: &str| {
        let error = if reason == "invalid_token" { r#", error="invalid_token""# } else { "" };
        let challenge = format!(r#"Bearer realm="portcullis"{error}, resource_metadata="{}""#, mcp.metadata_url);
        let mut res = rpc_fault(StatusCode::UNAUTHORIZED, &Value::Null, &RpcError::new(INVALID_REQUEST, message));
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        (reason, Box::new(res))
    };
    let Some(token) = bearer(headers) else {
        return Err(unauthorized("missing_credentials", "Send a personal access token: Authorization: Bearer pcp_…"));
    };
    match mcp.gateway.store().authenticate_access_token(token, Channel::McpManage).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => Err(unauthorized("invalid_token", "The personal access token is unknown, expired or revoked.")),
        Err(e) => {
            tracing::error!(error = %e, "Management MCP: token lookup failed");
            let e = RpcError::new(jsonrpc::INTERNAL_ERROR, "The token could not be checked; retry.");
            Err(("store_unavailable", Box::new(rpc_fault(StatusCode::SERVICE_UNAVAILABLE, &Value::Null, &e))))
        }
    }
}

/// No server-to-client stream is offered: every answer comes back on its POST.
async fn get_stream(
    State(mcp): State<McpServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let row = match reserve(&mcp, &method, &headers, peer, Instant::now()).await {
        Ok(row) => row,
        Err(refused) => return refused,
    };
    if let Some((reason, refused)) = foreign_request(&mcp, &headers) {
        return refuse(&mcp, peer, row, reason, refused).await;
    }
    let res = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST, DELETE")]).into_response();
    refuse(&mcp, peer, row, "method_not_allowed", res).await
}

async fn delete(
    State(mcp): State<McpServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut row = match reserve(&mcp, &method, &headers, peer, Instant::now()).await {
        Ok(row) => row,
        Err(refused) => return refused,
    };
    let snap = mcp.gateway.store().snapshot().current();
    let caller = match admit(&mcp, &snap, &uri, &headers, &mut row).await {
        Ok(c) => c,
        Err((reason, refused)) => return refuse(&mcp, peer, row, reason, *refused).await,
    };
    let Some(id) = header_str(&headers, "mcp-session-id") else {
        let e = RpcError::new(INVALID_REQUEST, "Mcp-Session-Id is required.");
        return refuse(&mcp, peer, row, "session_required", rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e)).await;
    };
    // Each end is kept by every replica until the session would have expired: a profile
    // pays for ends from its own rate limit, so none can grow that set without bound.
    match &caller {
        Principal::Agent(agent) => {
            if let Err(refusal) = mcp.gateway.charge(agent.profile).await {
                let (reason, answer) = (refusal.reason(), refusal.into_response(&row.event.request_id));
                return refuse(&mcp, peer, row, reason, answer).await;
            }
        }
        Principal::Person(person) => {
            if let Err(wait) = mcp.person_ends.check(&person.id().to_owned()) {
                let e = RpcError::new(INVALID_REQUEST, "Too many sessions ended; retry later.");
                let mut res = rpc_fault(StatusCode::TOO_MANY_REQUESTS, &Value::Null, &e);
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
                return refuse(&mcp, peer, row, "rate_limited", res).await;
            }
        }
    }
    let store = mcp.gateway.store();
    match mcp.sessions.end(store, id, caller.subject(), store.now()).await {
        Ok(()) => {
            row.event.allowed();
            audit::answer(row, StatusCode::NO_CONTENT.into_response()).await
        }
        Err(EndError::Unknown) => refuse(&mcp, peer, row, "unknown_session", session_not_found()).await,
        Err(EndError::Store(e)) => {
            // Not ended here either: an end only this replica knew would leave the
            // session open on the others. The client may retry.
            tracing::error!(error = %e, "MCP session end not recorded");
            let e = RpcError::new(jsonrpc::INTERNAL_ERROR, "The session could not be ended; retry.");
            row.event.refused("store_unavailable");
            audit::answer(row, rpc_fault(StatusCode::SERVICE_UNAVAILABLE, &Value::Null, &e)).await
        }
    }
}

fn session_not_found() -> Response {
    rpc_fault(
        StatusCode::NOT_FOUND,
        &Value::Null,
        &RpcError::new(INVALID_REQUEST, "Session not found; initialize again."),
    )
}

fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = header_str(headers, "accept") else { return true };
    accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .any(|t| t == "application/json" || t == "application/*" || t == "*/*")
}

async fn post(
    State(mcp): State<McpServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut row = match reserve(&mcp, &method, &headers, peer, Instant::now()).await {
        Ok(row) => row,
        Err(refused) => return refused,
    };
    let snap = mcp.gateway.store().snapshot().current();
    let caller = match admit(&mcp, &snap, &uri, &headers, &mut row).await {
        Ok(c) => c,
        Err((reason, refused)) => return refuse(&mcp, peer, row, reason, *refused).await,
    };
    if !header_str(&headers, "content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
        let e = RpcError::new(INVALID_REQUEST, "Content-Type must be application/json.");
        return refuse(
            &mcp,
            peer,
            row,
            "unsupported_media_type",
            rpc_fault(StatusCode::UNSUPPORTED_MEDIA_TYPE, &Value::Null, &e),
        )
        .await;
    }
    if !accepts_json(&headers) {
        let e = RpcError::new(INVALID_REQUEST, "Accept must allow application/json.");
        return refuse(&mcp, peer, row, "not_acceptable", rpc_fault(StatusCode::NOT_ACCEPTABLE, &Value::Null, &e))
            .await;
    }
    let (read, bytes_in) = request_body::read(body, request_body::declared_length(&headers), MAX_BODY_BYTES).await;
    row.event.bytes_in = i64::try_from(bytes_in).unwrap_or(i64::MAX);
    let body = match read {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let e = RpcError::new(INVALID_REQUEST, format!("The body is larger than {MAX_BODY_BYTES} bytes."));
            return refuse(
                &mcp,
                peer,
                row,
                "payload_too_large",
                rpc_fault(StatusCode::PAYLOAD_TOO_LARGE, &Value::Null, &e),
            )
            .await;
        }
        Err(BodyError::Broken) => {
            let e = RpcError::new(INVALID_REQUEST, "The body was cut off.");
            return refuse(&mcp, peer, row, "incomplete_body", rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e))
                .await;
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            let res = rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &RpcError::new(PARSE_ERROR, "Parse error"));
            return refuse(&mcp, peer, row, "parse_error", res).await;
        }
    };
    let now = mcp.gateway.store().now();
    let ctx = Ctx { mcp: &mcp, snap: &snap, caller, headers: &headers, peer, now };
    let stateless = header_str(&headers, "mcp-protocol-version")
        .is_some_and(|v| v == STATELESS_VERSION || !HANDSHAKE_VERSIONS.contains(&v) && body_is_stateless(&value));
    let mut slot = Some(row);
    let res = if stateless {
        stateless_post(&ctx, value, &mut slot).await
    } else {
        session_post(&ctx, value, &mut slot).await
    };
    // The row is still here unless `execute_endpoint` handed it to the gateway.
    match slot {
        Some(row) => audit::answer(row, res).await,
        None => res,
    }
}

/// A request that carries its protocol version in `_meta` belongs to the stateless
/// revision even when its header names an unknown version (so it gets `-32022`).
fn body_is_stateless(value: &Value) -> bool {
    value.pointer("/params/_meta").and_then(|m| m.get(META_PROTOCOL_VERSION)).is_some()
}

/// Notes on a message's row what it was and how it ended, unless a tool already did
/// (the status comes from the answer when the row is finished, if the tool set none).
fn note(slot: &mut Option<PendingRow>, what: &str, outcome: Result<(), &'static str>) {
    if let Some(row) = slot.as_mut() {
        if row.event.tool.is_none() {
            row.event.tool = Some(AuditText::new(what, cap::TOOL));
        }
        if !row.event.reason.is_empty() {
            return;
        }
        match outcome {
            Ok(()) => row.event.allowed(),
            Err(reason) => row.event.refused(reason),
        }
    }
}

// ---- 2025-03-26 / 2025-06-18 / 2025-11-25: initialize, sessions ----

async fn session_post(ctx: &Ctx<'_>, value: Value, slot: &mut Option<PendingRow>) -> Response {
    let items = match value {
        Value::Array(items) => items,
        single => {
            return match session_message(ctx, single, false, slot).await {
                Answer::Accepted => StatusCode::ACCEPTED.into_response(),
                Answer::Reply(status, body, session) => {
                    let mut res = rpc_response(status, body);
                    if let Some(id) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
                        res.headers_mut().insert(HeaderName::from_static("mcp-session-id"), id);
                    }
                    res
                }
                Answer::Http(res) => res,
            };
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        note(slot, "batch", Err("invalid_request"));
        let e = RpcError::new(INVALID_REQUEST, format!("A batch holds 1 to {MAX_BATCH} messages."));
        return rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e);
    }
    // Batches (2025-03-26 only; later revisions removed them): answered together, each
    // message with a row of its own (the request's row serves the first).
    let mut replies = Vec::new();
    let mut commits: Vec<Committed> = Vec::new();
    let mut first = slot.take();
    for item in items {
        let mut message_slot = match first.take() {
            Some(row) => Some(row),
            None => match reserve(ctx.mcp, &Method::POST, ctx.headers, ctx.peer, Instant::now()).await {
                Ok(mut row) => {
                    ctx.caller.stamp(&mut row.event);
                    Some(row)
                }
                Err(refused) => return refused,
            },
        };
        let (status, answer) = match session_message(ctx, item, true, &mut message_slot).await {
            Answer::Accepted => (StatusCode::ACCEPTED, None),
            Answer::Reply(status, body, _) => (status, Some(body)),
            Answer::Http(res) => {
                if let Some(row) = message_slot {
                    return audit::answer(row, res).await;
                }
                return res;
            }
        };
        if let Some(mut row) = message_slot {
            if row.event.status == 0 {
                row.event.status = status.as_u16();
            }
            commits.push(row.finish());
        }
        replies.extend(answer);
    }
    for c in commits {
        c.wait().await;
    }
    if replies.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        rpc_response(StatusCode::OK, Value::Array(replies))
    }
}

enum Answer {
    /// A notification or response: 202, no body.
    Accepted,
    /// A JSON-RPC answer, with the session id to announce after `initialize`.
    Reply(StatusCode, Value, Option<String>),
    /// A transport-level refusal (missing or unknown session, bad version header).
    Http(Response),
}

async fn session_message(ctx: &Ctx<'_>, value: Value, in_batch: bool, slot: &mut Option<PendingRow>) -> Answer {
    let message = match jsonrpc::classify(value) {
        Ok(m) => m,
        Err((id, e)) => {
            note(slot, "invalid", Err(jsonrpc::reason(e.code)));
            return Answer::Reply(StatusCode::BAD_REQUEST, jsonrpc::error(&id, &e), None);
        }
    };
    if let Message::Request { id, method, params } = &message {
        if method == "initialize" {
            if in_batch {
                note(slot, method, Err("invalid_request"));
                let e = RpcError::new(INVALID_REQUEST, "initialize must not be part of a batch.");
                return Answer::Reply(StatusCode::BAD_REQUEST, jsonrpc::error(id, &e), None);
            }
            return initialize(ctx, id, params, slot);
        }
    }
    let what = match &message {
        Message::Request { method, .. } | Message::Notification { method } => method.as_str(),
        Message::Response => "response",
    };
    // Everything after initialize names its session (Streamable HTTP, "Session Management").
    let Some(session_id) = header_str(ctx.headers, "mcp-session-id") else {
        note(slot, what, Err("session_required"));
        let e = RpcError::new(INVALID_REQUEST, "Mcp-Session-Id is required; send initialize first.");
        return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &request_id(&message), &e));
    };
    let Ok(session) = ctx.mcp.sessions.resume(session_id, ctx.caller.subject(), ctx.now) else {
        note(slot, what, Err("unknown_session"));
        return Answer::Http(session_not_found());
    };
    if in_batch && session.protocol_version != "2025-03-26" {
        note(slot, what, Err("invalid_request"));
        let e = RpcError::new(INVALID_REQUEST, "Batches are not part of this protocol version.");
        return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e));
    }
    // Streamable HTTP, "Protocol Version Header": an invalid or unsupported one is a 400.
    // Another version we support is not refused: the conformance suite sends 2025-03-26
    // inside a 2025-11-25 session, and the spec refuses only unknown versions.
    if let Some(v) = header_str(ctx.headers, "mcp-protocol-version") {
        if !HANDSHAKE_VERSIONS.contains(&v) {
            note(slot, what, Err("unsupported_protocol_version"));
            let e = RpcError::new(INVALID_REQUEST, format!("Unsupported MCP-Protocol-Version {v}."))
                .with_data(json!({ "supported": SUPPORTED_VERSIONS }));
            return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &request_id(&message), &e));
        }
    }
    match message {
        Message::Notification { method } => {
            note(slot, &method, Ok(()));
            Answer::Accepted
        }
        Message::Response => {
            note(slot, "response", Ok(()));
            Answer::Accepted
        }
        Message::Request { id, method, params } => match dispatch(ctx, &method, &params, false, slot).await {
            Ok(result) => Answer::Reply(StatusCode::OK, jsonrpc::result(&id, result), None),
            Err(e) => Answer::Reply(StatusCode::OK, jsonrpc::error(&id, &e), None),
        },
    }
}

fn request_id(message: &Message) -> Value {
    match message {
        Message::Request { id, .. } => id.clone(),
        _ => Value::Null,
    }
}

fn initialize(ctx: &Ctx<'_>, id: &Value, params: &Map<String, Value>, slot: &mut Option<PendingRow>) -> Answer {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        note(slot, "initialize", Err("invalid_params"));
        let e = RpcError::invalid_params("initialize needs params.protocolVersion.");
        return Answer::Reply(StatusCode::OK, jsonrpc::error(id, &e), None);
    };
    // Lifecycle, "Version Negotiation": the requested version if we speak it, else our latest.
    let version = HANDSHAKE_VERSIONS.iter().copied().find(|v| *v == requested).unwrap_or(HANDSHAKE_VERSIONS[0]);
    let Ok(session) = ctx.mcp.sessions.start(ctx.caller.subject(), version, ctx.now) else {
        tracing::error!(subject = %ctx.caller.subject(), "MCP session id cannot be sealed for this subject");
        note(slot, "initialize", Err("internal_error"));
        let e = RpcError::new(jsonrpc::INTERNAL_ERROR, "The session could not be started.");
        return Answer::Reply(StatusCode::OK, jsonrpc::error(id, &e), None);
    };
    note(slot, "initialize", Ok(()));
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": ctx.mcp.server_info(),
        "instructions": ctx.mcp.instructions(),
    });
    Answer::Reply(StatusCode::OK, jsonrpc::result(id, result), Some(session))
}

// ---- 2026-07-28: stateless, the version in every request ----

fn stateless_status(code: i64) -> StatusCode {
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH | UNSUPPORTED_PROTOCOL_VERSION => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

async fn stateless_post(ctx: &Ctx<'_>, value: Value, slot: &mut Option<PendingRow>) -> Response {
    let fault = |slot: &mut Option<PendingRow>, what: &str, id: &Value, e: RpcError| {
        note(slot, what, Err(jsonrpc::reason(e.code)));
        rpc_fault(stateless_status(e.code), id, &e)
    };
    if value.is_array() {
        let e = RpcError::new(INVALID_REQUEST, "Batches are not part of this protocol version.");
        return fault(slot, "batch", &Value::Null, e);
    }
    let (id, method, params) = match jsonrpc::classify(value) {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification { method }) => {
            note(slot, &method, Ok(()));
            return StatusCode::ACCEPTED.into_response();
        }
        Ok(Message::Response) => {
            note(slot, "response", Ok(()));
            return StatusCode::ACCEPTED.into_response();
        }
        Err((id, e)) => return fault(slot, "invalid", &id, e),
    };
    if let Err(e) = check_envelope(ctx.headers, &method, &params) {
        return fault(slot, &method, &id, e);
    }
    match dispatch(ctx, &method, &params, true, slot).await {
        Ok(mut result) => {
            if let Some(obj) = result.as_object_mut() {
                obj.insert("resultType".into(), json!("complete"));
            }
            rpc_response(StatusCode::OK, jsonrpc::result(&id, result))
        }
        Err(e) => {
            // `dispatch` already noted the refusal on the row.
            rpc_fault(stateless_status(e.code), &id, &e)
        }
    }
}

/// The per-request envelope of 2026-07-28, checked in the order the reference SDKs use:
/// `_meta` present, headers agree with the body, version supported.
fn check_envelope(headers: &HeaderMap, method: &str, params: &Map<String, Value>) -> Result<(), RpcError> {
    let meta = params.get("_meta").and_then(Value::as_object).ok_or_else(|| {
        RpcError::invalid_params(format!(
            "params._meta must carry {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES}."
        ))
    })?;
    let Some(version) = meta.get(META_PROTOCOL_VERSION) else {
        return Err(RpcError::invalid_params(format!("params._meta.{META_PROTOCOL_VERSION} is required.")));
    };
    if !meta.contains_key(META_CLIENT_CAPABILITIES) {
        return Err(RpcError::invalid_params(format!("params._meta.{META_CLIENT_CAPABILITIES} is required.")));
    }
    if header_str(headers, "mcp-protocol-version").map(Value::from).as_ref() != Some(version) {
        return Err(RpcError::new(HEADER_MISMATCH, "MCP-Protocol-Version does not match params._meta."));
    }
    if header_str(headers, "mcp-method") != Some(method) {
        return Err(RpcError::new(HEADER_MISMATCH, "Mcp-Method does not match the request's method."));
    }
    if method == "tools/call" {
        let name = params.get("name").and_then(Value::as_str);
        if name.is_some() && header_str(headers, "mcp-name").and_then(decode_header_value).as_deref() != name {
            return Err(RpcError::new(HEADER_MISMATCH, "Mcp-Name does not match params.name."));
        }
    }
    let Some(version) = version.as_str() else {
        return Err(RpcError::invalid_params("The protocol version must be a string."));
    };
    if version != STATELESS_VERSION {
        return Err(RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version.")
            .with_data(json!({ "supported": SUPPORTED_VERSIONS, "requested": version })));
    }
    Ok(())
}

/// A header value as sent: verbatim, or the `=?base64?…?=` form for values that are not
/// plain printable ASCII (2026-07-28 Streamable HTTP, "Standard Headers").
fn decode_header_value(raw: &str) -> Option<String> {
    use base64::Engine;
    match raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        None => Some(raw.to_owned()),
        Some(payload) => {
            base64::engine::general_purpose::STANDARD.decode(payload).ok().and_then(|b| String::from_utf8(b).ok())
        }
    }
}

// ---- methods, the same for every revision ----

/// Answers one request; notes on its row what it was and whether it succeeded.
async fn dispatch(
    ctx: &Ctx<'_>,
    method: &str,
    params: &Map<String, Value>,
    stateless: bool,
    slot: &mut Option<PendingRow>,
) -> Result<Value, RpcError> {
    if method == "tools/call" {
        let result = call_tool(ctx, params, slot).await;
        if let Err(e) = &result {
            note(slot, method, Err(jsonrpc::reason(e.code)));
        }
        return result;
    }
    let result = match method {
        "ping" => Ok(json!({})),
        "server/discover" if stateless => Ok(json!({
            "supportedVersions": SUPPORTED_VERSIONS,
            "capabilities": { "tools": {} },
            "instructions": ctx.mcp.instructions(),
            "cacheScope": "public",
            "ttlMs": 3_600_000,
            "_meta": { META_SERVER_INFO: ctx.mcp.server_info() },
        })),
        "tools/list" => {
            let mut result = json!({ "tools": ctx.mcp.tool_definitions() });
            if stateless {
                if let Some(obj) = result.as_object_mut() {
                    // The tools are the same for everyone; what they return is not.
                    obj.insert("cacheScope".into(), json!("public"));
                    obj.insert("ttlMs".into(), json!(3_600_000));
                }
            }
            Ok(result)
        }
        other => Err(RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {other}"))),
    };
    note(slot, method, result.as_ref().map(|_| ()).map_err(|e| jsonrpc::reason(e.code)));
    result
}

async fn call_tool(
    ctx: &Ctx<'_>,
    params: &Map<String, Value>,
    slot: &mut Option<PendingRow>,
) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("params.name is required."))?;
    if let Some(row) = slot.as_mut() {
        row.event.tool = Some(AuditText::new(name, cap::TOOL));
    }
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => return Err(RpcError::invalid_params("params.arguments must be an object.")),
    };
    let caller = match &ctx.caller {
        Principal::Agent(agent) => tools::Caller { caller: agent, now: ctx.now },
        Principal::Person(person) => {
            let store = ctx.mcp.gateway.store();
            let Some(outcome) = manage::call(store, &ctx.mcp.upstream_tls, person, name, args).await else {
                return Err(unknown_tool(name, slot));
            };
            return Ok(tool_result(outcome, slot));
        }
    };
    let outcome = match name {
        tools::LIST_COLLECTIONS => tools::list_collections(&caller, ctx.snap),
        tools::LIST_ENDPOINTS => tools::list_endpoints(&caller, ctx.snap, args),
        tools::ENDPOINT_DETAILS => tools::endpoint_details(&caller, ctx.snap, args),
        tools::EXECUTE_ENDPOINT => {
            let bound = tools::Bound { profile_id: &caller.caller.profile.id, client: ctx.peer };
            tools::execute_endpoint(&ctx.mcp.gateway, ctx.snap, args, ctx.headers, bound, slot).await
        }
        other => return Err(unknown_tool(other, slot)),
    };
    Ok(tool_result(outcome, slot))
}

fn unknown_tool(name: &str, slot: &mut Option<PendingRow>) -> RpcError {
    if let Some(row) = slot.as_mut() {
        row.event.status = 404;
        row.event.refused("unknown_tool");
    }
    RpcError::invalid_params(format!("Unknown tool: {}", AuditText::new(name, cap::TOOL)))
}

/// A tool's outcome as the `tools/call` result, its status and decision on the row.
fn tool_result(outcome: tools::Outcome, slot: &mut Option<PendingRow>) -> Value {
    if let (Some(audit), Some(row)) = (&outcome.audit, slot.as_mut()) {
        // The row's status is the tool's own (200, or the 4xx of a call it refused),
        // like an `execute_endpoint` row's is the upstream's.
        row.event.status = audit.status;
        row.event.product = audit.product.as_deref().map(|p| AuditText::new(p, cap::ID));
        if audit.status < 400 {
            row.event.allowed();
        } else {
            row.event.refused(audit.reason);
        }
    }
    let text = serde_json::to_string_pretty(&outcome.value).unwrap_or_default();
    let mut result = json!({ "content": [{ "type": "text", "text": text }], "isError": outcome.is_error });
    if let (Some(obj), Value::Object(_)) = (result.as_object_mut(), &outcome.value) {
        obj.insert("structuredContent".into(), outcome.value);
    }
    result
}
