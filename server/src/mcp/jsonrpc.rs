//! JSON-RPC 2.0 messages as MCP uses them: parsing one message, and the error objects
//! for protocol faults. Protocol faults are answered here, never as a 500.

use portcullis_domain::model::Reason;
use serde_json::{json, Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28 error codes (basic/index "Error codes").
pub const HEADER_MISMATCH: i64 = -32020;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The audit reason of a refused message, by its error code.
pub fn reason(code: i64) -> Reason {
    match code {
        PARSE_ERROR => Reason::ParseError,
        INVALID_REQUEST => Reason::InvalidRequest,
        METHOD_NOT_FOUND => Reason::MethodNotFound,
        INVALID_PARAMS => Reason::InvalidParams,
        INTERNAL_ERROR => Reason::InternalError,
        HEADER_MISMATCH => Reason::HeaderMismatch,
        UNSUPPORTED_PROTOCOL_VERSION => Reason::UnsupportedProtocolVersion,
        _ => Reason::RpcError,
    }
}

/// A JSON-RPC error to send back: code, message and optional data.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

/// One incoming message, classified.
#[derive(Debug)]
pub enum Message {
    /// A request: it must be answered with a result or an error carrying its `id`.
    Request { id: Value, method: String, params: Map<String, Value> },
    /// A notification: never answered.
    Notification { method: String },
    /// A response to something we asked (we ask nothing, so these are only acknowledged).
    Response,
}

/// Classifies one JSON value as a JSON-RPC 2.0 message. The error carries the `id` to
/// answer with (`null` when none could be read).
pub fn classify(value: Value) -> Result<Message, (Value, RpcError)> {
    let Value::Object(mut obj) = value else {
        return Err((Value::Null, RpcError::new(INVALID_REQUEST, "A JSON-RPC message must be an object.")));
    };
    let id = obj.remove("id");
    let answer_id = id.clone().filter(|i| i.is_string() || i.is_number()).unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err((answer_id, RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\".")));
    }
    if obj.contains_key("result") || obj.contains_key("error") {
        return Ok(Message::Response);
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err((answer_id, RpcError::new(INVALID_REQUEST, "`method` must be a string."))),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Err((answer_id, RpcError::invalid_params("`params` must be an object."))),
    };
    match id {
        None => Ok(Message::Notification { method }),
        // MCP: the id is a string or an integer, never null.
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(Message::Request { id, method, params }),
        Some(_) => Err((Value::Null, RpcError::new(INVALID_REQUEST, "`id` must be a string or a number."))),
    }
}

pub fn result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

pub fn error(id: &Value, e: &RpcError) -> Value {
    let mut err = json!({ "code": e.code, "message": e.message });
    if let (Some(data), Some(obj)) = (&e.data, err.as_object_mut()) {
        obj.insert("data".into(), data.clone());
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": err })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_and_faults_keep_the_id() {
        let req = classify(json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}));
        assert!(matches!(req, Ok(Message::Request { ref method, .. }) if method == "ping"));
        let note = classify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert!(matches!(note, Ok(Message::Notification { .. })));
        assert!(matches!(classify(json!({"jsonrpc": "2.0", "id": 1, "result": {}})), Ok(Message::Response)));
        let (id, e) = classify(json!({"jsonrpc": "1.0", "id": "a", "method": "ping"})).unwrap_err();
        assert_eq!((id, e.code), (json!("a"), INVALID_REQUEST));
        let (_, e) = classify(json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]})).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        let (id, e) = classify(json!({"jsonrpc": "2.0", "id": null, "method": "ping"})).unwrap_err();
        assert_eq!((id, e.code), (Value::Null, INVALID_REQUEST));
    }
}
