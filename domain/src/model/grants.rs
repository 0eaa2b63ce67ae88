//! Grants: a profile's access to a product, requested and decided.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::Environment;

text_enum!(GrantStatus { Pending => "pending", Approved => "approved", Rejected => "rejected", Revoked => "revoked" });

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
