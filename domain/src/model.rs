//! The vocabulary of DESIGN.md as types. These are what the portal shows: none carries a
//! password hash or a secret hash. A freshly issued secret travels only in
//! [`IssuedSecret`], whose `Debug` redacts it.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::DomainError::Invalid(format!(
                        concat!("unknown ", stringify!($name), " `{}`"), other
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(
    /// A person's role in the portal.
    Role { Developer => "developer", Security => "security", Admin => "admin" }
);
text_enum!(
    /// What kind of API consumer a client is. Agents get no special path; the kind is
    /// recorded so the audit trail and reviews can tell them apart.
    ClientKind { AiAgent => "ai_agent", Application => "application", Service => "service" }
);
text_enum!(Environment { Sandbox => "sandbox", Production => "production" });
text_enum!(
    /// Where a request came in: the REST gateway, the Gateway MCP, the Management MCP or
    /// the OAuth server.
    RequestChannel { Rest => "rest", Mcp => "mcp", McpManage => "mcp-manage", Oauth => "oauth" }
);
text_enum!(
    /// Whether a request was let through (its answer may still be an upstream error).
    Decision { Allowed => "allowed", Refused => "refused" }
);
text_enum!(CredentialKind { ClientSecret => "client_secret", ApiKey => "api_key" });
text_enum!(GrantStatus { Pending => "pending", Approved => "approved", Rejected => "rejected", Revoked => "revoked" });

impl ClientKind {
    pub fn label(self) -> &'static str {
        match self {
            ClientKind::AiAgent => "AI agent",
            ClientKind::Application => "Application",
            ClientKind::Service => "Service",
        }
    }
}

impl Environment {
    pub fn label(self) -> &'static str {
        match self {
            Environment::Sandbox => "Sandbox",
            Environment::Production => "Production",
        }
    }
}

/// The scopes a grant can carry. Endpoints require one of these.
pub const SCOPES: &[&str] = &["read", "write"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub role: Role,
}

/// An account as admins list it: active or disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct AccountView {
    #[serde(flatten)]
    pub user: UserView,
    /// A disabled person cannot sign in or use their tokens, and their clients are
    /// refused at the gateway.
    pub disabled: bool,
}

impl UserView {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ClientSummary {
    pub id: String,
    pub name: String,
    pub kind: ClientKind,
    pub description: String,
    pub owner_email: String,
    pub created_at: i64,
    pub environments: Vec<Environment>,
    /// Suspended by an admin: refused at the gateway and the token endpoint.
    #[serde(default)]
    pub suspended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ClientDetail {
    pub client: ClientSummary,
    pub profiles: Vec<ProfileDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ProfileDetail {
    pub id: String,
    pub client_id: String,
    pub environment: Environment,
    pub rate_per_minute: i64,
    pub burst: i64,
    /// How long this profile's access tokens live.
    pub token_ttl_seconds: i64,
    pub created_at: i64,
    pub credentials: Vec<CredentialView>,
    pub grants: Vec<GrantView>,
}

/// Where a credential stands at a given instant; computed, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CredentialState {
    Active,
    /// Works, but expires within the warning window (14 days).
    Expiring,
    /// Replaced by a rotation; works until `expires_at`, the end of the grace period.
    Grace,
    Expired,
    Revoked,
}

impl CredentialState {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Active => "active",
            CredentialState::Expiring => "expiring",
            CredentialState::Grace => "grace",
            CredentialState::Expired => "expired",
            CredentialState::Revoked => "revoked",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            CredentialState::Active => "Active",
            CredentialState::Expiring => "Expires soon",
            CredentialState::Grace => "Grace period",
            CredentialState::Expired => "Expired",
            CredentialState::Revoked => "Revoked",
        }
    }
    pub fn is_usable(self) -> bool {
        matches!(self, CredentialState::Active | CredentialState::Expiring | CredentialState::Grace)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct CredentialView {
    pub id: String,
    pub kind: CredentialKind,
    /// The first characters of the secret, enough to recognise it, useless to use it.
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub rotated_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub state: CredentialState,
}

/// A profile its owner may request products for: the catalog's picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileOption {
    pub profile_id: String,
    pub client_id: String,
    pub client_name: String,
    pub environment: Environment,
}

/// How long an approved production grant lasts unless the approver chooses less; no
/// approval or review extension goes beyond it.
pub const GRANT_LIFETIME_DAYS: i64 = 90;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub id: String,
    pub profile_id: String,
    pub environment: Environment,
    pub client_id: String,
    pub client_name: String,
    pub product_id: String,
    pub product_name: String,
    pub scopes: Vec<String>,
    pub status: GrantStatus,
    pub justification: String,
    pub requested_by: String,
    pub requested_at: i64,
    /// Who decided: an email, or the policy that decided automatically.
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub decision_reason: Option<String>,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ProductView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub sandbox_url: String,
    pub production_url: String,
    /// Requests per minute across every caller; `None`: only each profile's own limit.
    pub rate_per_minute: Option<i64>,
    /// Whether callers may send an API key as `?api_key=` (never forwarded upstream).
    pub api_key_in_query: bool,
    /// The upstream TLS profile (CA bundle, client certificate) the gateway uses towards
    /// this product's upstream; `None`: the system's roots and the server-wide settings.
    #[serde(default)]
    pub upstream_tls: Option<String>,
    pub endpoints: Vec<EndpointView>,
}

