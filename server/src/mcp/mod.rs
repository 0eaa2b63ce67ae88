//! The Model Context Protocol over Streamable HTTP, on two routes that share it:
//!
//! - the Gateway MCP, `/mcp`: an agent authenticates exactly as at `/gw` (the gateway's
//!   own `authenticate`), sees only what its profile's grants allow, and
//!   `execute_endpoint` runs through `Gateway::execute`;
//! - the Management MCP, `/mcp/manage`: a person's automation, with a personal access
//!   token; its tools (`manage.rs`) are the domain's operations under that person's
//!   rules and the token's scopes.
//!
//! This module only speaks the protocol: here the server, its two surfaces and who a
//! request comes from; `transport.rs` the HTTP side (checks, authentication, audit row,
//! handlers); `handshake.rs` the 2025 revisions; `stateless.rs` 2026-07-28;
//! `dispatch.rs` the methods; `jsonrpc.rs` messages; `session.rs` sealed session ids;
//! `tools.rs` and `manage.rs` the two tool sets. README.md beside this file lists the
//! revisions served, the spec sections followed and the decisions.
//!
//! Every HTTP request reserves its audit row before anything else, and every way it can
//! end — a transport refusal, a protocol fault, a tool's answer — finishes that row: one
//! row per request (per message in a 2025-03-26 batch). `execute_endpoint` hands its row
//! to the gateway, which writes it as for any REST call.

mod dispatch;
mod handshake;
mod jsonrpc;
mod manage;
mod session;
mod stateless;
mod tools;
mod transport;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use portcullis_app::ssr::ClientIp;
use portcullis_app::ssr::PortalState;
use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::audit_writer::{Committed, PendingRow};
use portcullis_domain::enforcement::Snapshot;
use portcullis_domain::keyed::Limiter;
use portcullis_domain::model::{Reason, RequestChannel};
use portcullis_domain::secrets::ServerSecret;
use portcullis_domain::DomainError;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::audit;
use crate::body::{self as request_body, BodyError};
use crate::dpop::Possession;
use crate::gateway::{Caller, Gateway, Held, Query};
use crate::headers::{bearer, header_str, Origin};
use crate::tls::ClientCertificate;
use dispatch::{dispatch, note};
use handshake::session_post;
use jsonrpc::{
    Message, RpcError, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use session::{EndError, Sessions};
use stateless::{body_is_stateless, stateless_post};
use transport::{delete, get_stream, post, reserve, session_not_found};

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
    /// What the portal's own operations need (the store, token settings, the upstream
    /// TLS profiles this server has, the client its Test access calls the gateway with):
    /// the Management MCP performs the portal's operations, not copies of them.
    portal: PortalState,
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
    /// The public URL is the token issuer's; session ids are sealed with a key derived
    /// from `secret`, so every replica holding it serves every session.
    pub fn new(gateway: Gateway, portal: PortalState, secret: &ServerSecret) -> Self {
        let base = portal.tokens.issuer.trim_end_matches('/').to_owned();
        let public_host = origin_of(&base).split_once("://").map(|(_, h)| h.to_owned()).unwrap_or_default();
        Self {
            gateway,
            surface: Surface::Gateway,
            sessions: Arc::new(Sessions::new(secret)),
            person_ends: Arc::new(Limiter::new(60, 60, 100_000)),
            portal,
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
    let snap = mcp.gateway.enforcement().snapshot().current();
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
        // RFC 9449 §5.1: proofs it accepts; bearer tokens are still accepted unless bound.
        "dpop_signing_alg_values_supported": portcullis_domain::enforcement::DPOP_ALGS,
        "dpop_bound_access_tokens_required": false,
        // RFC 9728 §2: tokens bound to the client certificate are checked against it.
        "tls_client_certificate_bound_access_tokens": mcp.gateway.client_certificates(),
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

    fn stamp(&self, event: &mut portcullis_domain::audit_event::RequestEvent) {
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
