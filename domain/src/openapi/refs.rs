//! Local `$ref` resolution for the OpenAPI import: following a chain of references to
//! the object it ends at, and expanding the references inside a schema within the
//! bounds the module documentation of [`super`] lists.

use serde_json::{Map, Value};

use super::invalid;
use crate::error::Result;

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
pub(super) const MAX_RESULT_NESTING: usize = 120;

/// Schema keywords whose value is literal data, not a schema: never searched for `$ref`s.
const LITERAL_KEYS: [&str; 5] = ["example", "default", "enum", "const", "value"];
/// Schema keywords whose value maps names (of properties, definitions) to schemas: the
/// names are not keywords, so a property called `$ref` or `default` is not taken for one.
const NAMED_SCHEMA_KEYS: [&str; 5] = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];

/// Resolves local references against one document.
pub(super) struct Resolver<'a> {
    root: &'a Value,
    /// Values reference expansion may still produce.
    budget: usize,
}

impl<'a> Resolver<'a> {
    /// A resolver for the document `root`, with the whole expansion budget.
    pub(super) fn new(root: &'a Value) -> Self {
        Resolver { root, budget: MAX_EXPANDED_NODES }
    }

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
    pub(super) fn deref(&self, value: &'a Value, at: &str) -> Result<&'a Value> {
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
    pub(super) fn resolve(&mut self, value: &Value, at: &str) -> Result<Value> {
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
pub(super) fn nesting(value: &Value, depth: usize) -> usize {
    match value {
        Value::Object(map) => map.values().map(|v| nesting(v, depth + 1)).max().unwrap_or(depth + 1),
        Value::Array(items) => items.iter().map(|v| nesting(v, depth + 1)).max().unwrap_or(depth + 1),
        _ => depth,
    }
}

/// `%7B` → `{` in a URI fragment; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}
