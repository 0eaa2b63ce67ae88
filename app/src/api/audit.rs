//! The audit pages: searching the trail and one event.

use leptos::prelude::*;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, fail, store};

/// One page of the audit trail for the URL query `query` (the page's own query string,
/// parsed exactly as `GET /api/v1/audit` parses it).
#[server(endpoint = "search_audit")]
pub async fn search_audit(query: String) -> Result<portcullis_domain::model::AuditPage, AppError> {
    use portcullis_domain::audit_search::DEFAULT_PAGE;
    let actor = actor().await?;
    let filter = serde_urlencoded::from_str(query.trim_start_matches('?'))
        .map_err(|e| fail(AppError::Invalid(format!("The search could not be read: {e}"))))?;
    store()?.search_audit(&actor, &filter, DEFAULT_PAGE).await.map_err(domain)
}

/// One audit event, by row id or (from Test access) by request id.
#[server(endpoint = "audit_event")]
pub async fn audit_event(key: String, by_request: bool) -> Result<portcullis_domain::model::AuditRecord, AppError> {
    use portcullis_domain::audit_search::AuditKey;
    let actor = actor().await?;
    let store = store()?;
    if !by_request {
        let id = key.parse().map_err(|_| fail(AppError::NotFound))?;
        return store.audit_event(&actor, &AuditKey::Id(id)).await.map_err(domain);
    }
    // A request's row is written a moment after its response (the batch writer), and
    // Test access links to it at once: give the writer up to a second.
    // Only for what looks like one of our request ids (UUIDs), so that guessing costs
    // the guesser, not the server.
    let polls = if key.len() == 36 && key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') { 20 } else { 0 };
    let key = AuditKey::Request(key);
    for _ in 0..polls {
        match store.audit_event(&actor, &key).await {
            Err(portcullis_domain::DomainError::NotFound) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            other => return other.map_err(domain),
        }
    }
    store.audit_event(&actor, &key).await.map_err(domain)
}
