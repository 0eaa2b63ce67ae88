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
//!   [`MAX_REF_DEPTH`], or met after the document has expanded into [`MAX_EXPANDED_NODES`]
//!   values, is left as its `{"$ref": …}` object rather than failing the import;
//! - the keys beside a `$ref` (3.1 allows `description`, `summary`, …) override those of
//!   the target;
//! - literal data (`example`, `default`, `enum`, `const`, `value`, array `examples`) is
//!   copied as it is, never searched for references.
//!
//! Endpoints come out sorted by (path template, method in the order get, put, post,
//! delete, patch, head, options), whatever the order of the document, because
//! `serde_json`'s map does not keep it.

use serde_json::{Map, Value};

use crate::catalog::{http_method, path_template, NewEndpoint};
use crate::error::Result;
use crate::DomainError;

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

/// How many references may be expanded one inside another before the innermost is left
/// as a `$ref`.
const MAX_REF_DEPTH: usize = 32;
/// How many values (across the whole document) reference expansion may produce before
/// further references are left as `$ref`s: a few small schemas referring to each other
/// twice over would otherwise expand exponentially.
const MAX_EXPANDED_NODES: usize = 500_000;
/// Below this nesting depth of a resolved value, references are no longer expanded, so
/// that resolution recursion stays shallow.
const MAX_EXPANSION_NESTING: usize = 64;
/// Deepest resolved value accepted: `serde_json` refuses to read back anything nested
/// deeper than 128 levels.
const MAX_RESULT_NESTING: usize = 120;

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

/// Schema keywords whose value is literal data, not a schema: never searched for `$ref`s.
const LITERAL_KEYS: [&str; 5] = ["example", "default", "enum", "const", "value"];
/// Schema keywords whose value maps names (of properties, definitions) to schemas: the
/// names are not keywords, so a property called `$ref` or `default` is not taken for one.
const NAMED_SCHEMA_KEYS: [&str; 5] = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];

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

    let mut resolver = Resolver { root: &doc, budget: MAX_EXPANDED_NODES };
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

/// Resolves local references against one document.
struct Resolver<'a> {
    root: &'a Value,
    /// Values reference expansion may still produce.
    budget: usize,
}

