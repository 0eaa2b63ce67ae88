//! The four tools an agent sees: discovery filtered by its profile's grants, and
//! execution through the gateway's one enforcement path.
//!
//! Discovery reads the policy snapshot, like the gateway: no database query. What is
//! listed is exactly what the gateway would let through — a current grant whose scopes
//! (narrowed by the token's scopes) cover the endpoint. `execute_endpoint` does not
//! filter: it hands any endpoint to `Gateway::execute`, which refuses and audits what the
//! profile may not call, so the MCP route cannot decide differently from `/gw`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::audit_writer::PendingRow;
use portcullis_domain::enforcement::{EndpointEntry, ProductEntry, Snapshot};
use portcullis_domain::model::Reason;
use serde_json::{json, Map, Value};

use crate::dpop::Possession;
use crate::gateway::Held;
use crate::gateway::{self, Call, Executed, Gateway};
use crate::tls::ClientCertificate;

/// The largest upstream answer handed to an agent; a tool result is read whole.
const MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Who is calling, as `/mcp` authenticated them, and when.
pub struct Caller<'a, 's> {
    pub caller: &'a gateway::Caller<'s>,
    pub now: i64,
}

impl Caller<'_, '_> {
    /// Whether the gateway would let this caller call the endpoint: its own decision.
    fn may_call(&self, product: &ProductEntry, endpoint: &EndpointEntry) -> bool {
        self.caller.authorize(product, endpoint, self.now).is_ok()
    }

    /// Granted products with the endpoints this caller may call, sorted by slug.
    fn visible<'s>(&self, snap: &'s Snapshot) -> Vec<(&'s ProductEntry, Vec<&'s EndpointEntry>)> {
        let mut out: Vec<_> = snap
            .products
            .values()
            .filter(|p| self.caller.profile.grants.contains_key(&p.id))
            .map(|p| (p, p.endpoints.iter().filter(|e| self.may_call(p, e)).collect::<Vec<_>>()))
            .filter(|(_, eps)| !eps.is_empty())
            .collect();
        out.sort_by(|a, b| a.0.slug.cmp(&b.0.slug));
        out
    }
}

/// A tool's answer: its JSON, and whether the agent should read it as a failure.
pub struct Outcome {
    pub value: Value,
    pub is_error: bool,
    /// For the audit row of tools other than `execute_endpoint` (which the gateway audits).
    pub audit: Option<ToolAudit>,
}

/// What the MCP route records for a tool that does not go through the gateway.
pub struct ToolAudit {
    pub status: u16,
    pub reason: Reason,
    pub product: Option<String>,
}

impl Outcome {
    fn ok(value: Value) -> Self {
        Self { value, is_error: false, audit: Some(ToolAudit { status: 200, reason: Reason::Allowed, product: None }) }
    }

    /// A request the agent got wrong: not a protocol fault, a tool error it can correct.
    fn invalid(detail: impl Into<String>, reason: Reason, status: u16) -> Self {
        let detail = detail.into();
        Self {
            value: json!({ "status": status, "code": reason, "detail": detail }),
            is_error: true,
            audit: Some(ToolAudit { status, reason, product: None }),
        }
    }
}

pub const LIST_COLLECTIONS: &str = "list_collections";
pub const LIST_ENDPOINTS: &str = "list_endpoints";
pub const ENDPOINT_DETAILS: &str = "endpoint_details";
pub const EXECUTE_ENDPOINT: &str = "execute_endpoint";

