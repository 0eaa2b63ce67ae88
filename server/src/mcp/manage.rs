//! The Management MCP's tools (`/mcp/manage`): the portal's operations for a person's
//! automation, authenticated by a personal access token.
//!
//! Each tool is one call of the domain with the token's `Actor`, so it obeys exactly the
//! rules of the portal and the management API (role, ownership, separation of duties,
//! the token's scopes) and writes the same administrative events, with channel
//! `mcp-manage`. Nothing here decides who may do what. The annotations say truthfully
//! what each tool does: `readOnlyHint` for reads, `destructiveHint` for what cannot be
//! undone (revocations, ending access), `idempotentHint` where repeating changes nothing.

use portcullis_app::ssr::PortalState;
use portcullis_domain::access::{Actor, Authority};
use portcullis_domain::audit_search::DEFAULT_PAGE;
use portcullis_domain::catalog::{NewProduct, ProductPolicy};
use portcullis_domain::clients::NewClient;
use portcullis_domain::model::{AuditFilter, ClientKind, Environment, Reason, Role};
use portcullis_domain::scopes::Scopes;
use portcullis_domain::upstream_tls::UpstreamTlsName;
use portcullis_domain::DomainError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::tools::{Outcome, ToolAudit};

/// What a tool's annotations say about it.
#[derive(Clone, Copy)]
enum Kind {
    /// Reads only.
    Read,
    /// Changes something; doing it again does something again.
    Write,
    /// Changes something; doing it again changes nothing more.
    Idempotent,
    /// Takes something away that cannot be given back (a revocation, an end).
    Destructive,
    /// Calls an upstream API through the gateway: what the call changes is the
    /// upstream's, beyond what Portcullis can tell.
    Call,
}

struct Tool {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    kind: Kind,
    /// Properties (name, JSON schema) and which are required.
    properties: fn() -> Value,
    required: &'static [&'static str],
}

fn id(what: &str) -> Value {
    json!({ "type": "string", "description": what })
}

