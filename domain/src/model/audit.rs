//! The audit trail: where requests came in, what was decided, and how the trail is
//! searched and shown.

use serde::{Deserialize, Serialize};
use std::fmt;

text_enum!(
    /// Where a request came in: the REST gateway, the Gateway MCP, the Management MCP or
    /// the OAuth server.
    RequestChannel { Rest => "rest", Mcp => "mcp", McpManage => "mcp-manage", Oauth => "oauth" }
);

impl Reason {
    /// Whether a refusal for this reason is our own trouble (the store, the audit trail,
    /// an upstream, a bug) rather than anything the caller did. Such refusals never count
    /// against the caller's address: a failing database must not get its users turned
    /// away at the door.
    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Reason::StoreUnavailable
                | Reason::AuditUnavailable
                | Reason::TemporarilyUnavailable
                | Reason::ServerError
                | Reason::InternalError
                | Reason::UpstreamTimeout
                | Reason::UpstreamUnavailable
                | Reason::UpstreamTlsFailed
                | Reason::UpstreamTlsProfileMissing
        )
    }
}

impl Reason {
    /// Whether a refusal for this reason counts against the caller's address
    /// (`Sources`): not our own trouble (`is_ours`), and not the DPoP nonce a client
    /// must first be told (RFC 9449 §8: the protocol's first round, not a fault).
    pub fn counts_against_caller(self) -> bool {
        !self.is_ours() && self != Reason::UseDpopNonce
    }
}

impl RequestChannel {
    /// How the portal names it.
    pub fn label(self) -> &'static str {
        match self {
            RequestChannel::Rest => "REST",
            RequestChannel::Mcp => "Gateway MCP",
            RequestChannel::McpManage => "Management MCP",
            RequestChannel::Oauth => "OAuth",
        }
    }
}

/// How a request's proven key (its row's `sender_key`) is named on a badge.
pub fn proof_label(sender_key: &str) -> &'static str {
    match (sender_key.contains("dpop:"), sender_key.contains("x5t#S256:")) {
        (true, true) => "DPoP + mTLS",
        (false, true) => "mTLS",
        _ => "DPoP",
    }
}

text_enum!(
    /// Whether a request was let through (its answer may still be an upstream error).
    Decision { Allowed => "allowed", Refused => "refused" }
);