impl ProductView {
    /// The scopes a profile may request for this product: `read` and `write`, then any
    /// other scope its endpoints require (custom scopes from an OpenAPI import).
    pub fn scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let mut custom: Vec<&str> =
            self.endpoints.iter().map(|e| e.scope.as_str()).filter(|s| !SCOPES.contains(s)).collect();
        custom.sort_unstable();
        custom.dedup();
        out.extend(custom.into_iter().map(str::to_owned));
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct EndpointView {
    pub id: String,
    pub method: String,
    pub path_template: String,
    pub operation_id: String,
    pub summary: String,
    pub scope: String,
    pub sensitive: bool,
}

/// A secret the server just generated. It exists in memory for one response and is
/// never stored; only its keyed hash is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct IssuedSecret {
    pub credential_id: String,
    pub kind: CredentialKind,
    pub client_id: String,
    pub profile_id: String,
    pub environment: Environment,
    pub expires_at: i64,
    pub secret: String,
}

impl fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("credential_id", &self.credential_id)
            .field("kind", &self.kind)
            .field("profile_id", &self.profile_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct AccessTokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub active: bool,
    /// What the token may be used for (`clients:write`, `audit:read`, …).
    #[cfg_attr(feature = "store", schema(value_type = Vec<String>))]
    pub scopes: crate::scopes::Scopes,
}

/// A personal access token just created: shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub id: String,
    pub name: String,
    pub expires_at: i64,
    pub token: String,
    #[cfg_attr(feature = "store", schema(value_type = Vec<String>))]
    pub scopes: crate::scopes::Scopes,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What an OpenAPI import changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ImportSummary {
    pub added: usize,
    pub updated: usize,
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
}

/// One page of search results, newest first. `next` continues after the last row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next: Option<String>,
}

/// Requests of one UTC day: `day` is the day's first millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct DayCount {
    pub day: i64,
    pub allowed: i64,
    pub refused: i64,
}

/// A label and how often it occurred (an endpoint, a refusal reason, a client type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct NamedCount {
    pub name: String,
    pub count: i64,
}

/// A credential a client authenticated with, and how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct CredentialUse {
    pub credential_id: String,
    /// `None` when the credential no longer exists.
    pub kind: Option<CredentialKind>,
    pub prefix: Option<String>,
    pub requests: i64,
    pub last_used_at: i64,
}

