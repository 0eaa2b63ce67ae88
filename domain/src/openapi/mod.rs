//! OpenAPI 3 import: turns an OpenAPI 3.0.x or 3.1.x document (JSON or YAML text) into
//! the endpoints an admin imports into a product of the catalog.
//!
//! The document is read as a plain `serde_json::Value` and walked by hand rather than
//! deserialised into a typed model: the `openapiv3` crate reads only 3.0 documents and
//! `oas3` only 3.1 ones, and we need neither's full model — only paths, operations,
//! parameters and the request/response schemas, with local `$ref`s resolved. Walking the
//! value reads both versions alike and tolerates everything else a document may hold.
//!
//! Resolution rules:
//! - only local references (`#/…`, a JSON pointer, `~0`/`~1` and `%XX` unescaped) are
//!   resolved; a reference into another document is refused, as is one that points at
//!   nothing;
//! - inside schemas, a reference that is part of a cycle, or nested deeper than
//!   [`MAX_REF_DEPTH`](refs::MAX_REF_DEPTH), or met after the document has expanded into
//!   [`MAX_EXPANDED_NODES`](refs::MAX_EXPANDED_NODES) values, is left as its `{"$ref": …}`
//!   object rather than failing the import;
//! - the keys beside a `$ref` (3.1 allows `description`, `summary`, …) override those of
//!   the target;
//! - literal data (`example`, `default`, `enum`, `const`, `value`, array `examples`) is
//!   copied as it is, never searched for references.
//!
//! Endpoints come out sorted by (path template, method in the order get, put, post,
//! delete, patch, head, options), whatever the order of the document, because
//! `serde_json`'s map does not keep it.

use serde_json::{Map, Value};

use crate::endpoints::NewEndpoint;
use crate::error::Result;
use crate::routing::{http_method, path_template};
use crate::DomainError;

mod refs;

use refs::Resolver;

/// What an OpenAPI document describes.
#[derive(Debug, Clone)]
pub struct ImportedApi {
    pub title: String,
    pub description: String,
    pub endpoints: Vec<NewEndpoint>,
}

/// Largest document accepted (bytes).
pub const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;
/// Most operations accepted from one document.
pub const MAX_OPERATIONS: usize = 500;

/// Deepest YAML nesting read: the parser stops there instead of building anything
/// deeper. Its deserializer recurses once per level, with large frames in debug builds
/// (about 90 levels fill a 2 MiB thread stack, a tokio worker's); real API descriptions
/// stay under 30.
const MAX_YAML_DEPTH: usize = 64;
/// Most YAML nodes (mappings, sequences, scalars) and parser events read: well above a
/// 2 MiB document of real API descriptions, well below what could exhaust memory.
const MAX_YAML_NODES: usize = 1_000_000;

/// The operations of a path item, in output order.
const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// Parses an OpenAPI 3.x document (JSON or YAML) into the endpoints it describes.
pub fn parse(text: &str) -> Result<ImportedApi> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(invalid(format!(
            "The document is {} KiB; at most {} KiB can be imported.",
            text.len().div_ceil(1024),
            MAX_DOCUMENT_BYTES / 1024
        )));
    }
    let text = text.trim_start_matches('\u{feff}').trim();
    let doc: Value = if text.starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid(format!("The document is not valid JSON: {e}.")))?
    } else {
        serde_saphyr::from_str_with_options(text, yaml_limits())
            .map_err(|e| invalid(format!("The document is not valid YAML: {}.", yaml_error(&e))))?
    };
    let Value::Object(root) = &doc else {
        return Err(invalid("The document is not an OpenAPI document: expected an object at the top level."));
    };
    check_version(root)?;

    let info = root.get("info");
    let info_text = |key: &str| {
        info.and_then(|i| i.get(key)).and_then(Value::as_str).map(|s| s.trim().to_owned()).unwrap_or_default()
    };
    let title = info_text("title");
    let description = info_text("description");

    let mut resolver = Resolver::new(&doc);
    let paths = match root.get("paths") {
        None | Some(Value::Null) => None,
        Some(Value::Object(paths)) => Some(paths),
        Some(_) => return Err(invalid("paths: expected an object of path items.")),
    };
    // (raw path as written, endpoint): the raw path names the culprit of a duplicate.
    let mut found: Vec<(String, NewEndpoint)> = Vec::new();
    for (raw_path, item) in paths.into_iter().flatten() {
        if raw_path.starts_with("x-") {
            continue;
        }
        let at = format!("paths.{raw_path}");
        let item = resolver.deref(item, &at)?;
        let Value::Object(item) = item else {
            return Err(invalid(format!("{at}: expected a path item object.")));
        };
        let operations: Vec<(&str, &Value)> = METHODS.iter().filter_map(|m| item.get(*m).map(|op| (*m, op))).collect();
        if operations.is_empty() {
            continue;
        }
        let template = path_template(raw_path).map_err(|e| located(&at, e))?;
        let shared = parameter_list(item.get("parameters"), &format!("{at}.parameters"))?;
        let shared = (shared, format!("{at}.parameters"));
        for (key, op) in operations {
            if found.len() >= MAX_OPERATIONS {
                return Err(invalid(format!(
                    "The document describes more than {MAX_OPERATIONS} operations; \
                     split it into several products."
                )));
            }
            let at = format!("{at}.{key}");
            let endpoint = operation(&mut resolver, op, key, &template, &shared, &at)?;
            found.push((raw_path.clone(), endpoint));
        }
    }
    if found.is_empty() {
        return Err(invalid(
            "The document describes no operations: `paths` holds no get, put, post, delete, \
             patch, head or options.",
        ));
    }

    found.sort_by(|(raw_a, a), (raw_b, b)| {
        (&a.path_template, method_rank(&a.method), raw_a).cmp(&(&b.path_template, method_rank(&b.method), raw_b))
    });
    for pair in found.windows(2) {
        if let [(raw_a, a), (raw_b, b)] = pair {
            if a.method == b.method && a.path_template == b.path_template {
                return Err(invalid(format!(
                    "paths.{raw_a} and paths.{raw_b} both describe {} {}; keep only one of them.",
                    a.method, a.path_template
                )));
            }
        }
    }

    Ok(ImportedApi { title, description, endpoints: found.into_iter().map(|(_, e)| e).collect() })
}