/// The tool definitions for `tools/list`.
pub fn definitions() -> Value {
    json!([
        {
            "name": LIST_COLLECTIONS,
            "title": "List API collections",
            "description": "Lists the API collections (products) this client's profile is granted, with their \
                            description, classification tags and how many endpoints it may call.",
            "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        },
        {
            "name": LIST_ENDPOINTS,
            "title": "List endpoints",
            "description": "Lists the endpoints this profile may call, optionally for one collection: id, \
                            collection, name, description, method, path and required scope.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "collection": { "type": "string", "description": "A collection slug from list_collections." }
                },
                "additionalProperties": false
            },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        },
        {
            "name": ENDPOINT_DETAILS,
            "title": "Endpoint details",
            "description": "Describes one endpoint: its path and query parameters, request body schema, response \
                            schema and examples. Call it before execute_endpoint.",
            "inputSchema": {
                "type": "object",
                "properties": { "endpoint_id": { "type": "string", "description": "An id from list_endpoints." } },
                "required": ["endpoint_id"],
                "additionalProperties": false
            },
            "annotations": { "readOnlyHint": true, "openWorldHint": false }
        },
        {
            "name": EXECUTE_ENDPOINT,
            "title": "Call an endpoint",
            "description": "Calls one endpoint through the gateway with this client's own credential, under the \
                            same grant, scope and rate-limit checks as any application, and returns the status, \
                            rate-limit headers and the upstream's answer. Refusals come back as errors with a \
                            machine-readable code.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "endpoint_id": { "type": "string", "description": "An id from list_endpoints." },
                    "path_params": {
                        "type": "object",
                        "description": "Values for the {placeholders} of the endpoint's path.",
                        "additionalProperties": { "type": ["string", "number", "integer", "boolean"] }
                    },
                    "query": {
                        "type": "object",
                        "description": "Query string parameters.",
                        "additionalProperties": { "type": ["string", "number", "integer", "boolean"] }
                    },
                    "body": { "description": "The JSON request body, for endpoints that take one." }
                },
                "required": ["endpoint_id"],
                "additionalProperties": false
            },
            "annotations": { "readOnlyHint": false, "destructiveHint": true, "openWorldHint": true }
        }
    ])
}

pub fn list_collections(caller: &Caller<'_, '_>, snap: &Snapshot) -> Outcome {
    let collections: Vec<Value> = caller
        .visible(snap)
        .into_iter()
        .map(|(p, eps)| {
            json!({
                "collection": p.slug,
                "name": p.name,
                "description": p.description,
                "tags": p.tags,
                "endpoints": eps.len(),
            })
        })
        .collect();
    Outcome::ok(json!({ "collections": collections }))
}

fn endpoint_summary(p: &ProductEntry, e: &EndpointEntry) -> Value {
    json!({
        "id": e.id,
        "collection": p.slug,
        "name": if e.operation_id.is_empty() { format!("{} {}", e.method, e.path_template) } else { e.operation_id.clone() },
        "description": e.summary,
        "method": e.method,
        "path": e.path_template,
        "scope": e.scope,
        "sensitive": e.sensitive,
    })
}

pub fn list_endpoints(caller: &Caller<'_, '_>, snap: &Snapshot, args: &Map<String, Value>) -> Outcome {
    let only = match args.get("collection") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Outcome::invalid("`collection` must be a string.", Reason::InvalidArguments, 400),
    };
    let visible = caller.visible(snap);
    if let Some(slug) = only {
        // A collection the profile holds no grant for is unknown to it, not forbidden:
        // discovery does not reveal what exists elsewhere.
        if !visible.iter().any(|(p, _)| p.slug == slug) {
            return Outcome::invalid(
                format!("No collection `{slug}` is available to this profile."),
                Reason::UnknownProduct,
                404,
            );
        }
    }
    let endpoints: Vec<Value> = visible
        .iter()
        .filter(|(p, _)| only.is_none_or(|s| s == p.slug))
        .flat_map(|(p, eps)| eps.iter().map(|e| endpoint_summary(p, e)))
        .collect();
    Outcome::ok(json!({ "endpoints": endpoints }))
}

fn find_endpoint<'s>(snap: &'s Snapshot, id: &str) -> Option<(&'s ProductEntry, &'s EndpointEntry)> {
    snap.products.values().find_map(|p| p.endpoints.iter().find(|e| e.id == id).map(|e| (p, e)))
}

fn endpoint_id(args: &Map<String, Value>) -> Result<&str, Outcome> {
    match args.get("endpoint_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(Outcome::invalid(
            "`endpoint_id` (a string from list_endpoints) is required.",
            Reason::InvalidArguments,
            400,
        )),
    }
}

