//! The Gateway MCP: `/mcp`, the Model Context Protocol over Streamable HTTP.
//!
//! An agent authenticates exactly as at `/gw` (the gateway's own `authenticate`), sees
//! only what its profile's grants allow, and `execute_endpoint` runs through
//! `Gateway::execute`. This module only speaks the protocol. README.md beside this file
//! lists the revisions served, the spec sections followed and the decisions.

mod jsonrpc;
mod session;
mod tools;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_domain::audit_writer::RequestEvent;
use portcullis_domain::policy::Snapshot;
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::gateway::{Gateway, Refusal};
use jsonrpc::{Message, RpcError, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use session::Sessions;

/// Revisions with the `initialize` handshake and sessions, newest first.
const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The stateless revision: every request carries its version, no session.
const STATELESS_VERSION: &str = "2026-07-28";
/// Every revision served, oldest first, as `server/discover` and `-32022` list them.
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", STATELESS_VERSION];

/// 2026-07-28 error codes (basic/index "Error codes").
const HEADER_MISMATCH: i64 = -32020;
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// A JSON-RPC body larger than this is refused with 413 before it is read.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Messages in one 2025-03-26 batch.
const MAX_BATCH: usize = 16;

const INSTRUCTIONS: &str = "Portcullis is an API gateway. Call list_collections to see the APIs this client may use, \
    list_endpoints and endpoint_details to learn one, and execute_endpoint to call it. Every call uses this client's \
    own credential and is checked against its grants, rate limited and audited like any application's.";

#[derive(Clone)]
pub struct McpServer {
    gateway: Gateway,
    sessions: Arc<Sessions>,
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
    /// `base` is the public URL, also the token issuer.
    pub fn new(gateway: Gateway, base: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let public_host = origin_of(&base).split_once("://").map(|(_, h)| h.to_owned()).unwrap_or_default();
        Self {
            gateway,
            sessions: Arc::default(),
            resource: format!("{base}/mcp"),
            metadata_url: format!("{base}/.well-known/oauth-protected-resource/mcp"),
            issuer: base,
            public_host,
        }
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

pub fn router<S: Clone + Send + Sync + 'static>(server: McpServer) -> Router<S> {
    Router::new()
        .route("/mcp", get(get_stream).post(post).delete(delete))
        .route("/.well-known/oauth-protected-resource", get(resource_metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(resource_metadata))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(server)
}

/// RFC 9728 §2: who protects `/mcp` and how to present a token to it.
async fn resource_metadata(State(mcp): State<McpServer>) -> Response {
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

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
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
/// without `Origin` does not come from a web page.
/// The refusal of a request from a foreign host or origin, if it is one.
fn foreign_request(mcp: &McpServer, headers: &HeaderMap) -> Option<Response> {
    let ours = |host_port: &str| host_port.eq_ignore_ascii_case(&mcp.public_host) || is_loopback_host(host_port);
    let host_ok = header_str(headers, "host").is_some_and(ours);
    let origin_ok = header_str(headers, "origin").is_none_or(|o| {
        let authority = o.split_once("://").map_or("", |(_, rest)| rest);
        o.starts_with("http") && ours(authority)
    });
    if host_ok && origin_ok {
        return None;
    }
    let what = if host_ok { "Origin" } else { "Host" };
    Some(rpc_fault(
        StatusCode::FORBIDDEN,
        &Value::Null,
        &RpcError::new(INVALID_REQUEST, format!("{what} not allowed for this MCP endpoint; set --public-url.")),
    ))
}

/// One MCP request's context once its caller is authenticated.
struct Ctx<'a> {
    mcp: &'a McpServer,
    snap: &'a Snapshot,
    caller: crate::gateway::Caller<'a>,
    headers: &'a HeaderMap,
    peer: IpAddr,
    now: i64,
}

/// What every POST and DELETE passes first: the DNS-rebinding check, then the
/// gateway's own authentication (a refusal is audited like any other).
async fn admit<'s>(
    mcp: &McpServer,
    snap: &'s Snapshot,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<crate::gateway::Caller<'s>, Box<Response>> {
    if let Some(refused) = foreign_request(mcp, headers) {
        return Err(Box::new(refused));
    }
    authenticate(mcp, snap, method, uri, headers, peer).await.map_err(Box::new)
}

async fn authenticate<'s>(
    mcp: &McpServer,
    snap: &'s Snapshot,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<crate::gateway::Caller<'s>, Response> {
    let started = Instant::now();
    let now = mcp.gateway.store().now();
    match mcp.gateway.authenticate(snap, headers, uri.query(), now) {
        Ok(caller) => Ok(caller),
        Err(refusal) => {
            let request_id = uuid::Uuid::now_v7().to_string();
            let event = RequestEvent {
                request_id: request_id.clone(),
                occurred_at: now,
                channel: "mcp",
                method: method.to_string(),
                path: "/mcp".into(),
                status: refusal.status().as_u16(),
                decision: "refused",
                reason: refusal.reason(),
                latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
                client_ip: Some(peer.to_string()),
                user_agent: header_str(headers, "user-agent").map(str::to_owned),
                ..RequestEvent::default()
            };
            if let Err(unaudited) = mcp.gateway.record(event).await {
                return Err(unaudited.into_response_for(&request_id, Some(&mcp.metadata_url)));
            }
            Err(refusal.into_response_for(&request_id, Some(&mcp.metadata_url)))
        }
    }
}

/// No server-to-client stream is offered: every answer comes back on its POST.
async fn get_stream(State(mcp): State<McpServer>, headers: HeaderMap) -> Response {
    if let Some(refused) = foreign_request(&mcp, &headers) {
        return refused;
    }
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST, DELETE")]).into_response()
}

async fn delete(
    State(mcp): State<McpServer>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let snap = mcp.gateway.store().snapshot().current();
    let caller = match admit(&mcp, &snap, &method, &uri, &headers, peer.ip()).await {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let Some(id) = header_str(&headers, "mcp-session-id") else {
        let e = RpcError::new(INVALID_REQUEST, "Mcp-Session-Id is required.");
        return rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e);
    };
    match mcp.sessions.end(id, &caller.profile.id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => session_not_found(),
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let snap = mcp.gateway.store().snapshot().current();
    let caller = match admit(&mcp, &snap, &method, &uri, &headers, peer.ip()).await {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    if !header_str(&headers, "content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
        let e = RpcError::new(INVALID_REQUEST, "Content-Type must be application/json.");
        return rpc_fault(StatusCode::UNSUPPORTED_MEDIA_TYPE, &Value::Null, &e);
    }
    if !accepts_json(&headers) {
        let e = RpcError::new(INVALID_REQUEST, "Accept must allow application/json.");
        return rpc_fault(StatusCode::NOT_ACCEPTABLE, &Value::Null, &e);
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &RpcError::new(PARSE_ERROR, "Parse error")),
    };
    let now = mcp.gateway.store().now();
    let ctx = Ctx { mcp: &mcp, snap: &snap, caller, headers: &headers, peer: peer.ip(), now };
    let stateless = header_str(&headers, "mcp-protocol-version")
        .is_some_and(|v| v == STATELESS_VERSION || !HANDSHAKE_VERSIONS.contains(&v) && body_is_stateless(&value));
    if stateless {
        stateless_post(&ctx, value).await
    } else {
        session_post(&ctx, value).await
    }
}

/// A request that carries its protocol version in `_meta` belongs to the stateless
/// revision even when its header names an unknown version (so it gets `-32022`).
fn body_is_stateless(value: &Value) -> bool {
    value.pointer("/params/_meta").and_then(|m| m.get(META_PROTOCOL_VERSION)).is_some()
}

// ---- 2025-03-26 / 2025-06-18 / 2025-11-25: initialize, sessions ----

async fn session_post(ctx: &Ctx<'_>, value: Value) -> Response {
    let messages = match value {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                let e = RpcError::new(INVALID_REQUEST, format!("A batch holds 1 to {MAX_BATCH} messages."));
                return rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e);
            }
            Some(items)
        }
        single => {
            return match session_message(ctx, single, false).await {
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
    // Batches (2025-03-26 only; later revisions removed them): answered together.
    let mut replies = Vec::new();
    for item in messages.unwrap_or_default() {
        match session_message(ctx, item, true).await {
            Answer::Accepted => {}
            Answer::Reply(_, body, _) => replies.push(body),
            Answer::Http(res) => return res,
        }
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

async fn session_message(ctx: &Ctx<'_>, value: Value, in_batch: bool) -> Answer {
    let message = match jsonrpc::classify(value) {
        Ok(m) => m,
        Err((id, e)) => return Answer::Reply(StatusCode::BAD_REQUEST, jsonrpc::error(&id, &e), None),
    };
    if let Message::Request { id, method, params } = &message {
        if method == "initialize" {
            if in_batch {
                let e = RpcError::new(INVALID_REQUEST, "initialize must not be part of a batch.");
                return Answer::Reply(StatusCode::BAD_REQUEST, jsonrpc::error(id, &e), None);
            }
            return initialize(ctx, id, params);
        }
    }
    // Everything after initialize names its session (Streamable HTTP, "Session Management").
    let Some(session_id) = header_str(ctx.headers, "mcp-session-id") else {
        let e = RpcError::new(INVALID_REQUEST, "Mcp-Session-Id is required; send initialize first.");
        return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &request_id(&message), &e));
    };
    let Ok(session) = ctx.mcp.sessions.touch(session_id, &ctx.caller.profile.id, ctx.now) else {
        return Answer::Http(session_not_found());
    };
    if in_batch && session.protocol_version != "2025-03-26" {
        let e = RpcError::new(INVALID_REQUEST, "Batches are not part of this protocol version.");
        return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e));
    }
    // Streamable HTTP, "Protocol Version Header": an invalid or unsupported one is a 400.
    // Another version we support is not refused: the conformance suite sends 2025-03-26
    // inside a 2025-11-25 session, and the spec refuses only unknown versions.
    if let Some(v) = header_str(ctx.headers, "mcp-protocol-version") {
        if !HANDSHAKE_VERSIONS.contains(&v) {
            let e = RpcError::new(INVALID_REQUEST, format!("Unsupported MCP-Protocol-Version {v}."))
                .with_data(json!({ "supported": SUPPORTED_VERSIONS }));
            return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &request_id(&message), &e));
        }
    }
    match message {
        Message::Notification | Message::Response => Answer::Accepted,
        Message::Request { id, method, params } => match dispatch(ctx, &method, &params, false).await {
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

fn server_info() -> Value {
    json!({ "name": "portcullis", "title": "Portcullis Gateway MCP", "version": env!("CARGO_PKG_VERSION") })
}

fn initialize(ctx: &Ctx<'_>, id: &Value, params: &Map<String, Value>) -> Answer {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        let e = RpcError::invalid_params("initialize needs params.protocolVersion.");
        return Answer::Reply(StatusCode::OK, jsonrpc::error(id, &e), None);
    };
    // Lifecycle, "Version Negotiation": the requested version if we speak it, else our latest.
    let version = HANDSHAKE_VERSIONS.iter().copied().find(|v| *v == requested).unwrap_or(HANDSHAKE_VERSIONS[0]);
    let session = ctx.mcp.sessions.open(&ctx.caller.profile.id, version, ctx.now);
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
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

async fn stateless_post(ctx: &Ctx<'_>, value: Value) -> Response {
    let fault = |id: &Value, e: RpcError| rpc_fault(stateless_status(e.code), id, &e);
    if value.is_array() {
        return fault(&Value::Null, RpcError::new(INVALID_REQUEST, "Batches are not part of this protocol version."));
    }
    let (id, method, params) = match jsonrpc::classify(value) {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification | Message::Response) => return StatusCode::ACCEPTED.into_response(),
        Err((id, e)) => return fault(&id, e),
    };
    if let Err(e) = check_envelope(ctx.headers, &method, &params) {
        return fault(&id, e);
    }
    match dispatch(ctx, &method, &params, true).await {
        Ok(mut result) => {
            if let Some(obj) = result.as_object_mut() {
                obj.insert("resultType".into(), json!("complete"));
            }
            rpc_response(StatusCode::OK, jsonrpc::result(&id, result))
        }
        Err(e) => fault(&id, e),
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

async fn dispatch(
    ctx: &Ctx<'_>,
    method: &str,
    params: &Map<String, Value>,
    stateless: bool,
) -> Result<Value, RpcError> {
    match method {
        "ping" => Ok(json!({})),
        "server/discover" if stateless => Ok(json!({
            "supportedVersions": SUPPORTED_VERSIONS,
            "capabilities": { "tools": {} },
            "instructions": INSTRUCTIONS,
            "cacheScope": "public",
            "ttlMs": 3_600_000,
            "_meta": { META_SERVER_INFO: server_info() },
        })),
        "tools/list" => {
            let mut result = json!({ "tools": tools::definitions() });
            if stateless {
                if let Some(obj) = result.as_object_mut() {
                    // The four tools are the same for everyone; what they return is not.
                    obj.insert("cacheScope".into(), json!("public"));
                    obj.insert("ttlMs".into(), json!(3_600_000));
                }
            }
            Ok(result)
        }
        "tools/call" => call_tool(ctx, params).await,
        other => Err(RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {other}"))),
    }
}

async fn call_tool(ctx: &Ctx<'_>, params: &Map<String, Value>) -> Result<Value, RpcError> {
    let started = Instant::now();
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("params.name is required."))?;
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => return Err(RpcError::invalid_params("params.arguments must be an object.")),
    };
    let caller = tools::Caller { caller: &ctx.caller, now: ctx.now };
    let outcome = match name {
        tools::LIST_COLLECTIONS => tools::list_collections(&caller, ctx.snap),
        tools::LIST_ENDPOINTS => tools::list_endpoints(&caller, ctx.snap, args),
        tools::ENDPOINT_DETAILS => tools::endpoint_details(&caller, ctx.snap, args),
        tools::EXECUTE_ENDPOINT => {
            tools::execute_endpoint(&ctx.mcp.gateway, ctx.snap, args, ctx.headers, ctx.peer).await
        }
        other => {
            record_tool(ctx, other, 404, "unknown_tool", None, started).await?;
            return Err(RpcError::invalid_params(format!("Unknown tool: {other}")));
        }
    };
    if let Some(audit) = &outcome.audit {
        record_tool(ctx, name, audit.status, audit.reason, audit.product.clone(), started).await?;
    }
    let text = serde_json::to_string_pretty(&outcome.value).unwrap_or_default();
    let mut result = json!({ "content": [{ "type": "text", "text": text }], "isError": outcome.is_error });
    if let (Some(obj), Value::Object(_)) = (result.as_object_mut(), &outcome.value) {
        obj.insert("structuredContent".into(), outcome.value);
    }
    Ok(result)
}

/// The audit row of a tool call that does not reach the gateway (discovery, or a call
/// refused before it has an endpoint). `execute_endpoint` is audited by the gateway.
async fn record_tool(
    ctx: &Ctx<'_>,
    tool: &str,
    status: u16,
    reason: &'static str,
    product: Option<String>,
    started: Instant,
) -> Result<(), RpcError> {
    let profile = ctx.caller.profile;
    let event = RequestEvent {
        request_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: ctx.now,
        channel: "mcp",
        tool: Some(tool.chars().take(100).collect()),
        client_id: Some(profile.client_id.clone()),
        profile_id: Some(profile.id.clone()),
        client_type: Some(profile.client_kind.as_str()),
        credential_id: Some(ctx.caller.credential.id.clone()),
        product,
        method: "POST".into(),
        path: "/mcp".into(),
        status,
        decision: if status < 400 { "allowed" } else { "refused" },
        reason,
        latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
        client_ip: Some(ctx.peer.to_string()),
        user_agent: header_str(ctx.headers, "user-agent").map(str::to_owned),
        ..RequestEvent::default()
    };
    // Fail-closed with a full audit queue: the tool's answer must not go out unaudited.
    ctx.mcp.gateway.record(event).await.map_err(|r: Refusal| {
        RpcError::new(jsonrpc::INTERNAL_ERROR, r.detail()).with_data(json!({ "code": r.reason() }))
    })
}