fn reason() -> Value {
    json!({ "type": "string", "description": "Why, for the audit trail (required)." })
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "whoami",
        title: "Who am I",
        description: "The person this token acts for, their role, and the token's scopes.",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "list_clients",
        title: "List clients",
        description: "This person's own clients (agents, applications, services). The security team and admins \
                      find everyone's with access_review and search_audit.",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "get_client",
        title: "Client details",
        description: "One client: its profiles, credentials (never their secrets) and grants.",
        kind: Kind::Read,
        properties: || json!({ "client_id": id("A client id, cl_…") }),
        required: &["client_id"],
    },
    Tool {
        name: "register_client",
        title: "Register a client",
        description: "Registers an agent, application or service with a sandbox profile. The result holds its \
                      client secret, shown this once: store it in a secret manager, never in a log.",
        kind: Kind::Write,
        properties: || {
            json!({
                "name": { "type": "string" },
                "kind": { "type": "string", "enum": ["ai_agent", "application", "service"] },
                "description": { "type": "string" }
            })
        },
        required: &["name", "kind"],
    },
    Tool {
        name: "add_profile",
        title: "Add a profile",
        description: "Adds a production (or sandbox) profile to a client, with its own secret, shown once.",
        kind: Kind::Write,
        properties: || {
            json!({
                "client_id": id("A client id, cl_…"),
                "environment": { "type": "string", "enum": ["sandbox", "production"] }
            })
        },
        required: &["client_id", "environment"],
    },
    Tool {
        name: "rotate_secret",
        title: "Rotate a profile's secret",
        description: "Issues a new client secret for a profile (shown once); the previous one keeps working \
                      for its grace period.",
        kind: Kind::Write,
        properties: || json!({ "profile_id": id("A profile id, pf_…") }),
        required: &["profile_id"],
    },
    Tool {
        name: "issue_api_key",
        title: "Issue an API key",
        description: "Issues an API key for a profile, shown once.",
        kind: Kind::Write,
        properties: || json!({ "profile_id": id("A profile id, pf_…") }),
        required: &["profile_id"],
    },
    Tool {
        name: "register_public_key",
        title: "Register a public key",
        description: "Registers a public key (a JWK: EC P-256, Ed25519 or RSA of 2048 bits or more) that the \
                      client signs token requests with (private_key_jwt, RFC 7523) instead of a secret. With \
                      `replace`, the profile's secrets and other keys keep working for the grace period only.",
        kind: Kind::Write,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "jwk": { "type": "object", "description": "The public key as a JWK, or a JWKS of one key" },
                "replace": { "type": "boolean", "description": "Retire the profile's other secrets and keys after the grace period" }
            })
        },
        required: &["profile_id", "jwk"],
    },
    Tool {
        name: "register_certificate_subject",
        title: "Register a certificate subject",
        description: "Registers the subject distinguished name of the certificates a trusted authority issues \
                      to the client (tls_client_auth, RFC 8705): over TLS with such a certificate, a token \
                      request needs only the client id. Give the name as RFC 4514 writes it \
                      (CN=billing-agent,O=Acme,C=GB) or one such certificate in PEM.",
        kind: Kind::Write,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "subject": { "type": "string", "description": "The subject DN (RFC 4514), or a PEM certificate" }
            })
        },
        required: &["profile_id", "subject"],
    },
    Tool {
        name: "list_issuers",
        title: "List trusted issuers",
        description: "The identity providers whose tokens the gateway accepts for identities linked to profiles \
                      (federation), with their keys, audiences, algorithms, caller claim and linked count (admins \
                      and the security team).",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "register_issuer",
        title: "Trust an identity provider",
        description: "Registers an issuer (its tokens' `iss`), its keys (an https `jwks_uri`, or a pasted `jwks`, or \
                      neither: the `jwks_uri` of its OpenID Provider metadata), \
                      the audiences and asymmetric algorithms (RS256, PS256, ES256, EdDSA) its tokens must have, \
                      and the claim that names the caller (`sub` by default). Admins only.",
        kind: Kind::Write,
        properties: || {
            json!({
                "issuer": { "type": "string", "description": "The `iss` of its tokens, exactly" },
                "jwks_uri": { "type": "string", "description": "An https URL of its JWKS" },
                "jwks": { "type": "string", "description": "Its JWKS (public keys), when there is no URL" },
                "audiences": { "type": "array", "items": { "type": "string" }, "description": "Accepted `aud` values" },
                "algorithms": { "type": "array", "items": { "type": "string", "enum": ["RS256", "PS256", "ES256", "EdDSA"] } },
                "subject_claim": { "type": "string", "description": "The claim naming the caller: sub, azp, client_id, …" }
            })
        },
        required: &["issuer", "audiences", "algorithms"],
    },
    Tool {
        name: "disable_issuer",
        title: "Stop trusting an identity provider",
        description: "Every token of the issuer is refused from the next request, whatever identity it names. \
                      Admins only; not undone.",
        kind: Kind::Destructive,
        properties: || json!({ "issuer_id": id("A trusted issuer id, is_…") }),
        required: &["issuer_id"],
    },
    Tool {
        name: "link_identity",
        title: "Link an identity at a trusted issuer",
        description: "Links the value of a trusted issuer's caller claim to a profile: that issuer's tokens naming \
                      it are then accepted as the profile. A credential of kind `federated`, revoked like any \
                      other. Admins only.",
        kind: Kind::Write,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "issuer_id": id("A trusted issuer id, is_…"),
                "subject": { "type": "string", "description": "The caller claim's value for this agent" }
            })
        },
        required: &["profile_id", "issuer_id", "subject"],
    },
    Tool {
        name: "revoke_credential",
        title: "Revoke a credential",
        description: "Revokes a client secret, API key or public key: the next request made with it is refused, \
                      and so are the tokens obtained with it.",
        kind: Kind::Destructive,
        properties: || json!({ "credential_id": id("A credential id, cr_…") }),
        required: &["credential_id"],
    },
    Tool {
        name: "list_products",
        title: "List products",
        description: "The API products of the catalog, with their endpoints.",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "request_access",
        title: "Request a product",
        description: "Requests a product for a profile, with scopes and a justification. Sandbox requests are \
                      granted at once; production requests wait for an admin.",
        kind: Kind::Write,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "product_id": id("A product id from list_products."),
                "scopes": { "type": "array", "items": { "type": "string" } },
                "justification": { "type": "string" }
            })
        },
        required: &["profile_id", "product_id", "scopes"],
    },
    Tool {
        name: "list_pending_requests",
        title: "Requests waiting for approval",
        description: "Production access requests waiting for an admin's decision (admins).",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "decide_request",
        title: "Approve or reject a request",
        description: "Approves (for 1 to 90 days) or rejects a production access request, with a reason \
                      (admins; never one's own client's).",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "grant_id": id("A request id from list_pending_requests."),
                "decision": { "type": "string", "enum": ["approve", "reject"] },
                "reason": reason(),
                "days": { "type": "integer", "minimum": 1, "maximum": 90 }
            })
        },
        required: &["grant_id", "decision", "reason"],
    },
    Tool {
        name: "search_audit",
        title: "Search the audit trail",
        description: "One page of the audit trail, newest first (security team and admins). Filters combine; \
                      pass `next` of a page as `cursor` for the one after.",
        kind: Kind::Read,
        properties: || {
            json!({
                "client": id("A client id."),
                "named_client": id("Refused attempts that named this client id."),
                "profile": id("A profile id."),
                "product": id("A product slug."),
                "decision": { "type": "string", "description": "allowed, refused, or a reason such as invalid_token" },
                "channel": { "type": "string", "description": "rest, mcp, mcp-manage, oauth, portal, api or cli" },
                "actor": { "type": "string", "description": "Email of the person who acted." },
                "request_id": id("One request's X-Request-Id."),
                "since": { "type": "string", "enum": ["15m", "1h", "24h", "7d", "30d"] },
                "from": { "type": "string", "description": "UTC, e.g. 2026-11-23T10:00" },
                "to": { "type": "string", "description": "UTC, exclusive" },
                "cursor": { "type": "string" },
                "limit": { "type": "integer", "minimum": 1, "maximum": 500 }
            })
        },
        required: &[],
    },
    Tool {
        name: "client_activity",
        title: "A client's activity",
        description: "Thirty days of a client's traffic: requests per day, top endpoints, refusals by reason, \
                      credentials used, and refused attempts that named it.",
        kind: Kind::Read,
        properties: || json!({ "client_id": id("A client id, cl_…") }),
        required: &["client_id"],
    },
    Tool {
        name: "access_review",
        title: "Access review",
        description: "Every client with its owner, grants and credentials, and what needs a look: stale or \
                      unused credentials, grants expiring or never used, disabled owners (security team, admins).",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "review_revoke_credential",
        title: "Revoke a credential (review)",
        description: "The access review's revocation, with a reason (security team, admins).",
        kind: Kind::Destructive,
        properties: || json!({ "credential_id": id("A credential id, cr_…"), "reason": reason() }),
        required: &["credential_id", "reason"],
    },
    Tool {
        name: "review_end_grant",
        title: "End a grant (review)",
        description: "Ends an approved grant at once, with a reason (security team, admins).",
        kind: Kind::Destructive,
        properties: || json!({ "grant_id": id("A grant id."), "reason": reason() }),
        required: &["grant_id", "reason"],
    },
    Tool {
        name: "mark_client_reviewed",
        title: "Mark a client reviewed",
        description: "Records that a client's access was reviewed, with a note (security team, admins).",
        kind: Kind::Write,
        properties: || json!({ "client_id": id("A client id, cl_…"), "reason": reason() }),
        required: &["client_id", "reason"],
    },
    Tool {
        name: "review_extend_grant",
        title: "Extend a grant (review)",
        description: "Extends an approved grant by 1 to 90 days from now, with a reason (security team, admins; \
                      never one's own client's).",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "grant_id": id("A grant id."),
                "days": { "type": "integer", "minimum": 1, "maximum": 90 },
                "reason": reason()
            })
        },
        required: &["grant_id", "days", "reason"],
    },
    Tool {
        name: "recent_requests",
        title: "A client's recent requests",
        description: "The client's latest 25 requests (gateway, MCP, token endpoint), newest first.",
        kind: Kind::Read,
        properties: || json!({ "client_id": id("A client id, cl_…") }),
        required: &["client_id"],
    },
    Tool {
        name: "test_access",
        title: "Test a profile's access",
        description: "Calls the gateway as the profile, with its own client secret (a token acting for you), \
                      as the portal's Test access does: the answer's status, request id, rate limit and body.",
        kind: Kind::Call,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "method": { "type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"] },
                "path": { "type": "string", "description": "The gateway path, e.g. /gw/accounts/accounts." }
            })
        },
        required: &["profile_id", "method", "path"],
    },
    Tool {
        name: "set_rate_limit",
        title: "Set a profile's rate limit",
        description: "Requests per minute and burst for one profile (admins).",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "rate_per_minute": { "type": "integer", "minimum": 1 },
                "burst": { "type": "integer", "minimum": 1 }
            })
        },
        required: &["profile_id", "rate_per_minute", "burst"],
    },
    Tool {
        name: "set_token_lifetime",
        title: "Set a profile's token lifetime",
        description: "How long access tokens issued to this profile live, in seconds (admins).",
        kind: Kind::Idempotent,
        properties: || json!({ "profile_id": id("A profile id, pf_…"), "seconds": { "type": "integer" } }),
        required: &["profile_id", "seconds"],
    },
    Tool {
        name: "set_sender_constraint",
        title: "Require sender-constrained tokens",
        description: "Whether a profile accepts only DPoP-bound access tokens (`dpop`), only tokens bound to a TLS \
                      client certificate (`mtls`), or also bearer tokens and API keys (`none`), on every channel \
                      (admins).",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "sender_constraint": { "type": "string", "enum": ["none", "dpop", "mtls"] }
            })
        },
        required: &["profile_id", "sender_constraint"],
    },
    Tool {
        name: "set_may_act",
        title: "Choose who may act for a profile",
        description: "Which clients may act on behalf of a profile's client through token exchange (RFC 8693 \
                      `may_act`): `actors` null for any client holding one of its tokens, or the client ids \
                      allowed ([] for none). Its owner or an admin; delegated tokens of clients no longer \
                      allowed stop on their next request.",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "profile_id": id("A profile id, pf_…"),
                "actors": { "type": ["array", "null"], "items": { "type": "string" }, "description": "Client ids, cl_…" }
            })
        },
        required: &["profile_id", "actors"],
    },
    Tool {
        name: "create_product",
        title: "Publish a product",
        description: "Publishes an API product (admins); add its endpoints with import_openapi.",
        kind: Kind::Write,
        properties: product_properties,
        required: &["slug", "name", "sandbox_url", "production_url"],
    },
    Tool {
        name: "update_product",
        title: "Edit a product",
        description: "Replaces a product's name, description, owner, tags and upstream URLs (admins).",
        kind: Kind::Idempotent,
        properties: || {
            let mut p = product_properties();
            p["product_id"] = id("A product id from list_products.");
            p
        },
        required: &["product_id", "slug", "name", "sandbox_url", "production_url"],
    },
    Tool {
        name: "import_openapi",
        title: "Import an OpenAPI document",
        description: "Adds or updates a product's endpoints from an OpenAPI 3.0 or 3.1 document, JSON or YAML \
                      (admins). Endpoints the document no longer describes are kept.",
        kind: Kind::Idempotent,
        properties: || json!({ "product_id": id("A product id."), "document": { "type": "string" } }),
        required: &["product_id", "document"],
    },
    Tool {
        name: "set_product_policy",
        title: "Set a product's gateway policy",
        description: "What the gateway does for every call to a product: a rate limit across all callers, \
                      whether an API key may come in the query string, the upstream TLS profile (admins).",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "product_id": id("A product id."),
                "rate_per_minute": { "type": ["integer", "null"], "minimum": 1 },
                "api_key_in_query": { "type": "boolean" },
                "upstream_tls": { "type": ["string", "null"], "description": "A profile this server has; null for the system's roots." }
            })
        },
        required: &["product_id"],
    },
    Tool {
        name: "list_users",
        title: "List people",
        description: "Every account with its role and whether it is disabled (admins).",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "set_user_role",
        title: "Set a person's role",
        description: "developer, security or admin (admins). The last active admin stays an admin.",
        kind: Kind::Idempotent,
        properties: || {
            json!({
                "user_id": id("A person's id, us_…"),
                "role": { "type": "string", "enum": ["developer", "security", "admin"] }
            })
        },
        required: &["user_id", "role"],
    },
    Tool {
        name: "set_user_disabled",
        title: "Disable or enable a person",
        description: "A disabled person cannot sign in or use their tokens, and their clients are refused \
                      (admins; never oneself or the last admin).",
        kind: Kind::Destructive,
        properties: || json!({ "user_id": id("A person's id, us_…"), "disabled": { "type": "boolean" }, "reason": reason() }),
        required: &["user_id", "disabled", "reason"],
    },
    Tool {
        name: "set_client_suspended",
        title: "Suspend or resume a client",
        description: "A suspended client's requests and token requests are refused until it is resumed; its \
                      credentials and grants are kept (admins).",
        kind: Kind::Destructive,
        properties: || json!({ "client_id": id("A client id, cl_…"), "suspended": { "type": "boolean" }, "reason": reason() }),
        required: &["client_id", "suspended", "reason"],
    },
    Tool {
        name: "list_tokens",
        title: "List personal access tokens",
        description: "This person's personal access tokens: name, prefix, scopes, expiry, last use (never the \
                      tokens themselves).",
        kind: Kind::Read,
        properties: || json!({}),
        required: &[],
    },
    Tool {
        name: "create_token",
        title: "Create a personal access token",
        description: "A new token for this person, shown once, with at most the scopes of the token making \
                      it (omitted: the same scopes). Keep it out of logs.",
        kind: Kind::Write,
        properties: || {
            json!({
                "name": { "type": "string" },
                "days": { "type": "integer", "minimum": 1, "maximum": 366 },
                "scopes": { "type": "array", "items": { "type": "string" }, "description": "e.g. clients:read, audit:read" }
            })
        },
        required: &["name"],
    },
    Tool {
        name: "revoke_token",
        title: "Revoke a personal access token",
        description: "Revokes one of this person's tokens: its next request is refused.",
        kind: Kind::Destructive,
        properties: || json!({ "token_id": id("A token id from list_tokens, pat_…") }),
        required: &["token_id"],
    },
];

