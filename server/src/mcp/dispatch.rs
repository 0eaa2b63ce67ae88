//! Methods, the same for every revision: `ping`, `server/discover`, `tools/list` and
//! `tools/call`, each noted on its request's audit row.

use super::*;

/// Notes on a message's row what it was and how it ended, unless a tool already did
/// (the status comes from the answer when the row is finished, if the tool set none).
pub(super) fn note(slot: &mut Option<PendingRow>, what: &str, outcome: Result<(), Reason>) {
    if let Some(row) = slot.as_mut() {
        if row.event.tool.is_none() {
            row.event.tool = Some(AuditText::new(what, cap::TOOL));
        }
        if row.event.reason != Reason::Undecided {
            return;
        }
        match outcome {
            Ok(()) => row.event.allowed(),
            Err(reason) => row.event.refused(reason),
        }
    }
}

/// Answers one request; notes on its row what it was and whether it succeeded.
pub(super) async fn dispatch(
    ctx: &Ctx<'_>,
    method: &str,
    params: &Map<String, Value>,
    stateless: bool,
    slot: &mut Option<PendingRow>,
) -> Result<Value, RpcError> {
    if method == "tools/call" {
        let result = call_tool(ctx, params, slot).await;
        if let Err(e) = &result {
            note(slot, method, Err(jsonrpc::reason(e.code)));
        }
        return result;
    }
    let result = match method {
        "ping" => Ok(json!({})),
        "server/discover" if stateless => Ok(json!({
            "supportedVersions": SUPPORTED_VERSIONS,
            "capabilities": { "tools": {} },
            "instructions": ctx.mcp.instructions(),
            "cacheScope": "public",
            "ttlMs": 3_600_000,
            "_meta": { META_SERVER_INFO: ctx.mcp.server_info() },
        })),
        "tools/list" => {
            let mut result = json!({ "tools": ctx.mcp.tool_definitions() });
            if stateless {
                if let Some(obj) = result.as_object_mut() {
                    // The tools are the same for everyone; what they return is not.
                    obj.insert("cacheScope".into(), json!("public"));
                    obj.insert("ttlMs".into(), json!(3_600_000));
                }
            }
            Ok(result)
        }
        other => Err(RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {other}"))),
    };
    note(slot, method, result.as_ref().map(|_| ()).map_err(|e| jsonrpc::reason(e.code)));
    result
}

pub(super) async fn call_tool(
    ctx: &Ctx<'_>,
    params: &Map<String, Value>,
    slot: &mut Option<PendingRow>,
) -> Result<Value, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("params.name is required."))?;
    if let Some(row) = slot.as_mut() {
        row.event.tool = Some(AuditText::new(name, cap::TOOL));
    }
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => return Err(RpcError::invalid_params("params.arguments must be an object.")),
    };
    let caller = match &ctx.caller {
        Principal::Agent(agent) => tools::Caller { caller: agent, now: ctx.now },
        Principal::Person(person) => {
            let Some(outcome) = manage::call(&ctx.mcp.portal, person, name, args).await else {
                return Err(unknown_tool(name, slot));
            };
            return Ok(tool_result(outcome, slot));
        }
    };
    let outcome = match name {
        tools::LIST_COLLECTIONS => tools::list_collections(&caller, ctx.snap),
        tools::LIST_ENDPOINTS => tools::list_endpoints(&caller, ctx.snap, args),
        tools::ENDPOINT_DETAILS => tools::endpoint_details(&caller, ctx.snap, args),
        tools::EXECUTE_ENDPOINT => {
            let bound = tools::Bound {
                profile_id: &caller.caller.profile.id,
                client: ctx.peer,
                proven_key: caller.caller.proven_key(),
                certificate: caller.caller.certificate.as_ref(),
            };
            tools::execute_endpoint(&ctx.mcp.gateway, ctx.snap, args, ctx.headers, bound, slot).await
        }
        other => return Err(unknown_tool(other, slot)),
    };
    Ok(tool_result(outcome, slot))
}

pub(super) fn unknown_tool(name: &str, slot: &mut Option<PendingRow>) -> RpcError {
    if let Some(row) = slot.as_mut() {
        row.event.status = 404;
        row.event.refused(Reason::UnknownTool);
    }
    RpcError::invalid_params(format!("Unknown tool: {}", AuditText::new(name, cap::TOOL)))
}

/// A tool's outcome as the `tools/call` result, its status and decision on the row.
pub(super) fn tool_result(outcome: tools::Outcome, slot: &mut Option<PendingRow>) -> Value {
    if let (Some(audit), Some(row)) = (&outcome.audit, slot.as_mut()) {
        // The row's status is the tool's own (200, or the 4xx of a call it refused),
        // like an `execute_endpoint` row's is the upstream's.
        row.event.status = audit.status;
        row.event.product = audit.product.as_deref().map(|p| AuditText::new(p, cap::ID));
        if audit.status < 400 {
            row.event.allowed();
        } else {
            row.event.refused(audit.reason);
        }
    }
    let text = serde_json::to_string_pretty(&outcome.value).unwrap_or_default();
    let mut result = json!({ "content": [{ "type": "text", "text": text }], "isError": outcome.is_error });
    if let (Some(obj), Value::Object(_)) = (result.as_object_mut(), &outcome.value) {
        obj.insert("structuredContent".into(), outcome.value);
    }
    result
}