text_enum!(
    /// Why a request's row says what it says: `allowed`, or the reason it was refused or
    /// failed. The one vocabulary of the audit trail's `reason` column, for every channel;
    /// the gateway's, OAuth's and MCP's refusals each map to one of these exhaustively,
    /// and the audit search accepts exactly these. A row that left before anything was
    /// decided says `undecided` (none should).
    Reason {
        Allowed => "allowed",
        Undecided => "undecided",
        // Who is calling.
        MissingCredential => "missing_credential",
        CredentialInQuery => "credential_in_query",
        InvalidToken => "invalid_token",
        // DPoP (RFC 9449): a proof that fails a check, one used twice, one without the
        // server's current nonce; a bound token sent as a bearer token.
        InvalidDpopProof => "invalid_dpop_proof",
        DpopProofReplayed => "dpop_proof_replayed",
        UseDpopNonce => "use_dpop_nonce",
        SenderConstraintRequired => "sender_constraint_required",
        // RFC 8705: a certificate-bound token without its certificate.
        CertificateMismatch => "certificate_mismatch",
        IdentityMismatch => "identity_mismatch",
        // Federation: a trusted issuer's good token naming an identity no profile is
        // linked to.
        IdentityNotLinked => "identity_not_linked",
        ClientSuspended => "client_suspended",
        OwnerDisabled => "owner_disabled",
        // What it may do.
        UnknownProduct => "unknown_product",
        UnknownEndpoint => "unknown_endpoint",
        NotGranted => "not_granted",
        InsufficientScope => "insufficient_scope",
        NotFound => "not_found",
        Forbidden => "forbidden",
        Conflict => "conflict",
        // How much.
        RateLimited => "rate_limited",
        ProductRateLimited => "product_rate_limited",
        GlobalRateLimited => "global_rate_limited",
        TooManyRefusals => "too_many_refusals",
        PayloadTooLarge => "payload_too_large",
        // The request itself.
        InvalidRequest => "invalid_request",
        InvalidArguments => "invalid_arguments",
        IncompleteBody => "incomplete_body",
        MethodNotAllowed => "method_not_allowed",
        NotAcceptable => "not_acceptable",
        UnsupportedMediaType => "unsupported_media_type",
        OriginNotAllowed => "origin_not_allowed",
        HostNotAllowed => "host_not_allowed",
        // OAuth (RFC 6749 §5.2 codes), and a client assertion (RFC 7523) used twice.
        InvalidClient => "invalid_client",
        ClientAssertionReplayed => "client_assertion_replayed",
        InvalidScope => "invalid_scope",
        // RFC 9396: a per-task token that cannot be granted as asked; a call outside
        // its task's endpoints; one past its number of calls.
        InvalidAuthorizationDetails => "invalid_authorization_details",
        EndpointNotInTask => "endpoint_not_in_task",
        TaskUsesExhausted => "task_uses_exhausted",
        UnsupportedGrantType => "unsupported_grant_type",
        // RFC 8693: a subject token that cannot be exchanged; an audience not ours.
        InvalidGrant => "invalid_grant",
        InvalidTarget => "invalid_target",
        // MCP and JSON-RPC.
        SessionRequired => "session_required",
        UnknownSession => "unknown_session",
        UnknownTool => "unknown_tool",
        ParseError => "parse_error",
        MethodNotFound => "method_not_found",
        InvalidParams => "invalid_params",
        HeaderMismatch => "header_mismatch",
        UnsupportedProtocolVersion => "unsupported_protocol_version",
        RpcError => "rpc_error",
        // Upstream and our own trouble.
        UpstreamTimeout => "upstream_timeout",
        UpstreamUnavailable => "upstream_unavailable",
        UpstreamTlsFailed => "upstream_tls_failed",
        UpstreamTlsProfileMissing => "upstream_tls_profile_missing",
        ClientClosedRequest => "client_closed_request",
        AuditUnavailable => "audit_unavailable",
        StoreUnavailable => "store_unavailable",
        TemporarilyUnavailable => "temporarily_unavailable",
        ServerError => "server_error",
        InternalError => "internal_error",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub id: i64,
    pub occurred_at: i64,
    pub channel: String,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub summary: String,
}

/// One gateway or token request, as the audit trail recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct RequestView {
    pub request_id: String,
    pub occurred_at: i64,
    pub channel: String,
    /// The MCP tool, for requests made through `/mcp`.
    pub tool: Option<String>,
    pub profile_id: Option<String>,
    pub product: Option<String>,
    pub endpoint: Option<String>,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub decision: String,
    pub reason: String,
    pub latency_us: i64,
    /// The key the request proved it holds (`dpop:<thumbprint>`), if its token was bound.
    #[serde(default)]
    pub sender_key: Option<String>,
}

