//! A profile's credentials (client secrets and API keys) and a secret just issued.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::Environment;

text_enum!(CredentialKind { ClientSecret => "client_secret", ApiKey => "api_key" });

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
