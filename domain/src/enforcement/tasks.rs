//! Ephemeral per-task tokens: an agent asks the token endpoint for a token that serves
//! one task and nothing more, with RFC 9396 `authorization_details` of type
//! `portcullis_task`: the endpoints the task needs (by id), a task id the audit trail
//! groups its requests by, and optionally a lifetime down to a second and a maximum
//! number of calls.
//!
//! Why RFC 9396 and not RFC 8707 `resource` plus scopes: a resource names a whole API
//! (here: the gateway, or at best a product), and scopes are shared by many endpoints
//! (`read` covers every GET). Neither can say "this endpoint and that one only", which
//! is what a task needs; an authorization detail can, and carries the task's own fields
//! beside it. The token carries the detail back (RFC 9396 §9.1), so the gateway checks it
//! without a lookup.

use serde::{Deserialize, Serialize};

use super::{ProfileEntry, Snapshot};

/// The one authorization-details type this server understands.
pub const TASK_DETAIL_TYPE: &str = "portcullis_task";
/// A task token names at most this many endpoints: a task, not a profile.
pub const MAX_TASK_ENDPOINTS: usize = 32;
/// The most calls a task token may be given.
pub const MAX_TASK_USES: u32 = 10_000;
/// The longest task id (it is written into every row of the task's requests).
pub const MAX_TASK_ID: usize = 64;

/// A `portcullis_task` authorization detail, as requested and as the token carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDetail {
    #[serde(rename = "type")]
    pub kind: String,
    /// The caller's name for the task: letters, digits and `.`, `_`, `:`, `-`.
    pub task_id: String,
    /// Endpoint ids (as `list_endpoints` and the catalog show them): the only endpoints
    /// the token may call.
    pub endpoints: Vec<String>,
    /// At most this many calls through the gateway or `/mcp`, across replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// The token's lifetime in seconds, when shorter than the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

impl TaskDetail {
    /// Whether the task's token may call `endpoint_id`.
    pub fn covers(&self, endpoint_id: &str) -> bool {
        self.endpoints.iter().any(|e| e == endpoint_id)
    }
}

/// Reads `authorization_details` (a JSON array holding one `portcullis_task` object) and
/// checks it against the profile: each endpoint exists, is granted now, and its scope is
/// among `allowed`. Returns the detail and the scopes its endpoints need. Every refusal
/// says what to change (RFC 9396 §5 `invalid_authorization_details`).
pub fn parse_task(
    text: &str,
    snap: &Snapshot,
    profile: &ProfileEntry,
    allowed: &[&str],
    ttl: i64,
    now: i64,
) -> Result<(TaskDetail, Vec<String>), String> {
    if text.len() > 8 * 1024 {
        return Err("authorization_details is over 8 KB".into());
    }
    let details: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|_| "authorization_details must be a JSON array of authorization detail objects".to_owned())?;
    let [detail] = details.as_slice() else {
        return Err(format!("send exactly one authorization detail, of type {TASK_DETAIL_TYPE}"));
    };
    if detail.get("type").and_then(|t| t.as_str()) != Some(TASK_DETAIL_TYPE) {
        return Err(format!("the only authorization detail type accepted is {TASK_DETAIL_TYPE}"));
    }
    let task: TaskDetail = serde_json::from_value(detail.clone()).map_err(|e| {
        format!("a {TASK_DETAIL_TYPE} detail has task_id, endpoints and optionally max_uses and expires_in: {e}")
    })?;
    let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if task.task_id.is_empty() || task.task_id.len() > MAX_TASK_ID || !task.task_id.chars().all(id_ok) {
        return Err(format!("task_id must be 1 to {MAX_TASK_ID} letters, digits, '.', '_', ':' or '-'"));
    }
    if task.endpoints.is_empty() || task.endpoints.len() > MAX_TASK_ENDPOINTS {
        return Err(format!("name 1 to {MAX_TASK_ENDPOINTS} endpoints"));
    }
    if task.max_uses.is_some_and(|n| n == 0 || n > MAX_TASK_USES) {
        return Err(format!("max_uses must be 1 to {MAX_TASK_USES}"));
    }
    if task.expires_in.is_some_and(|s| s < 1 || s > ttl) {
        return Err(format!("expires_in must be 1 to {ttl} seconds (the profile's token lifetime)"));
    }
    let mut scopes = Vec::new();
    for id in &task.endpoints {
        let found = snap.products.values().find_map(|p| p.endpoints.iter().find(|e| &e.id == id).map(|e| (p, e)));
        let Some((product, endpoint)) = found else {
            return Err(format!("there is no endpoint {id}"));
        };
        let granted = profile.grants.get(&product.id).is_some_and(|g| g.expires_at.is_none_or(|t| now < t));
        if !granted {
            return Err(format!(
                "endpoint {id} belongs to {}, which this profile has no current grant for",
                product.slug
            ));
        }
        if !allowed.contains(&endpoint.scope.as_str()) {
            return Err(format!("endpoint {id} needs the `{}` scope, which this token may not have", endpoint.scope));
        }
        scopes.push(endpoint.scope.clone());
    }
    scopes.sort_unstable();
    scopes.dedup();
    let mut endpoints = task.endpoints.clone();
    endpoints.sort_unstable();
    endpoints.dedup();
    Ok((TaskDetail { endpoints, ..task }, scopes))
}
