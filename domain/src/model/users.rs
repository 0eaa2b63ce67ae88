//! People: who signs in to the portal and with which role.

use serde::{Deserialize, Serialize};
use std::fmt;

text_enum!(
    /// A person's role in the portal.
    Role { Developer => "developer", Security => "security", Admin => "admin" }
);

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