pub fn endpoint_details(caller: &Caller<'_, '_>, snap: &Snapshot, args: &Map<String, Value>) -> Outcome {
    let id = match endpoint_id(args) {
        Ok(id) => id,
        Err(o) => return o,
    };
    let Some((p, e)) = find_endpoint(snap, id).filter(|(p, e)| caller.may_call(p, e)) else {
        return Outcome::invalid(
            format!("No endpoint `{id}` is available to this profile."),
            Reason::UnknownEndpoint,
            404,
        );
    };
    let param = |place: &str| -> Vec<Value> {
        e.parameters.iter().filter(|v| v.get("in").and_then(Value::as_str) == Some(place)).cloned().collect()
    };
    let mut details = endpoint_summary(p, e);
    if let Some(d) = details.as_object_mut() {
        d.insert("path_params".into(), Value::Array(param("path")));
        d.insert("query_params".into(), Value::Array(param("query")));
        d.insert("request_schema".into(), e.request_schema.clone().unwrap_or(Value::Null));
        d.insert("response_schema".into(), e.response_schema.clone().unwrap_or(Value::Null));
        d.insert("examples".into(), Value::Array(examples(e)));
    }
    let mut out = Outcome::ok(details);
    if let Some(a) = out.audit.as_mut() {
        a.product = Some(p.slug.clone());
    }
    out
}

/// Examples carried by the imported schemas (`example` / `examples` at their top level).
fn examples(e: &EndpointEntry) -> Vec<Value> {
    let mut out = Vec::new();
    for (kind, schema) in [("request", &e.request_schema), ("response", &e.response_schema)] {
        let Some(s) = schema else { continue };
        if let Some(x) = s.get("example") {
            out.push(json!({ kind: x }));
        }
        if let Some(Value::Array(xs)) = s.get("examples") {
            out.extend(xs.iter().map(|x| json!({ kind: x })));
        }
    }
    out
}

/// Path segment encoding: everything but RFC 3986 unreserved characters, so a value can
/// never add a segment (`/`), climb (`..` stays a literal segment the gateway refuses)
/// or start a query.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The concrete path for a template and the agent's `path_params`.
fn fill_path(template: &str, params: &Map<String, Value>) -> Result<String, String> {
    let mut path = String::new();
    for segment in template.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let value = params
                    .get(name)
                    .and_then(scalar)
                    .ok_or_else(|| format!("`path_params.{name}` is required (a string or number)."))?;
                path.extend(utf8_percent_encode(&value, SEGMENT));
            }
            None => path.push_str(segment),
        }
    }
    Ok(if path.is_empty() { "/".into() } else { path })
}

fn query_string(args: &Map<String, Value>) -> Result<Option<String>, String> {
    let Some(q) = args.get("query").filter(|q| !q.is_null()) else { return Ok(None) };
    let Value::Object(q) = q else { return Err("`query` must be an object of scalar values.".into()) };
    let mut pairs = Vec::with_capacity(q.len());
    for (k, v) in q {
        pairs.push((k.as_str(), scalar(v).ok_or_else(|| format!("`query.{k}` must be a string, number or boolean."))?));
    }
    serde_urlencoded::to_string(&pairs).map(|s| Some(s).filter(|s| !s.is_empty())).map_err(|e| e.to_string())
}

/// Who an `execute_endpoint` call is for: the profile the MCP request authenticated as
/// (the gateway refuses the call as any other) and the caller's address.
pub struct Bound<'a> {
    pub profile_id: &'a str,
    pub client: std::net::IpAddr,
    /// The DPoP key the MCP request proved it holds, if its token is bound to one.
    pub proven_key: Option<&'a str>,
    /// The TLS client certificate the MCP request came with, if its token is bound to it.
    pub certificate: Option<&'a ClientCertificate>,
}

