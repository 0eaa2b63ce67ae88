//! Trusted issuers (federation) and the identities linked from them to profiles.

use serde::{Deserialize, Serialize};

use super::Environment;

/// An identity provider whose tokens the gateway accepts for the identities an admin
/// linked to profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct TrustedIssuerView {
    pub id: String,
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// Where its keys are fetched from (https), when they are not pasted.
    pub jwks_uri: Option<String>,
    /// The RFC 7638 thumbprints of the pasted keys, when they are.
    pub static_keys: Vec<String>,
    /// A token's `aud` must name one of these.
    pub audiences: Vec<String>,
    /// The signing algorithms accepted.
    pub algorithms: Vec<String>,
    /// The claim whose value names the caller (`sub`, `azp`, `client_id`, …).
    pub subject_claim: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// Identities linked to profiles and not revoked.
    pub linked: i64,
}

/// What an admin registers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTrustedIssuer {
    pub issuer: String,
    /// An https URL; or else `jwks`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// A JWKS document (public keys); or else `jwks_uri`.
    #[serde(default)]
    pub jwks: Option<String>,
    pub audiences: Vec<String>,
    /// Among RS256, PS256, ES256, EdDSA.
    pub algorithms: Vec<String>,
    /// `sub` when absent.
    #[serde(default)]
    pub subject_claim: Option<String>,
}

/// An identity at a trusted issuer, just linked to a profile: a credential of kind
/// `federated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct LinkedIdentity {
    pub credential_id: String,
    pub client_id: String,
    pub profile_id: String,
    pub environment: Environment,
    pub issuer_id: String,
    pub issuer: String,
    /// The claim, and the value a token's claim must have.
    pub subject_claim: String,
    pub subject: String,
    pub expires_at: i64,
}