/// What the security team searches the audit trail by. Every field is optional and they
/// combine with AND; the same struct is the portal's URL query, the management API's
/// query string and the export's, so a search can be shared, bookmarked and replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "store", into_params(parameter_in = Query))]
pub struct AuditFilter {
    /// Client ID.
    pub client: Option<String>,
    /// A client ID that refused requests *named* (by client id or by a credential that
    /// was the client's) without being authenticated as it.
    pub named_client: Option<String>,
    /// Profile ID.
    pub profile: Option<String>,
    /// `ai_agent`, `application` or `service`.
    pub client_type: Option<String>,
    /// Product slug.
    pub product: Option<String>,
    /// Endpoint template, e.g. `/accounts/{id}`.
    pub endpoint: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Status class: `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: Option<String>,
    /// `allowed`, `refused`, or a reason such as `invalid_token` or `rate_limited`.
    pub decision: Option<String>,
    /// `rest`, `mcp`, `oauth`, `portal`, `api` or `cli`.
    pub channel: Option<String>,
    /// Email of the person who acted (administrative events).
    pub actor: Option<String>,
    /// The `X-Request-Id` of one request.
    pub request_id: Option<String>,
    /// The task id of per-task tokens (RFC 9396 `portcullis_task`): every request of
    /// the task, and the token request that made its token.
    #[serde(default)]
    pub task: Option<String>,
    /// The client a delegated token acted on behalf of (RFC 8693 subject).
    #[serde(default)]
    pub subject: Option<String>,
    /// A client that acted in a delegated token's chain.
    #[serde(default)]
    pub acting_client: Option<String>,
    /// Text the path contains.
    pub path: Option<String>,
    /// A quick range ending now: `15m`, `24h`, `7d` or `30d`.
    pub since: Option<String>,
    /// From this instant, UTC: `2026-11-23T10:00` (or with seconds, or a date).
    pub from: Option<String>,
    /// Until this instant (exclusive), UTC, same forms as `from`.
    pub to: Option<String>,
    /// Where the previous page ended (`next` of that page).
    pub cursor: Option<String>,
}

impl AuditFilter {
    /// The filter as a URL query (`client=…&since=24h`), without the cursor unless asked;
    /// only set fields appear. The same encoding the API and the portal parse.
    pub fn to_query(&self, with_cursor: bool) -> String {
        let filter = AuditFilter { cursor: self.cursor.clone().filter(|_| with_cursor), ..self.clone() };
        let query = serde_urlencoded::to_string(&filter).unwrap_or_default();
        query.split('&').filter(|pair| !pair.is_empty() && !pair.ends_with('=')).collect::<Vec<_>>().join("&")
    }
}

/// What a request did, in one phrase: `GET /gw/accounts/accounts`, the MCP tool, or
/// `execute_endpoint → GET /gw/…` when the tool reached an endpoint.
pub fn request_phrase(
    method: &str,
    product: Option<&str>,
    path: &str,
    tool: Option<&str>,
    reached_endpoint: bool,
) -> String {
    let route = format!("{method} {}{path}", product.map(|p| format!("/gw/{p}")).unwrap_or_default());
    match (tool, reached_endpoint) {
        (Some(tool), true) => format!("{tool} → {route}"),
        (Some(tool), false) => tool.to_owned(),
        (None, _) => route,
    }
}

/// One row of the audit trail, as search, detail and export show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub id: i64,
    pub occurred_at: i64,
    pub request_id: Option<String>,
    pub channel: String,
    /// `request` for gateway, MCP and OAuth requests; otherwise the administrative action.
    pub action: String,
    pub actor_email: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub summary: String,
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub profile_id: Option<String>,
    pub client_type: Option<String>,
    pub credential_id: Option<String>,
    pub product: Option<String>,
    pub endpoint: Option<String>,
    pub tool: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<i64>,
    pub decision: Option<String>,
    pub reason: Option<String>,
    pub latency_us: Option<i64>,
    pub bytes_in: Option<i64>,
    pub bytes_out: Option<i64>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The W3C trace id of a request (to find it in the upstream's logs).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The key the request proved it holds (`dpop:<thumbprint>`), if its token was bound.
    #[serde(default)]
    pub sender_key: Option<String>,
    /// The task the request's per-task token serves.
    #[serde(default)]
    pub task_id: Option<String>,
    /// For a delegated token: the client it acts on behalf of, and the clients acting
    /// (the acting one first, space-separated).
    #[serde(default)]
    pub subject_id: Option<String>,
    #[serde(default)]
    pub actor_chain: Option<String>,
}

/// One page of search results, newest first. `next` continues after the last row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row's reason travels as text in three ways (the table, the spill file's JSON, the
    /// search's query); all three must spell it the same.
    #[test]
    fn every_reason_is_spelt_one_way() {
        for reason in Reason::ALL {
            let json = serde_json::to_value(reason).unwrap_or_default();
            assert_eq!(json, serde_json::Value::String(reason.as_str().to_owned()), "{reason:?}");
            assert_eq!(reason.as_str().parse::<Reason>().ok(), Some(*reason));
        }
        let mut seen: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), Reason::ALL.len(), "no two reasons share a spelling");
    }
}
