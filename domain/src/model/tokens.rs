//! Personal access tokens, as listed and as just created.

use serde::{Deserialize, Serialize};
use std::fmt;

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
