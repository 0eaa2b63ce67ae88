//! What clients have been doing: one client's activity and the security team's
//! dashboard.

use serde::{Deserialize, Serialize};

use super::{ClientSummary, CredentialKind};

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
    /// Of those, the requests that proved possession of a DPoP key (DPoP-bound tokens).
    #[serde(default)]
    pub proven_requests: i64,
    /// Of those, the requests that came with the TLS client certificate their token is
    /// bound to (RFC 8705).
    #[serde(default)]
    pub certificate_requests: i64,
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
    /// Its requests made with per-task tokens, by task id (RFC 9396), most first.
    #[serde(default)]
    pub tasks: Vec<NamedCount>,
    /// Requests other clients made on this client's behalf (RFC 8693 token exchange),
    /// by acting client, most first.
    #[serde(default)]
    pub on_its_behalf: Vec<NamedCount>,
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
