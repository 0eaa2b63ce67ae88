//! An endpoint as it is handed to the catalog to publish: typed in by an admin, sent to
//! the management API, read from an OpenAPI document or part of the demo sample.
//!
//! It sits in a module of its own, with nothing to import, because both the catalog
//! (which validates and stores it) and the OpenAPI import (which produces it) need it,
//! and the catalog calls the import: kept in either, the two would import each other.

#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub method: String,
    pub path_template: String,
    pub operation_id: String,
    pub summary: String,
    pub scope: String,
    pub sensitive: bool,
    /// OpenAPI parameter objects (path, query, header), `$ref`s resolved; `[]` when none.
    pub parameters: Vec<serde_json::Value>,
    /// The JSON schema of the request body, when the operation takes one.
    pub request_schema: Option<serde_json::Value>,
    /// The JSON schema of the first successful (2xx) response, when documented.
    pub response_schema: Option<serde_json::Value>,
}