/// What one client has been doing: the page the security team opens when asked about
/// an agent. Counts cover the last `ACTIVITY_DAYS` days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ClientActivity {
    pub client: ClientSummary,
    /// One entry per day, oldest first, days without requests included.
    pub days: Vec<DayCount>,
    pub top_endpoints: Vec<NamedCount>,
    pub refusals: Vec<NamedCount>,
    /// Refused requests that named this client without being its own traffic (a token
    /// request with its client id and a wrong secret; a call with one of its revoked or
    /// expired credentials), by reason. Kept apart from `refusals`: anyone can name a
    /// client, and that must not read as the client misbehaving.
    pub attempts: Vec<NamedCount>,
    pub credentials: Vec<CredentialUse>,
    /// The newest request ever recorded for this client.
    pub last_seen: Option<i64>,
}

/// Refused requests of one UTC day by status: 401, 403, 429 and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct RefusalDay {
    pub day: i64,
    pub unauthorized: i64,
    pub forbidden: i64,
    pub rate_limited: i64,
    /// Refused with any other status (400, 404, 413, 499…).
    pub other: i64,
}

/// Allowed and refused requests of one client type (`unidentified` when no credential
/// matched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct TypeTraffic {
    pub client_type: String,
    pub allowed: i64,
    pub refused: i64,
}

/// A client and its refusals, for the security dashboard's "most refused" list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ClientRefusals {
    pub client_id: String,
    pub client_name: Option<String>,
    pub client_type: Option<String>,
    pub refused: i64,
    pub total: i64,
}

/// The security team's overview of the last `ACTIVITY_DAYS` days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct SecurityDashboard {
    pub refusals: Vec<RefusalDay>,
    pub by_type: Vec<TypeTraffic>,
    pub most_refused: Vec<ClientRefusals>,
}

/// How many days activity pages and the dashboard cover.
pub const ACTIVITY_DAYS: i64 = 30;

text_enum!(
    /// Why an access review points at a credential, a grant or a client.
    ReviewFlag {
        StaleCredential => "stale_credential",
        UnusedCredential => "unused_credential",
        NeverUsedCredential => "never_used_credential",
        GrantExpiring => "grant_expiring",
        GrantNeverUsed => "grant_never_used",
        OwnerDisabled => "owner_disabled",
    }
);

impl ReviewFlag {
    pub fn label(self) -> &'static str {
        match self {
            ReviewFlag::StaleCredential => "older than the rotation policy",
            ReviewFlag::UnusedCredential => "unused for 30 days",
            ReviewFlag::NeverUsedCredential => "never used",
            ReviewFlag::GrantExpiring => "expires within 14 days",
            ReviewFlag::GrantNeverUsed => "grant never used",
            ReviewFlag::OwnerDisabled => "owner disabled",
        }
    }
}

/// A usable credential as an access review sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ReviewCredential {
    pub credential: CredentialView,
    pub environment: Environment,
    /// Whole days since it was issued.
    pub age_days: i64,
    pub flags: Vec<ReviewFlag>,
}

/// An approved grant as an access review sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ReviewGrant {
    pub grant: GrantView,
    /// The last request this grant allowed.
    pub last_used_at: Option<i64>,
    pub flags: Vec<ReviewFlag>,
}

/// One client in an access review: who owns it, what it may use, with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ReviewClient {
    pub client: ClientSummary,
    pub owner_disabled: bool,
    pub flags: Vec<ReviewFlag>,
    pub credentials: Vec<ReviewCredential>,
    pub grants: Vec<ReviewGrant>,
    /// When it was last marked reviewed, and by whom.
    pub reviewed_at: Option<i64>,
    pub reviewed_by: Option<String>,
}

/// What a test call through the gateway answered ("Test access").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct TestAccessResult {
    pub status: u16,
    /// `allowed`, or the refusal's code (`insufficient_scope`, `rate_limited`, …).
    pub outcome: String,
    pub request_id: String,
    pub rate_limit: Option<String>,
    /// The answer's first 4000 characters (pretty-printed when JSON).
    pub body: String,
}
