//! The access review page.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::Outcome;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, fail, said, store};

/// Every client, flagged for review (security and admins).
#[server(endpoint = "access_review")]
pub async fn access_review() -> Result<Vec<portcullis_domain::model::ReviewClient>, AppError> {
    let actor = actor().await?;
    store()?.access_review(&actor).await.map_err(domain)
}

/// A reviewer's decision on one item. `action` is `revoke_credential` (target: the
/// credential), `end_grant` or `extend_grant` (target: the grant; `days` for an
/// extension) or `mark_reviewed` (target: the client). Each is audited with `reason`.
#[server(endpoint = "review_action")]
pub async fn review_action(
    action: String,
    target: String,
    reason: String,
    #[server(default)] days: Option<String>,
) -> Result<String, AppError> {
    let actor = actor().await?;
    let store = store()?;
    let done = match action.as_str() {
        "revoke_credential" => {
            store.review_revoke_credential(&actor, &target, &reason).await.map(|_| "Credential revoked.")
        }
        "end_grant" => store.review_end_grant(&actor, &target, &reason).await.map(|_| "Grant ended."),
        "extend_grant" => {
            let days = days
                .as_deref()
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(|_| fail(AppError::Invalid("Give the number of days.".into())))?;
            store.review_extend_grant(&actor, &target, days, &reason).await.map(|_| "Grant extended.")
        }
        "mark_reviewed" => store.mark_client_reviewed(&actor, &target, &reason).await.map(|_| "Marked reviewed."),
        _ => return Err(fail(AppError::Invalid("Unknown review action.".into()))),
    };
    let done = done.map_err(domain)?.to_owned();
    said(&actor, Outcome::Said(done.clone())).await?;
    Ok(done)
}