fn product_properties() -> Value {
    json!({
        "slug": { "type": "string", "description": "The path segment under /gw/, e.g. accounts" },
        "name": { "type": "string" },
        "description": { "type": "string" },
        "owner": { "type": "string" },
        "tags": { "type": "array", "items": { "type": "string" } },
        "sandbox_url": { "type": "string" },
        "production_url": { "type": "string" }
    })
}

/// The tool definitions for `tools/list`: the same for everyone (what a call may do is
/// decided when it is made).
pub fn definitions() -> Value {
    Value::Array(
        TOOLS
            .iter()
            .map(|t| {
                let (read_only, destructive, idempotent) = match t.kind {
                    Kind::Read => (true, false, true),
                    Kind::Write => (false, false, false),
                    Kind::Idempotent => (false, false, true),
                    Kind::Destructive => (false, true, true),
                    // Repeating a call to an upstream may do something again.
                    Kind::Call => (false, true, false),
                };
                json!({
                    "name": t.name,
                    "title": t.title,
                    "description": t.description,
                    "inputSchema": {
                        "type": "object",
                        "properties": (t.properties)(),
                        "required": t.required,
                        "additionalProperties": false
                    },
                    "annotations": {
                        "readOnlyHint": read_only,
                        "destructiveHint": destructive,
                        "idempotentHint": idempotent,
                        "openWorldHint": matches!(t.kind, Kind::Call)
                    }
                })
            })
            .collect(),
    )
}

