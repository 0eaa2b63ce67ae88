//! The stateless revision (2026-07-28): every request carries its version and the
//! client's capabilities in `_meta`, and names its method (and tool) in headers.

use super::*;

/// A request that carries its protocol version in `_meta` belongs to the stateless
/// revision even when its header names an unknown version (so it gets `-32022`).
pub(super) fn body_is_stateless(value: &Value) -> bool {
    value.pointer("/params/_meta").and_then(|m| m.get(META_PROTOCOL_VERSION)).is_some()
}

pub(super) fn stateless_status(code: i64) -> StatusCode {
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH | UNSUPPORTED_PROTOCOL_VERSION => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

pub(super) async fn stateless_post(ctx: &Ctx<'_>, value: Value, slot: &mut Option<PendingRow>) -> Response {
    let fault = |slot: &mut Option<PendingRow>, what: &str, id: &Value, e: RpcError| {
        note(slot, what, Err(jsonrpc::reason(e.code)));
        rpc_fault(stateless_status(e.code), id, &e)
    };
    if value.is_array() {
        let e = RpcError::new(INVALID_REQUEST, "Batches are not part of this protocol version.");
        return fault(slot, "batch", &Value::Null, e);
    }
    let (id, method, params) = match jsonrpc::classify(value) {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification { method }) => {
            note(slot, &method, Ok(()));
            return StatusCode::ACCEPTED.into_response();
        }
        Ok(Message::Response) => {
            note(slot, "response", Ok(()));
            return StatusCode::ACCEPTED.into_response();
        }
        Err((id, e)) => return fault(slot, "invalid", &id, e),
    };
    if let Err(e) = check_envelope(ctx.headers, &method, &params) {
        return fault(slot, &method, &id, e);
    }
    match dispatch(ctx, &method, &params, true, slot).await {
        Ok(mut result) => {
            if let Some(obj) = result.as_object_mut() {
                obj.insert("resultType".into(), json!("complete"));
            }
            rpc_response(StatusCode::OK, jsonrpc::result(&id, result))
        }
        Err(e) => {
            // `dispatch` already noted the refusal on the row.
            rpc_fault(stateless_status(e.code), &id, &e)
        }
    }
}

/// The per-request envelope of 2026-07-28, checked in the order the reference SDKs use:
/// `_meta` present, headers agree with the body, version supported.
pub(super) fn check_envelope(headers: &HeaderMap, method: &str, params: &Map<String, Value>) -> Result<(), RpcError> {
    let meta = params.get("_meta").and_then(Value::as_object).ok_or_else(|| {
        RpcError::invalid_params(format!(
            "params._meta must carry {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES}."
        ))
    })?;
    let Some(version) = meta.get(META_PROTOCOL_VERSION) else {
        return Err(RpcError::invalid_params(format!("params._meta.{META_PROTOCOL_VERSION} is required.")));
    };
    if !meta.contains_key(META_CLIENT_CAPABILITIES) {
        return Err(RpcError::invalid_params(format!("params._meta.{META_CLIENT_CAPABILITIES} is required.")));
    }
    if header_str(headers, "mcp-protocol-version").map(Value::from).as_ref() != Some(version) {
        return Err(RpcError::new(HEADER_MISMATCH, "MCP-Protocol-Version does not match params._meta."));
    }
    if header_str(headers, "mcp-method") != Some(method) {
        return Err(RpcError::new(HEADER_MISMATCH, "Mcp-Method does not match the request's method."));
    }
    if method == "tools/call" {
        let name = params.get("name").and_then(Value::as_str);
        if name.is_some() && header_str(headers, "mcp-name").and_then(decode_header_value).as_deref() != name {
            return Err(RpcError::new(HEADER_MISMATCH, "Mcp-Name does not match params.name."));
        }
    }
    let Some(version) = version.as_str() else {
        return Err(RpcError::invalid_params("The protocol version must be a string."));
    };
    if version != STATELESS_VERSION {
        return Err(RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version.")
            .with_data(json!({ "supported": SUPPORTED_VERSIONS, "requested": version })));
    }
    Ok(())
}

/// A header value as sent: verbatim, or the `=?base64?…?=` form for values that are not
/// plain printable ASCII (2026-07-28 Streamable HTTP, "Standard Headers").
pub(super) fn decode_header_value(raw: &str) -> Option<String> {
    use base64::Engine;
    match raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        None => Some(raw.to_owned()),
        Some(payload) => {
            base64::engine::general_purpose::STANDARD.decode(payload).ok().and_then(|b| String::from_utf8(b).ok())
        }
    }
}
