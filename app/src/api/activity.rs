//! The activity pages: one client's activity and the security dashboard.

use leptos::prelude::*;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, store};

/// What one client did over the last 30 days (its owner, security and admins).
#[server(endpoint = "client_activity")]
pub async fn client_activity(client_id: String) -> Result<portcullis_domain::model::ClientActivity, AppError> {
    let actor = actor().await?;
    store()?.client_activity(&actor, &client_id).await.map_err(domain)
}

/// The security team's overview of the last 30 days.
#[server(endpoint = "security_dashboard")]
pub async fn security_dashboard() -> Result<portcullis_domain::model::SecurityDashboard, AppError> {
    let actor = actor().await?;
    store()?.security_dashboard(&actor).await.map_err(domain)
}