/// The arguments as the tool's own type: a missing, mistyped or unknown member is the
/// caller's mistake, answered as a tool error it can correct.
fn args<T: DeserializeOwned>(args: &Map<String, Value>) -> Result<T, DomainError> {
    serde_json::from_value(Value::Object(args.clone()))
        .map_err(|e| DomainError::Invalid(format!("The arguments do not fit this tool: {e}.")))
}

fn value<T: Serialize>(v: T) -> Result<Value, DomainError> {
    serde_json::to_value(v).map_err(|e| DomainError::Internal(format!("tool result: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientArg {
    client_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileArg {
    profile_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestAccess {
    profile_id: String,
    method: String,
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialArg {
    credential_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    name: String,
    kind: ClientKind,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddProfile {
    client_id: String,
    environment: Environment,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestAccess {
    profile_id: String,
    product_id: String,
    scopes: Vec<String>,
    #[serde(default)]
    justification: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Decision {
    Approve,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decide {
    grant_id: String,
    decision: Decision,
    reason: String,
    days: Option<i64>,
}

/// (`deny_unknown_fields` does not combine with `flatten`: unknown filters are ignored.)
#[derive(Deserialize)]
struct Search {
    #[serde(flatten)]
    filter: AuditFilter,
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialReason {
    credential_id: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantReason {
    grant_id: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientReason {
    client_id: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Extend {
    grant_id: String,
    days: i64,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    profile_id: String,
    rate_per_minute: i64,
    burst: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lifetime {
    profile_id: String,
    seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerArg {
    issuer_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkArg {
    profile_id: String,
    issuer_id: String,
    subject: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectArg {
    profile_id: String,
    subject: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArg {
    profile_id: String,
    jwk: serde_json::Value,
    #[serde(default)]
    replace: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Constraint {
    profile_id: String,
    sender_constraint: portcullis_domain::model::SenderConstraint,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MayAct {
    profile_id: String,
    /// Required, `null` included: forgetting it must not widen consent to any client.
    #[serde(deserialize_with = "Option::deserialize")]
    actors: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Product {
    #[serde(default)]
    product_id: Option<String>,
    slug: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
    sandbox_url: String,
    production_url: String,
}

impl Product {
    fn split(self) -> (Option<String>, NewProduct) {
        let Product { product_id, slug, name, description, owner, tags, sandbox_url, production_url } = self;
        (product_id, NewProduct { slug, name, description, owner, tags, sandbox_url, production_url })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Import {
    product_id: String,
    document: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    product_id: String,
    #[serde(default)]
    rate_per_minute: Option<i64>,
    #[serde(default)]
    api_key_in_query: bool,
    #[serde(default)]
    upstream_tls: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleArg {
    user_id: String,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disable {
    user_id: String,
    disabled: bool,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suspend {
    client_id: String,
    suspended: bool,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    days: Option<i64>,
    scopes: Option<Scopes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenArg {
    token_id: String,
}

/// Runs one tool for `actor`. `None` for a name that is not a tool. Lists come wrapped
/// in an object (`{"clients": […]}`): MCP's structured content is an object.
pub async fn call(portal: &PortalState, actor: &Actor, name: &str, a: &Map<String, Value>) -> Option<Outcome> {
    if !TOOLS.iter().any(|t| t.name == name) {
        return None;
    }
    Some(match run(portal, actor, name, a).await {
        Ok(v) => Outcome {
            value: v,
            is_error: false,
            audit: Some(ToolAudit { status: 200, reason: Reason::Allowed, product: None }),
        },
        Err(e) => refused(e),
    })
}

/// One tool's work: its arguments as its own type, then one call of the domain.
async fn run(portal: &PortalState, actor: &Actor, name: &str, a: &Map<String, Value>) -> Result<Value, DomainError> {
    let (store, upstream) = (&portal.store, &portal.upstream_tls);
    match name {
        "whoami" => {
            args::<NoArgs>(a)?;
            value(
                json!({ "id": actor.id(), "email": actor.user.email, "role": actor.user.role, "scopes": actor.scopes() }),
            )
        }
        "list_clients" => {
            args::<NoArgs>(a)?;
            store.list_clients(actor).await.and_then(|c| value(json!({ "clients": c })))
        }
        "get_client" => {
            let c: ClientArg = args(a)?;
            store.client_detail(actor, &c.client_id).await.and_then(value)
        }
        "register_client" => {
            let r: Register = args(a)?;
            let new = NewClient { name: r.name, kind: r.kind, description: r.description };
            let reg = store.register_client(actor, new).await?;
            value(json!({ "client": reg.client, "secret": reg.secret }))
        }
        "add_profile" => {
            let p: AddProfile = args(a)?;
            store.add_profile(actor, &p.client_id, p.environment).await.and_then(value)
        }
        "rotate_secret" => {
            let p: ProfileArg = args(a)?;
            store.rotate_secret(actor, &p.profile_id).await.and_then(value)
        }
        "issue_api_key" => {
            let p: ProfileArg = args(a)?;
            store.issue_api_key(actor, &p.profile_id).await.and_then(value)
        }
        "register_public_key" => {
            let k: KeyArg = args(a)?;
            store.register_public_key(actor, &k.profile_id, &k.jwk.to_string(), k.replace).await.and_then(value)
        }
        "register_certificate_subject" => {
            let c: SubjectArg = args(a)?;
            store.register_certificate_subject(actor, &c.profile_id, &c.subject).await.and_then(value)
        }
        "list_issuers" => {
            args::<NoArgs>(a)?;
            store.list_issuers(actor).await.and_then(|i| value(json!({ "issuers": i })))
        }
        "register_issuer" => {
            let new: portcullis_domain::model::NewTrustedIssuer = args(a)?;
            portal.register_issuer(actor, new).await.and_then(value)
        }
        "disable_issuer" => {
            let i: IssuerArg = args(a)?;
            store.disable_issuer(actor, &i.issuer_id).await.and_then(value)
        }
        "link_identity" => {
            let l: LinkArg = args(a)?;
            store.link_identity(actor, &l.profile_id, &l.issuer_id, &l.subject).await.and_then(value)
        }
        "revoke_credential" => {
            let c: CredentialArg = args(a)?;
            store.revoke_credential(actor, &c.credential_id).await.map(|()| json!({ "revoked": true }))
        }
        "list_products" => {
            args::<NoArgs>(a)?;
            store.list_products(actor).await.and_then(|p| value(json!({ "products": p })))
        }
        "request_access" => {
            let r: RequestAccess = args(a)?;
            store.request_grant(actor, &r.profile_id, &r.product_id, &r.scopes, &r.justification).await.and_then(value)
        }
        "list_pending_requests" => {
            args::<NoArgs>(a)?;
            store.pending_grants(actor).await.and_then(|g| value(json!({ "requests": g })))
        }
        "decide_request" => {
            let d: Decide = args(a)?;
            let approve = matches!(d.decision, Decision::Approve);
            store.decide_grant(actor, &d.grant_id, approve, &d.reason, d.days).await.and_then(value)
        }
        "search_audit" => {
            let s: Search = args(a)?;
            store.search_audit(actor, &s.filter, s.limit.unwrap_or(DEFAULT_PAGE)).await.and_then(value)
        }
        "client_activity" => {
            let c: ClientArg = args(a)?;
            store.client_activity(actor, &c.client_id).await.and_then(value)
        }
        "access_review" => {
            args::<NoArgs>(a)?;
            store.access_review(actor).await.and_then(|c| value(json!({ "clients": c })))
        }
        "review_revoke_credential" => {
            let r: CredentialReason = args(a)?;
            store
                .review_revoke_credential(actor, &r.credential_id, &r.reason)
                .await
                .map(|()| json!({ "revoked": true }))
        }
        "review_end_grant" => {
            let g: GrantReason = args(a)?;
            store.review_end_grant(actor, &g.grant_id, &g.reason).await.map(|()| json!({ "ended": true }))
        }
        "mark_client_reviewed" => {
            let c: ClientReason = args(a)?;
            store.mark_client_reviewed(actor, &c.client_id, &c.reason).await.map(|()| json!({ "reviewed": true }))
        }
        "review_extend_grant" => {
            let e: Extend = args(a)?;
            store
                .review_extend_grant(actor, &e.grant_id, e.days, &e.reason)
                .await
                .map(|expires_at| json!({ "expires_at": expires_at }))
        }
        "test_access" => {
            let t: TestAccess = args(a)?;
            portcullis_app::ssr::test_access(portal, actor, &t.profile_id, &t.method, &t.path).await.and_then(value)
        }
        "recent_requests" => {
            let c: ClientArg = args(a)?;
            store.recent_requests(actor, &c.client_id, 25).await.and_then(|r| value(json!({ "requests": r })))
        }
        "set_rate_limit" => {
            let r: RateLimit = args(a)?;
            store
                .set_rate_limit(actor, &r.profile_id, r.rate_per_minute, r.burst)
                .await
                .map(|()| json!({ "rate_per_minute": r.rate_per_minute, "burst": r.burst }))
        }
        "set_token_lifetime" => {
            let l: Lifetime = args(a)?;
            store.set_token_lifetime(actor, &l.profile_id, l.seconds).await.map(|()| json!({ "seconds": l.seconds }))
        }
        "set_sender_constraint" => {
            let c: Constraint = args(a)?;
            store
                .set_sender_constraint(actor, &c.profile_id, c.sender_constraint)
                .await
                .map(|()| json!({ "sender_constraint": c.sender_constraint }))
        }
        "set_may_act" => {
            let m: MayAct = args(a)?;
            store.set_may_act(actor, &m.profile_id, m.actors.clone()).await.map(|()| json!({ "actors": m.actors }))
        }
        "create_product" => {
            let p: Product = args(a)?;
            store.create_product(actor, p.split().1, Vec::new()).await.and_then(value)
        }
        "update_product" => {
            let p: Product = args(a)?;
            match p.split() {
                (Some(id), product) => store.update_product(actor, &id, product).await.and_then(value),
                (None, _) => Err(DomainError::Invalid("update_product needs product_id.".into())),
            }
        }
        "import_openapi" => {
            let i: Import = args(a)?;
            store.import_openapi(actor, &i.product_id, &i.document).await.and_then(value)
        }
        "set_product_policy" => {
            let p: Policy = args(a)?;
            let upstream_tls = p.upstream_tls.as_deref().map(UpstreamTlsName::parse).transpose()?;
            let policy = ProductPolicy {
                rate_per_minute: p.rate_per_minute,
                api_key_in_query: p.api_key_in_query,
                upstream_tls,
            };
            store.set_product_policy(actor, &p.product_id, policy, upstream).await.and_then(value)
        }
        "list_users" => {
            args::<NoArgs>(a)?;
            store.list_users(actor).await.and_then(|u| value(json!({ "users": u })))
        }
        "set_user_role" => {
            let r: RoleArg = args(a)?;
            store.set_user_role(actor, &r.user_id, r.role).await.and_then(value)
        }
        "set_user_disabled" => {
            let d: Disable = args(a)?;
            store.set_user_disabled(Authority::Admin(actor), &d.user_id, d.disabled, &d.reason).await.and_then(value)
        }
        "set_client_suspended" => {
            let c: Suspend = args(a)?;
            store
                .set_client_suspended(Authority::Admin(actor), &c.client_id, c.suspended, &c.reason)
                .await
                .map(|()| json!({ "suspended": c.suspended }))
        }
        "list_tokens" => {
            args::<NoArgs>(a)?;
            store.list_access_tokens(actor).await.and_then(|t| value(json!({ "tokens": t })))
        }
        "create_token" => {
            let t: NewToken = args(a)?;
            let scopes = t.scopes.unwrap_or(actor.scopes());
            store.create_access_token(actor, &t.name, t.days, scopes).await.and_then(value)
        }
        "revoke_token" => {
            let t: TokenArg = args(a)?;
            store.revoke_access_token(actor, &t.token_id).await.map(|()| json!({ "revoked": true }))
        }
        other => Err(DomainError::Internal(format!("the tool {other} is listed but not implemented"))),
    }
}

/// A refusal as a tool error with the status and code the management API would give.
fn refused(e: DomainError) -> Outcome {
    let (status, code, detail) = match e {
        DomainError::NotFound => (404, Reason::NotFound, "There is no such object, or it is not yours.".to_owned()),
        DomainError::Forbidden(why) => (403, Reason::Forbidden, format!("Not allowed: {why}.")),
        e @ DomainError::InsufficientScope(_) => (403, Reason::InsufficientScope, format!("Not allowed: {e}.")),
        DomainError::Conflict(m) => (409, Reason::Conflict, m),
        DomainError::Invalid(m) => (422, Reason::InvalidRequest, m),
        e @ (DomainError::Storage(_) | DomainError::Migration(_) | DomainError::Internal(_)) => {
            tracing::error!(error = ?e, "Management MCP tool failed");
            (500, Reason::InternalError, "Something went wrong on our side; it has been logged.".to_owned())
        }
    };
    Outcome {
        value: json!({ "status": status, "code": code.as_str(), "detail": detail }),
        is_error: true,
        audit: Some(ToolAudit { status, reason: code, product: None }),
    }
}