/// Runs `execute_endpoint` through `Gateway::execute`, which authenticates the caller's
/// own credential again, authorizes, rate limits, proxies and audits. The request's row
/// goes to the gateway with the call (taken from `slot`); a call that never gets that far
/// (bad arguments) leaves the row for the MCP layer to write.
pub async fn execute_endpoint(
    gateway: &Gateway,
    snap: &Snapshot,
    args: &Map<String, Value>,
    caller_headers: &HeaderMap,
    bound: Bound<'_>,
    slot: &mut Option<PendingRow>,
) -> Outcome {
    let id = match endpoint_id(args) {
        Ok(id) => id,
        Err(o) => return o,
    };
    let Some((product, endpoint)) = find_endpoint(snap, id) else {
        return Outcome::invalid(
            format!("No endpoint `{id}` is available to this profile."),
            Reason::UnknownEndpoint,
            404,
        );
    };
    let empty = Map::new();
    let path_params = match args.get("path_params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Outcome::invalid("`path_params` must be an object.", Reason::InvalidArguments, 400),
    };
    let path = match fill_path(&endpoint.path_template, path_params) {
        Ok(p) => p,
        Err(e) => return Outcome::invalid(e, Reason::InvalidArguments, 400),
    };
    let query = match query_string(args) {
        Ok(q) => q,
        Err(e) => return Outcome::invalid(e, Reason::InvalidArguments, 400),
    };
    let mut headers = HeaderMap::new();
    // The caller's credential and identity claims, re-checked by the gateway; nothing
    // else of the MCP request (its session, its protocol headers) reaches the upstream.
    for name in ["authorization", "x-api-key", "x-client-id", "x-profile-id", "user-agent"] {
        if let Some(v) = caller_headers.get(name) {
            headers.insert(name, v.clone());
        }
    }
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let body = match args.get("body").filter(|b| !b.is_null()) {
        Some(b) => {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let bytes = b.to_string();
            headers.insert("content-length", HeaderValue::from(bytes.len()));
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let Ok(method) = Method::from_bytes(endpoint.method.as_bytes()) else {
        return Outcome::invalid("The endpoint's method is not valid.", Reason::UnknownEndpoint, 404);
    };
    let Some(mut row) = slot.take() else {
        return Outcome::invalid("The call could not be recorded.", Reason::InternalError, 500);
    };
    row.event.method = AuditText::new(method.as_str(), cap::METHOD);
    row.event.path = AuditText::new(&path, cap::PATH);
    row.event.product = Some(AuditText::new(&product.slug, cap::ID));
    let call = Call {
        method,
        product: product.slug.clone(),
        path,
        query,
        headers,
        body,
        client: bound.client,
        bound_profile: Some(bound.profile_id.to_owned()),
        // `/mcp` checked this request's DPoP proof (made for its POST) when it
        // authenticated it; the gateway holds the token to the key proven there.
        held: Held {
            dpop: Possession::Proven { jkt: bound.proven_key.map(str::to_owned) },
            certificate: bound.certificate.cloned(),
        },
        row,
    };
    let (status, request_id, reported, body) = match gateway.execute(call).await {
        Executed::Refused { refusal, request_id, .. } => {
            let mut reported = Map::new();
            reported.insert("x-request-id".into(), Value::String(request_id.clone()));
            reported.insert("content-type".into(), Value::String("application/problem+json".into()));
            for (name, value) in refusal.come_back() {
                reported.insert(name.into(), Value::String(value.to_string()));
            }
            let problem = refusal.problem(&request_id);
            (refusal.status(), request_id, reported, problem)
        }
        Executed::Answered(answered) => {
            let (parts, body) = answered.response.into_parts();
            let mut reported = Map::new();
            reported.insert("x-request-id".into(), Value::String(answered.request_id.clone()));
            reported.insert("ratelimit-limit".into(), Value::String(answered.limit.to_string()));
            reported.insert("ratelimit-remaining".into(), Value::String(answered.remaining.to_string()));
            // The upstream's own headers that tell an agent how to read or retry the answer.
            for name in ["content-type", "retry-after", "ratelimit-reset"] {
                if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
                    reported.insert(name.into(), Value::String(v.to_owned()));
                }
            }
            let body = match axum::body::to_bytes(body, MAX_RESULT_BYTES).await {
                Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
                Err(_) => Value::String(format!(
                    "The upstream answer is larger than {} KiB or was cut off; call this endpoint through the REST gateway.",
                    MAX_RESULT_BYTES / 1024
                )),
            };
            (parts.status, answered.request_id, reported, body)
        }
    };
    Outcome {
        value: json!({
            "status": status.as_u16(),
            "request_id": request_id,
            "headers": reported,
            "body": body,
        }),
        is_error: status.is_client_error() || status.is_server_error(),
        audit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values_are_one_segment_each() {
        let params: Map<String, Value> =
            serde_json::from_value(json!({ "id": "../admin/x?y=1", "n": 7 })).unwrap_or_default();
        assert_eq!(fill_path("/accounts/{id}/items/{n}", &params).unwrap(), "/accounts/..%2Fadmin%2Fx%3Fy%3D1/items/7");
        assert!(fill_path("/accounts/{missing}", &params).is_err());
    }
}
