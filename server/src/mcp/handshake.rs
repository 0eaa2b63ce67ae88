//! The 2025 revisions (2025-03-26, 2025-06-18, 2025-11-25): `initialize`, sessions named
//! by `Mcp-Session-Id`, and 2025-03-26's batches.

use super::*;

pub(super) async fn session_post(ctx: &Ctx<'_>, value: Value, slot: &mut Option<PendingRow>) -> Response {
    let items = match value {
        Value::Array(items) => items,
        single => {
            return match session_message(ctx, single, false, slot).await {
                Answer::Accepted => StatusCode::ACCEPTED.into_response(),
                Answer::Reply(status, body, session) => {
                    let mut res = rpc_response(status, body);
                    if let Some(id) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
                        res.headers_mut().insert(HeaderName::from_static("mcp-session-id"), id);
                    }
                    res
                }
                Answer::Http(res) => res,
            };
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        note(slot, "batch", Err(Reason::InvalidRequest));
        let e = RpcError::new(INVALID_REQUEST, format!("A batch holds 1 to {MAX_BATCH} messages."));
        return rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e);
    }
    // Batches (2025-03-26 only; later revisions removed them): answered together, each
    // message with a row of its own (the request's row serves the first).
    let mut replies = Vec::new();
    let mut commits: Vec<Committed> = Vec::new();
    let mut first = slot.take();
    for item in items {
        let mut message_slot = match first.take() {
            Some(row) => Some(row),
            None => match reserve(ctx.mcp, &Method::POST, ctx.headers, ctx.peer, Instant::now()).await {
                Ok(mut row) => {
                    ctx.caller.stamp(&mut row.event);
                    Some(row)
                }
                Err(refused) => return refused,
            },
        };
        let (status, answer) = match session_message(ctx, item, true, &mut message_slot).await {
            Answer::Accepted => (StatusCode::ACCEPTED, None),
            Answer::Reply(status, body, _) => (status, Some(body)),
            Answer::Http(res) => {
                if let Some(row) = message_slot {
                    return audit::answer(row, res).await;
                }
                return res;
            }
        };
        if let Some(mut row) = message_slot {
            if row.event.status == 0 {
                row.event.status = status.as_u16();
            }
            commits.push(row.finish());
        }
        replies.extend(answer);
    }
    for c in commits {
        c.wait().await;
    }
    if replies.is_empty() {
        StatusCode::ACCEPTED.into_response()
    } else {
        rpc_response(StatusCode::OK, Value::Array(replies))
    }
}

pub(super) enum Answer {
    /// A notification or response: 202, no body.
    Accepted,
    /// A JSON-RPC answer, with the session id to announce after `initialize`.
    Reply(StatusCode, Value, Option<String>),
    /// A transport-level refusal (missing or unknown session, bad version header).
    Http(Response),
}

pub(super) async fn session_message(
    ctx: &Ctx<'_>,
    value: Value,
    in_batch: bool,
    slot: &mut Option<PendingRow>,
) -> Answer {
    let message = match jsonrpc::classify(value) {
        Ok(m) => m,
        Err((id, e)) => {
            note(slot, "invalid", Err(jsonrpc::reason(e.code)));
            return Answer::Reply(StatusCode::BAD_REQUEST, jsonrpc::error(&id, &e), None);
        }
    };
    if let Message::Request { id, method, params } = &message {
        if method == "initialize" {
            if in_batch {
                note(slot, method, Err(Reason::InvalidRequest));
                let e = RpcError::new(INVALID_REQUEST, "initialize must not be part of a batch.");
                return Answer::Reply(StatusCode::BAD_REQUEST, jsonrpc::error(id, &e), None);
            }
            return initialize(ctx, id, params, slot);
        }
    }
    let what = match &message {
        Message::Request { method, .. } | Message::Notification { method } => method.as_str(),
        Message::Response => "response",
    };
    // Everything after initialize names its session (Streamable HTTP, "Session Management").
    let Some(session_id) = header_str(ctx.headers, "mcp-session-id") else {
        note(slot, what, Err(Reason::SessionRequired));
        let e = RpcError::new(INVALID_REQUEST, "Mcp-Session-Id is required; send initialize first.");
        return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &request_id(&message), &e));
    };
    let Ok(session) = ctx.mcp.sessions.resume(session_id, ctx.caller.subject(), ctx.now) else {
        note(slot, what, Err(Reason::UnknownSession));
        return Answer::Http(session_not_found());
    };
    if in_batch && session.protocol_version != "2025-03-26" {
        note(slot, what, Err(Reason::InvalidRequest));
        let e = RpcError::new(INVALID_REQUEST, "Batches are not part of this protocol version.");
        return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &Value::Null, &e));
    }
    // Streamable HTTP, "Protocol Version Header": an invalid or unsupported one is a 400.
    // Another version we support is not refused: the conformance suite sends 2025-03-26
    // inside a 2025-11-25 session, and the spec refuses only unknown versions.
    if let Some(v) = header_str(ctx.headers, "mcp-protocol-version") {
        if !HANDSHAKE_VERSIONS.contains(&v) {
            note(slot, what, Err(Reason::UnsupportedProtocolVersion));
            let e = RpcError::new(INVALID_REQUEST, format!("Unsupported MCP-Protocol-Version {v}."))
                .with_data(json!({ "supported": SUPPORTED_VERSIONS }));
            return Answer::Http(rpc_fault(StatusCode::BAD_REQUEST, &request_id(&message), &e));
        }
    }
    match message {
        Message::Notification { method } => {
            note(slot, &method, Ok(()));
            Answer::Accepted
        }
        Message::Response => {
            note(slot, "response", Ok(()));
            Answer::Accepted
        }
        Message::Request { id, method, params } => match dispatch(ctx, &method, &params, false, slot).await {
            Ok(result) => Answer::Reply(StatusCode::OK, jsonrpc::result(&id, result), None),
            Err(e) => Answer::Reply(StatusCode::OK, jsonrpc::error(&id, &e), None),
        },
    }
}

pub(super) fn request_id(message: &Message) -> Value {
    match message {
        Message::Request { id, .. } => id.clone(),
        _ => Value::Null,
    }
}

pub(super) fn initialize(
    ctx: &Ctx<'_>,
    id: &Value,
    params: &Map<String, Value>,
    slot: &mut Option<PendingRow>,
) -> Answer {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        note(slot, "initialize", Err(Reason::InvalidParams));
        let e = RpcError::invalid_params("initialize needs params.protocolVersion.");
        return Answer::Reply(StatusCode::OK, jsonrpc::error(id, &e), None);
    };
    // Lifecycle, "Version Negotiation": the requested version if we speak it, else our latest.
    let version = HANDSHAKE_VERSIONS.iter().copied().find(|v| *v == requested).unwrap_or(HANDSHAKE_VERSIONS[0]);
    let Ok(session) = ctx.mcp.sessions.start(ctx.caller.subject(), version, ctx.now) else {
        tracing::error!(subject = %ctx.caller.subject(), "MCP session id cannot be sealed for this subject");
        note(slot, "initialize", Err(Reason::InternalError));
        let e = RpcError::new(jsonrpc::INTERNAL_ERROR, "The session could not be started.");
        return Answer::Reply(StatusCode::OK, jsonrpc::error(id, &e), None);
    };
    note(slot, "initialize", Ok(()));
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": ctx.mcp.server_info(),
        "instructions": ctx.mcp.instructions(),
    });
    Answer::Reply(StatusCode::OK, jsonrpc::result(id, result), Some(session))
}