/// The YAML parser's limits for a document someone uploads: one document, no `!include`,
/// nesting and size bounded while parsing (so a hostile text costs at most one pass),
/// anchors and aliases bounded against expansion bombs.
fn yaml_limits() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1,
            max_inclusion_depth: 0,
            max_depth: MAX_YAML_DEPTH,
            flow_nesting_limit: MAX_YAML_DEPTH,
            max_nodes: MAX_YAML_NODES,
            max_events: 2 * MAX_YAML_NODES,
            max_total_scalar_bytes: MAX_DOCUMENT_BYTES,
        },
    }
}

/// The parser's message, on one line: it may quote the document, which is the uploader's
/// own text, but a page shows one line.
fn yaml_error(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    if text.contains("Depth {") || text.contains("recursion limit") {
        return format!("it nests more than {MAX_YAML_DEPTH} levels deep");
    }
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unreadable");
    line.trim_end_matches('.').chars().take(300).collect()
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::Invalid(message.into())
}

/// Prefixes a user-facing message with where in the document the problem is.
fn located(at: &str, e: DomainError) -> DomainError {
    match e {
        DomainError::Invalid(m) => DomainError::Invalid(format!("{at}: {m}")),
        other => other,
    }
}

fn method_rank(method: &str) -> usize {
    METHODS.iter().position(|m| m.eq_ignore_ascii_case(method)).unwrap_or(METHODS.len())
}

fn check_version(root: &Map<String, Value>) -> Result<()> {
    let version = match root.get("openapi") {
        Some(Value::String(s)) => s.trim().to_owned(),
        // `openapi: 3.1` unquoted in YAML is a number.
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
        None => {
            if let Some(swagger) = root.get("swagger") {
                let swagger = swagger.as_str().map_or_else(|| swagger.to_string(), str::to_owned);
                return Err(invalid(format!(
                    "This is a Swagger {swagger} document; only OpenAPI 3.x documents can be \
                     imported. Convert it to OpenAPI 3 first (for example with swagger2openapi \
                     or the Swagger Editor)."
                )));
            }
            return Err(invalid("Only OpenAPI 3.x documents can be imported; this one has no `openapi` field."));
        }
    };
    if version.starts_with("3.") {
        Ok(())
    } else {
        Err(invalid(format!("Only OpenAPI 3.x documents can be imported; this one says `openapi: {version}`.")))
    }
}

