//! Access reviews: every client with what it may use, flagged where it needs a look.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::{ClientSummary, CredentialView, Environment, GrantView};

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