impl<'a> Resolver<'a> {
    /// The value a reference points at; refuses references into other documents.
    fn lookup(&self, reference: &str, at: &str) -> Result<&'a Value> {
        let Some(fragment) = reference.strip_prefix('#') else {
            return Err(invalid(format!(
                "{at}: `{reference}` refers to another document; only references within this \
                 document (#/…) can be imported. Bundle the document into one file first."
            )));
        };
        let dangling = || invalid(format!("{at}: `{reference}` points at nothing in this document."));
        let pointer = percent_decode(fragment).ok_or_else(dangling)?;
        if pointer.is_empty() {
            return Ok(self.root);
        }
        if !pointer.starts_with('/') {
            return Err(dangling());
        }
        // `Value::pointer` unescapes `~1` and `~0`.
        self.root.pointer(&pointer).ok_or_else(dangling)
    }

    /// Follows a chain of references to the object it ends at (for path items, request
    /// bodies and responses, whose `$ref` siblings are ignored).
    fn deref(&self, value: &'a Value, at: &str) -> Result<&'a Value> {
        let mut current = value;
        let mut seen: Vec<&str> = Vec::new();
        while let Some(reference) = current.get("$ref").and_then(Value::as_str) {
            if seen.contains(&reference) {
                return Err(invalid(format!("{at}: `{reference}` refers back to itself.")));
            }
            if seen.len() >= MAX_REF_DEPTH {
                return Err(invalid(format!("{at}: more than {MAX_REF_DEPTH} references lead one to another.")));
            }
            seen.push(reference);
            current = self.lookup(reference, at)?;
        }
        Ok(current)
    }

    /// A copy of `value` with its references expanded.
    fn resolve(&mut self, value: &Value, at: &str) -> Result<Value> {
        let mut stack = Vec::new();
        let out = self.walk(value, false, 0, &mut stack, at)?;
        if nesting(&out, 0) > MAX_RESULT_NESTING {
            return Err(invalid(format!(
                "{at}: once its references are resolved this nests more than \
                 {MAX_RESULT_NESTING} levels deep."
            )));
        }
        Ok(out)
    }

    /// `names`: the keys of this object are names (of properties, …), not keywords.
    fn walk(&mut self, value: &Value, names: bool, depth: usize, stack: &mut Vec<String>, at: &str) -> Result<Value> {
        self.budget = self.budget.saturating_sub(1);
        match value {
            Value::Object(map) => {
                if !names {
                    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                        let target = self.lookup(reference, at)?;
                        let expandable = stack.len() < MAX_REF_DEPTH
                            && depth < MAX_EXPANSION_NESTING
                            && self.budget > 0
                            && !stack.iter().any(|r| r == reference);
                        if !expandable {
                            return Ok(value.clone());
                        }
                        stack.push(reference.to_owned());
                        let resolved = self.walk(target, false, depth, stack, at);
                        stack.pop();
                        let mut resolved = resolved?;
                        if let Value::Object(out) = &mut resolved {
                            for (key, sibling) in map.iter().filter(|(k, _)| *k != "$ref") {
                                let sibling = self.child(key, sibling, depth, stack, at)?;
                                out.insert(key.clone(), sibling);
                            }
                        }
                        return Ok(resolved);
                    }
                }
                let mut out = Map::new();
                for (key, child) in map {
                    let child = if names {
                        self.walk(child, false, depth + 1, stack, at)?
                    } else {
                        self.child(key, child, depth, stack, at)?
                    };
                    out.insert(key.clone(), child);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|item| self.walk(item, false, depth + 1, stack, at))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }

    /// The value of keyword `key` of an object at `depth`.
    fn child(&mut self, key: &str, child: &Value, depth: usize, stack: &mut Vec<String>, at: &str) -> Result<Value> {
        if LITERAL_KEYS.contains(&key) || (key == "examples" && child.is_array()) {
            return Ok(child.clone());
        }
        let names = NAMED_SCHEMA_KEYS.contains(&key);
        self.walk(child, names, depth + 1, stack, at)
    }
}

/// How deeply arrays and objects nest in `value` (bounded: the recursion goes no deeper
/// than the value, which resolution keeps shallow).
fn nesting(value: &Value, depth: usize) -> usize {
    match value {
        Value::Object(map) => map.values().map(|v| nesting(v, depth + 1)).max().unwrap_or(depth + 1),
        Value::Array(items) => items.iter().map(|v| nesting(v, depth + 1)).max().unwrap_or(depth + 1),
        _ => depth,
    }
}

/// `%7B` → `{` in a URI fragment; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).ok()?);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(text: &str) -> String {
        match parse(text) {
            Err(DomainError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    const LOANS: &str = r##"
openapi: 3.0.3
info:
  title: Loans
  description: |
    Apply for loans and follow their approval.
  version: 1.2.0
servers:
  - url: https://loans.example.com/v1
paths:
  /loans/{loanId}/approval:
    parameters:
      - $ref: '#/components/parameters/LoanId'
    post:
      operationId: approveLoan
      summary: Approve a loan
      x-portcullis-scope: loans:approve
      x-portcullis-sensitive: true
      parameters:
        - name: loanId
          in: path
          required: true
          description: The loan to approve.
          schema:
            type: string
            format: uuid
        - name: X-Request-Id
          in: header
          schema:
            type: string
      responses:
        204:
          description: Approved.
        409:
          $ref: '#/components/responses/Problem'
  /loans:
    summary: The loans of the caller
    get:
      operationId: listLoans
      summary: List loans
      parameters:
        - name: status
          in: query
          schema:
            type: string
            enum: [pending, approved, rejected]
      responses:
        200:
          description: The loans.
          content:
            application/json:
              schema:
                type: array
                items:
                  $ref: '#/components/schemas/Loan'
    post:
      operationId: applyForLoan
      description: |

        Apply for a loan.
        The amount is in cents.
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/LoanApplication'
      responses:
        201:
          description: Created.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Loan'
        default:
          $ref: '#/components/responses/Problem'
  /loans/{loanId}:
    parameters:
      - $ref: '#/components/parameters/LoanId'
    get:
      operationId: getLoan
      summary: Get a loan
      x-portcullis-sensitive: true
      responses:
        200:
          description: The loan.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Loan'
        404:
          $ref: '#/components/responses/Problem'
    delete:
      operationId: withdrawLoan
      summary: Withdraw a pending application
      responses:
        204:
          description: Withdrawn.
components:
  parameters:
    LoanId:
      name: loanId
      in: path
      required: true
      schema:
        type: string
  responses:
    Problem:
      description: A problem.
      content:
        application/problem+json:
          schema:
            type: object
  schemas:
    Money:
      type: integer
      minimum: 1
    LoanApplication:
      type: object
      required: [amount]
      properties:
        amount:
          $ref: '#/components/schemas/Money'
        purpose:
          type: string
    Loan:
      type: object
      properties:
        id:
          type: string
        amount:
          $ref: '#/components/schemas/Money'
        status:
          type: string
          default: pending
"##;

    #[test]
    fn imports_a_yaml_3_0_document() {
        let api = parse(LOANS).unwrap();
        assert_eq!(api.title, "Loans");
        assert_eq!(api.description, "Apply for loans and follow their approval.");
        let summary: Vec<(&str, &str, &str, &str, &str, bool)> = api
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.method.as_str(),
                    e.path_template.as_str(),
                    e.operation_id.as_str(),
                    e.summary.as_str(),
                    e.scope.as_str(),
                    e.sensitive,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("GET", "/loans", "listLoans", "List loans", "read", false),
                ("POST", "/loans", "applyForLoan", "Apply for a loan.", "write", false),
                ("GET", "/loans/{loanId}", "getLoan", "Get a loan", "read", true),
                ("DELETE", "/loans/{loanId}", "withdrawLoan", "Withdraw a pending application", "write", false),
                ("POST", "/loans/{loanId}/approval", "approveLoan", "Approve a loan", "loans:approve", true),
            ]
        );
        let [list, apply, get, withdraw, approve] = api.endpoints.as_slice() else {
            panic!("five endpoints");
        };
        let loan = json!({
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "amount": { "type": "integer", "minimum": 1 },
                "status": { "type": "string", "default": "pending" }
            }
        });

        assert_eq!(
            list.parameters,
            vec![json!({
                "name": "status",
                "in": "query",
                "schema": { "type": "string", "enum": ["pending", "approved", "rejected"] }
            })]
        );
        assert_eq!(list.request_schema, None);
        assert_eq!(list.response_schema, Some(json!({ "type": "array", "items": loan })));

        assert!(apply.parameters.is_empty());
        assert_eq!(
            apply.request_schema,
            Some(json!({
                "type": "object",
                "required": ["amount"],
                "properties": {
                    "amount": { "type": "integer", "minimum": 1 },
                    "purpose": { "type": "string" }
                }
            }))
        );
        assert_eq!(apply.response_schema, Some(loan.clone()));

        let loan_id = json!({
            "name": "loanId", "in": "path", "required": true, "schema": { "type": "string" }
        });
        assert_eq!(get.parameters, vec![loan_id.clone()]);
        assert_eq!(get.response_schema, Some(loan));
        assert_eq!(withdraw.parameters, vec![loan_id]);
        assert_eq!(withdraw.response_schema, None);

        // The operation's loanId replaces the path item's.
        assert_eq!(
            approve.parameters,
            vec![
                json!({
                    "name": "loanId",
                    "in": "path",
                    "required": true,
                    "description": "The loan to approve.",
                    "schema": { "type": "string", "format": "uuid" }
                }),
                json!({ "name": "X-Request-Id", "in": "header", "schema": { "type": "string" } }),
            ]
        );
        assert_eq!(approve.request_schema, None);
        // 204 documents no body; the 409 problem is not a success.
        assert_eq!(approve.response_schema, None);
    }

    #[test]
    fn imports_a_json_3_1_document() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": { "title": "Widgets" },
            "paths": {
                "x-internal": { "note": "an extension, not a path" },
                "/widgets/": {
                    "servers": [{ "url": "https://w.example.com" }],
                    "put": {
                        "description": "Replace all widgets.\nSecond line.",
                        "x-portcullis-scope": "  ",
                        "requestBody": { "$ref": "#/components/requestBodies/Widgets" },
                        "responses": {
                            "2XX": {
                                "content": {
                                    "text/plain": { "schema": { "type": "string" } },
                                    "application/vnd.widgets+json": {
                                        "schema": {
                                            "$ref": "#/components/schemas/Widget",
                                            "description": "The widget as stored."
                                        }
                                    }
                                }
                            }
                        }
                    },
                    "head": { "responses": {} }
                }
            },
            "components": {
                "requestBodies": {
                    "Widgets": {
                        "content": {
                            "application/json; charset=utf-8": {
                                "schema": {
                                    "type": "array",
                                    "items": { "$ref": "#/components/schemas/Widget" }
                                }
                            }
                        }
                    }
                },
                "schemas": {
                    "Widget": {
                        "type": "object",
                        "description": "A widget.",
                        "properties": {
                            "name": { "type": ["string", "null"] },
                            "$ref": { "type": "string" }
                        }
                    }
                }
            }
        });
        let api = parse(&serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        assert_eq!(api.title, "Widgets");
        assert_eq!(api.description, "");
        let [put, head] = api.endpoints.as_slice() else {
            panic!("two endpoints: {:?}", api.endpoints);
        };
        let widget = json!({
            "type": "object",
            "description": "A widget.",
            "properties": {
                "name": { "type": ["string", "null"] },
                "$ref": { "type": "string" }
            }
        });
        assert_eq!((put.method.as_str(), put.path_template.as_str()), ("PUT", "/widgets"));
        assert_eq!(put.operation_id, "");
        assert_eq!(put.summary, "Replace all widgets.");
        assert_eq!(put.scope, "write");
        assert!(!put.sensitive);
        assert_eq!(put.request_schema, Some(json!({ "type": "array", "items": widget })));
        let mut described = widget;
        described["description"] = json!("The widget as stored.");
        assert_eq!(put.response_schema, Some(described));

        assert_eq!((head.method.as_str(), head.scope.as_str()), ("HEAD", "read"));
        assert_eq!(head.summary, "");
        assert!(head.parameters.is_empty());
        assert_eq!(head.request_schema, None);
        assert_eq!(head.response_schema, None);
    }

    #[test]
    fn accepts_an_unquoted_version_and_escaped_pointers() {
        let api = parse(
            r##"
openapi: 3.1
paths:
  /a:
    get:
      parameters:
        - $ref: '#/x-shared/a~1b~0c/%7Bp%7D'
      responses:
        default:
          content:
            text/csv:
              schema: { type: string }
x-shared:
  a/b~c:
    '{p}': { name: p, in: query }
"##,
        )
        .unwrap();
        let [get] = api.endpoints.as_slice() else {
            panic!("one endpoint");
        };
        assert_eq!(get.parameters, vec![json!({ "name": "p", "in": "query" })]);
        // No 2xx response: `default`'s schema, of the only content type.
        assert_eq!(get.response_schema, Some(json!({ "type": "string" })));
    }

    #[test]
    fn refuses_swagger_2_and_other_versions() {
        let m = err(r#"{"swagger": "2.0", "info": {"title": "Old"}, "paths": {}}"#);
        assert!(m.contains("Swagger 2.0"), "{m}");
        assert!(m.contains("only OpenAPI 3.x"), "{m}");
        let m = err("openapi: 4.0.0\npaths: {}\n");
        assert!(m.contains("Only OpenAPI 3.x documents can be imported; this one says `openapi: 4.0.0`"), "{m}");
        let m = err("info:\n  title: Nothing\n");
        assert!(m.contains("no `openapi` field"), "{m}");
    }

    #[test]
    fn refuses_what_is_not_a_document() {
        assert!(err("").contains("expected an object"));
        assert!(err("- a\n- b\n").contains("expected an object"));
        assert!(err("{\"openapi\": ").contains("not valid JSON"));
        assert!(err("openapi: [unclosed\n").contains("not valid YAML"));
        // Nesting beyond the parsers' limits is an error, not a stack overflow.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(err(&deep).contains("not valid JSON"));
        let deep = format!("a: {}1{}", "[".repeat(500), "]".repeat(500));
        assert!(err(&deep).contains("not valid YAML"));
        // 2 MiB of `[` is refused at the nesting limit, in one pass.
        let started = std::time::Instant::now();
        let deep = format!("a: {}", "[".repeat(MAX_DOCUMENT_BYTES - 3));
        assert!(err(&deep).contains("not valid YAML"));
        assert!(err(&deep).contains("nests more than 64 levels deep"), "{}", err(&deep));
        let block = |levels: usize| (0..levels).map(|i| format!("{}k:\n", "  ".repeat(i))).collect::<String>();
        assert!(err(&block(300)).contains("nests more than 64 levels deep"), "block nesting is bounded too");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        // At the limit, flow or block, it is read whole on a test thread's 2 MiB stack (a
        // tokio worker's): the limit is below what the stack holds.
        let at_limit = format!("a: {}1{}", "[".repeat(63), "]".repeat(63));
        assert!(err(&at_limit).contains("no `openapi` field"), "{}", err(&at_limit));
        assert!(err(&block(64)).contains("no `openapi` field"));
        // Two documents, or an include, are not one OpenAPI document; nothing is read
        // from the disk.
        assert!(err("openapi: 3.0.0\n---\nopenapi: 3.1.0\n").contains("not valid YAML"));
        let include = err("openapi: 3.0.0\ninfo: !include /etc/passwd\npaths: {}\n");
        assert!(!include.contains("root:"), "{include}");
    }

    #[test]
    fn refuses_documents_without_operations() {
        for doc in [
            "openapi: 3.0.0\ninfo: {title: Empty}\npaths: {}\n",
            "openapi: 3.1.0\ninfo: {title: Hooks}\nwebhooks: {}\n",
            "openapi: 3.0.0\npaths:\n  /a:\n    parameters: []\n    summary: nothing here\n",
        ] {
            assert!(err(doc).contains("describes no operations"), "{doc}");
        }
    }

    #[test]
    fn refuses_remote_and_dangling_references() {
        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          \
             application/json:\n            schema:\n              $ref: 'common.yaml#/Thing'\n");
        assert!(m.starts_with("paths./a.post.requestBody"), "{m}");
        assert!(m.contains("`common.yaml#/Thing` refers to another document"), "{m}");

        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        \
             - $ref: '#/components/parameters/Nope'\n");
        assert!(m.starts_with("paths./a.get.parameters[0]: `#/components/parameters/Nope` points at nothing"), "{m}");
    }

    #[test]
    fn refuses_an_invalid_path_template_with_its_location() {
        let m = err("openapi: 3.0.0\npaths:\n  /accounts/{id}.json:\n    get: {}\n");
        assert_eq!(
            m,
            "paths./accounts/{id}.json: `/accounts/{id}.json` is not a path template like \
             /accounts/{id}."
        );
    }

    #[test]
    fn refuses_bad_extensions_with_their_location() {
        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-portcullis-sensitive: 'yes'\n");
        assert_eq!(m, "paths./a.get.x-portcullis-sensitive: expected true or false.");
        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-portcullis-scope: 3\n");
        assert!(m.starts_with("paths./a.get.x-portcullis-scope:"), "{m}");
        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      x-portcullis-scope: read write\n");
        assert!(m.contains("holds a space"), "{m}");
        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - in: query\n");
        assert!(m.starts_with("paths./a.get.parameters[0]: a parameter needs"), "{m}");
    }

    #[test]
    fn refuses_duplicate_operations() {
        let m = err("openapi: 3.0.0\npaths:\n  /a/:\n    get: {}\n  /a:\n    get: {}\n    post: {}\n");
        assert_eq!(m, "paths./a and paths./a/ both describe GET /a; keep only one of them.");
    }

    #[test]
    fn refuses_too_many_operations() {
        let mut paths = Map::new();
        for i in 0..=MAX_OPERATIONS {
            paths.insert(format!("/r{i}"), json!({ "get": {} }));
        }
        let doc = json!({ "openapi": "3.0.0", "paths": paths }).to_string();
        assert!(err(&doc).contains("more than 500 operations"));
        paths.remove("/r0");
        let doc = json!({ "openapi": "3.0.0", "paths": paths }).to_string();
        assert_eq!(parse(&doc).unwrap().endpoints.len(), MAX_OPERATIONS);
    }

    #[test]
    fn refuses_an_oversize_document() {
        let doc = format!("openapi: 3.0.0\npaths:\n  /a:\n    get: {{}}\n# {}\n", "x".repeat(MAX_DOCUMENT_BYTES));
        let m = err(&doc);
        assert!(m.contains("at most 2048 KiB"), "{m}");
    }

    #[test]
    fn leaves_cyclic_schemas_as_references() {
        let api = parse(
            r##"
openapi: 3.0.0
paths:
  /nodes:
    get:
      responses:
        '200':
          content:
            application/json:
              schema: { $ref: '#/components/schemas/Node' }
components:
  schemas:
    Node:
      type: object
      properties:
        children:
          type: array
          items: { $ref: '#/components/schemas/Node' }
        self: { $ref: '#/components/schemas/Loop' }
    Loop: { $ref: '#/components/schemas/Loop' }
"##,
        )
        .unwrap();
        let [get] = api.endpoints.as_slice() else {
            panic!("one endpoint");
        };
        assert_eq!(
            get.response_schema,
            Some(json!({
                "type": "object",
                "properties": {
                    "children": {
                        "type": "array",
                        "items": { "$ref": "#/components/schemas/Node" }
                    },
                    "self": { "$ref": "#/components/schemas/Loop" }
                }
            }))
        );
    }

    #[test]
    fn a_request_body_that_refers_to_itself_is_refused() {
        let m = err("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        \
             $ref: '#/components/requestBodies/B'\ncomponents:\n  requestBodies:\n    B:\n      \
             $ref: '#/components/requestBodies/B'\n");
        assert!(m.contains("refers back to itself"), "{m}");
    }

    #[test]
    fn exponential_expansion_is_bounded() {
        // S0 refers to S1 twice, S1 to S2 twice, …: 2^40 leaves if fully expanded.
        let mut schemas = Map::new();
        for i in 0..40 {
            let next = format!("#/components/schemas/S{}", i + 1);
            schemas.insert(
                format!("S{i}"),
                json!({ "type": "object", "properties": {
                    "a": { "$ref": next }, "b": { "$ref": next }
                }}),
            );
        }
        schemas.insert("S40".into(), json!({ "type": "string" }));
        let doc = json!({
            "openapi": "3.1.0",
            "paths": { "/x": { "post": { "requestBody": { "content": {
                "application/json": { "schema": { "$ref": "#/components/schemas/S0" } }
            }}}}},
            "components": { "schemas": schemas }
        });
        let api = parse(&doc.to_string()).unwrap();
        let schema = api.endpoints.first().unwrap().request_schema.as_ref().unwrap();
        assert!(schema.to_string().len() < 200 * 1024 * 1024);
        assert!(nesting(schema, 0) <= MAX_RESULT_NESTING);
    }

    #[test]
    fn literal_data_is_not_searched_for_references() {
        let api = parse(
            r##"{
  "openapi": "3.0.1",
  "paths": { "/a": { "post": { "requestBody": { "content": { "application/json": {
    "schema": {
      "type": "object",
      "example": { "$ref": "elsewhere.json" },
      "properties": { "default": { "$ref": "#/components/schemas/S" } }
    }
  }}}}}},
  "components": { "schemas": { "S": { "type": "integer" } } }
}"##,
        )
        .unwrap();
        assert_eq!(
            api.endpoints.first().unwrap().request_schema,
            Some(json!({
                "type": "object",
                "example": { "$ref": "elsewhere.json" },
                "properties": { "default": { "type": "integer" } }
            }))
        );
    }
}