/// One operation of a path item.
fn operation(
    resolver: &mut Resolver<'_>,
    op: &Value,
    key: &str,
    template: &str,
    (shared, shared_at): &(&[Value], String),
    at: &str,
) -> Result<NewEndpoint> {
    let Value::Object(op) = op else {
        return Err(invalid(format!("{at}: expected an operation object.")));
    };
    let method = http_method(key).map_err(|e| located(at, e))?;

    let operation_id = op.get("operationId").and_then(Value::as_str).map(|s| s.trim().to_owned()).unwrap_or_default();
    let summary = op
        .get("summary")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            op.get("description").and_then(Value::as_str).and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
        })
        .unwrap_or_default()
        .to_owned();

    let scope = match op.get("x-portcullis-scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.chars().any(char::is_whitespace) {
                return Err(invalid(format!(
                    "{at}.x-portcullis-scope: `{s}` holds a space; a scope is one word such as \
                     loans:approve."
                )));
            }
            Some(s.to_owned()).filter(|s| !s.is_empty())
        }
        Some(_) => return Err(invalid(format!("{at}.x-portcullis-scope: expected a string such as loans:approve."))),
    };
    let scope = scope.unwrap_or_else(|| {
        if matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") {
            "read".to_owned()
        } else {
            "write".to_owned()
        }
    });
    let sensitive = match op.get("x-portcullis-sensitive") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid(format!("{at}.x-portcullis-sensitive: expected true or false."))),
    };

    let own_at = format!("{at}.parameters");
    let own = parameter_list(op.get("parameters"), &own_at)?;
    let mut parameters: Vec<Value> = Vec::with_capacity(shared.len() + own.len());
    for (list, list_at) in [(*shared, shared_at), (own, &own_at)] {
        for (i, p) in list.iter().enumerate() {
            let p_at = format!("{list_at}[{i}]");
            let p = resolver.resolve(p, &p_at)?;
            let key = parameter_key(&p).ok_or_else(|| {
                invalid(format!(
                    "{p_at}: a parameter needs a `name` and an `in` (path, query, header or \
                     cookie)."
                ))
            })?;
            // The operation's parameter replaces the path item's of the same name and place.
            match parameters.iter_mut().find(|q| parameter_key(q).as_ref() == Some(&key)) {
                Some(slot) => *slot = p,
                None => parameters.push(p),
            }
        }
    }

    let request_schema = match op.get("requestBody") {
        None | Some(Value::Null) => None,
        Some(body) => {
            let body_at = format!("{at}.requestBody");
            let body = resolver.deref(body, &body_at)?;
            body_schema(resolver, body, &body_at)?
        }
    };
    let response_schema = match op.get("responses") {
        None | Some(Value::Null) => None,
        Some(Value::Object(responses)) => response_schema(resolver, responses, &format!("{at}.responses"))?,
        Some(_) => return Err(invalid(format!("{at}.responses: expected an object of responses by status code."))),
    };

    Ok(NewEndpoint {
        method,
        path_template: template.to_owned(),
        operation_id,
        summary,
        scope,
        sensitive,
        parameters,
        request_schema,
        response_schema,
    })
}

/// The raw (unresolved) parameter objects of a `parameters` field.
fn parameter_list<'v>(list: Option<&'v Value>, at: &str) -> Result<&'v [Value]> {
    match list {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(format!("{at}: expected a list of parameters."))),
    }
}

/// (name, in) of a resolved parameter object.
fn parameter_key(p: &Value) -> Option<(String, String)> {
    if p.get("$ref").is_some() {
        return None;
    }
    let name = p.get("name").and_then(Value::as_str)?;
    let place = p.get("in").and_then(Value::as_str)?;
    Some((name.to_owned(), place.to_ascii_lowercase()))
}

/// The schema of the first successful response that documents one; `default`'s when the
/// operation lists no 2xx response at all.
fn response_schema(resolver: &mut Resolver<'_>, responses: &Map<String, Value>, at: &str) -> Result<Option<Value>> {
    let mut codes: Vec<(&str, &Value)> = responses
        .iter()
        .map(|(code, response)| (code.as_str(), response))
        .filter(|(code, _)| code.starts_with('2'))
        .collect();
    codes.sort_by(|a, b| a.0.cmp(b.0));
    if codes.is_empty() {
        if let Some(default) = responses.get("default") {
            codes.push(("default", default));
        }
    }
    for (code, response) in codes {
        let r_at = format!("{at}.{code}");
        let response = resolver.deref(response, &r_at)?;
        if let Some(schema) = body_schema(resolver, response, &r_at)? {
            return Ok(Some(schema));
        }
    }
    Ok(None)
}

/// The resolved schema of a request body or response: `content` → the JSON media type (or
/// the first `+json` one, else the first) → `schema`.
fn body_schema(resolver: &mut Resolver<'_>, body: &Value, at: &str) -> Result<Option<Value>> {
    let Some(Value::Object(content)) = body.get("content") else {
        return Ok(None);
    };
    let mut media: Vec<(&String, &Value)> = content.iter().collect();
    media.sort_by(|a, b| a.0.cmp(b.0));
    let essence = |name: &str| name.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let chosen = media
        .iter()
        .find(|(name, _)| essence(name) == "application/json")
        .or_else(|| media.iter().find(|(name, _)| essence(name).ends_with("+json")))
        .or_else(|| media.first());
    let Some((name, media_type)) = chosen else {
        return Ok(None);
    };
    match media_type.get("schema") {
        None | Some(Value::Null) => Ok(None),
        Some(schema) => resolver.resolve(schema, &format!("{at}.content.{name}.schema")).map(Some),
    }
}

#[cfg(test)]
mod tests;
