//! Clients (the API consumers people register), their profiles per environment, and a
//! test call made with one.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::{CredentialView, GrantView};

text_enum!(
    /// What kind of API consumer a client is. Agents get no special path; the kind is
    /// recorded so the audit trail and reviews can tell them apart.
    ClientKind { AiAgent => "ai_agent", Application => "application", Service => "service" }
);

text_enum!(Environment { Sandbox => "sandbox", Production => "production" });

text_enum!(
    /// Whether a profile's tokens must be bound to a key the caller proves it holds:
    /// `none` accepts bearer tokens and API keys; `dpop` accepts only DPoP-bound tokens
    /// (RFC 9449); `mtls` only tokens bound to a TLS client certificate (RFC 8705); on
    /// every channel. Set by admins.
    SenderConstraint { None => "none", Dpop => "dpop", Mtls => "mtls" }
);

impl SenderConstraint {
    pub fn label(self) -> &'static str {
        match self {
            SenderConstraint::None => "none (bearer tokens and API keys)",
            SenderConstraint::Dpop => "DPoP-bound tokens only",
            SenderConstraint::Mtls => "certificate-bound tokens only (mTLS)",
        }
    }
}

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
    /// Whether its tokens must be sender-constrained.
    pub sender_constraint: SenderConstraint,
    /// The clients that may act on its behalf through token exchange (RFC 8693
    /// `may_act`); absent: any client holding one of its tokens.
    #[serde(default)]
    pub may_act: Option<Vec<String>>,
    pub created_at: i64,
    pub credentials: Vec<CredentialView>,
    pub grants: Vec<GrantView>,
}

/// A profile its owner may request products for: the catalog's picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileOption {
    pub profile_id: String,
    pub client_id: String,
    pub client_name: String,
    pub environment: Environment,
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
