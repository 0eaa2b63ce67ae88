//! The catalog: products, their endpoints and what an OpenAPI import changed.

use serde::{Deserialize, Serialize};

/// The scopes a grant can carry. Endpoints require one of these.
pub const SCOPES: &[&str] = &["read", "write"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ProductView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub sandbox_url: String,
    pub production_url: String,
    /// Requests per minute across every caller; `None`: only each profile's own limit.
    pub rate_per_minute: Option<i64>,
    /// Whether callers may send an API key as `?api_key=` (never forwarded upstream).
    pub api_key_in_query: bool,
    /// The upstream TLS profile (CA bundle, client certificate) the gateway uses towards
    /// this product's upstream; `None`: the system's roots and the server-wide settings.
    #[serde(default)]
    pub upstream_tls: Option<String>,
    pub endpoints: Vec<EndpointView>,
}

impl ProductView {
    /// The scopes a profile may request for this product: `read` and `write`, then any
    /// other scope its endpoints require (custom scopes from an OpenAPI import).
    pub fn scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let mut custom: Vec<&str> =
            self.endpoints.iter().map(|e| e.scope.as_str()).filter(|s| !SCOPES.contains(s)).collect();
        custom.sort_unstable();
        custom.dedup();
        out.extend(custom.into_iter().map(str::to_owned));
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct EndpointView {
    pub id: String,
    pub method: String,
    pub path_template: String,
    pub operation_id: String,
    pub summary: String,
    pub scope: String,
    pub sensitive: bool,
}

/// What an OpenAPI import changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct ImportSummary {
    pub added: usize,
    pub updated: usize,
}
