//! The HTTP side of both MCP routes: DNS-rebinding checks, authentication (the
//! gateway's for agents, a personal access token for people), the audit row every
//! request reserves first, and the GET, POST and DELETE handlers.

use super::*;

/// Loopback names: a DNS-rebinding page can never have one as its origin or host.
pub(super) fn is_loopback_host(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    matches!(host.to_ascii_lowercase().as_str(), "localhost" | "127.0.0.1" | "::1")
}

/// DNS rebinding protection (Streamable HTTP, "Security Warning"): the `Host` must be
/// ours (public URL or loopback), and a browser's `Origin`, when sent, too. A request
/// without `Origin` does not come from a web page. Returns the refusal, if it is one.
pub(super) fn foreign_request(mcp: &McpServer, headers: &HeaderMap) -> Option<(Reason, Response)> {
    let ours = |host_port: &str| host_port.eq_ignore_ascii_case(&mcp.public_host) || is_loopback_host(host_port);
    let host_ok = crate::headers::host(headers).is_some_and(ours);
    let origin_ok = match crate::headers::origin(headers) {
        Origin::Absent => true,
        Origin::Authority(authority) => ours(authority),
        Origin::Opaque => false,
    };
    if host_ok && origin_ok {
        return None;
    }
    let (what, reason) = if host_ok { ("Origin", Reason::OriginNotAllowed) } else { ("Host", Reason::HostNotAllowed) };
    Some((
        reason,
        rpc_fault(
            StatusCode::FORBIDDEN,
            &Value::Null,
            &RpcError::new(INVALID_REQUEST, format!("{what} not allowed for this MCP endpoint; set --public-url.")),
        ),
    ))
}

/// Reserves the row of an HTTP request to `/mcp`; without one, the request is refused
/// (fail closed with a full audit queue) before anything is read.
pub(super) async fn reserve(
    mcp: &McpServer,
    method: &Method,
    headers: &HeaderMap,
    peer: IpAddr,
    started: Instant,
) -> Result<PendingRow, Response> {
    if let Err(retry_after_secs) = mcp.gateway.sources().admit(peer, mcp.channel()) {
        let request_id = uuid::Uuid::now_v7().to_string();
        return Err(crate::gateway::Refusal::TooManyRefusals { retry_after_secs }.into_response(&request_id));
    }
    let event = audit::event(mcp.channel(), mcp.gateway.store().now(), method, mcp.path(), headers, peer);
    let request_id = event.request_id.clone();
    mcp.gateway.reserve(event, started).await.map_err(|refusal| refusal.into_response(&request_id))
}

/// Finishes `row` as refused for `reason` with the answer `res`; the refusal counts
/// against the caller's address as `crate::sources` decides.
pub(super) async fn refuse(
    mcp: &McpServer,
    peer: IpAddr,
    mut row: PendingRow,
    reason: Reason,
    res: Response,
) -> Response {
    mcp.gateway.sources().refused(peer, reason);
    row.event.refused(reason);
    audit::answer(row, res).await
}

/// `refuse`, answering with the JSON-RPC error `e` under the HTTP `status`.
pub(super) async fn refuse_rpc(
    mcp: &McpServer,
    peer: IpAddr,
    row: PendingRow,
    reason: Reason,
    status: StatusCode,
    e: RpcError,
) -> Response {
    refuse(mcp, peer, row, reason, rpc_fault(status, &Value::Null, &e)).await
}

/// What every POST and DELETE passes first: the DNS-rebinding check, then the
/// gateway's own authentication (or, at `/mcp/manage`, the personal access token's).
/// The refusal comes with its audit reason.
pub(super) async fn admit<'s>(
    mcp: &McpServer,
    snap: &'s Snapshot,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    certificate: Option<ClientCertificate>,
    row: &mut PendingRow,
) -> Result<Principal<'s>, (Reason, Box<Response>)> {
    if let Some((reason, refused)) = foreign_request(mcp, headers) {
        return Err((reason, Box::new(refused)));
    }
    if mcp.surface == Surface::Manage {
        let person = Principal::Person(person(mcp, headers).await?);
        person.stamp(&mut row.event);
        return Ok(person);
    }
    let now = mcp.gateway.store().now();
    let held = Held { dpop: Possession::Proof { method: method.clone(), uri: uri.clone() }, certificate };
    match mcp.gateway.authenticate(snap, headers, &Query::parse(uri.query()), false, &held, now).await {
        Ok(caller) => {
            caller.stamp(&mut row.event);
            Ok(Principal::Agent(caller))
        }
        Err(refusal) => {
            let named = mcp.gateway.named_client(snap, headers, &Query::parse(None), false);
            row.event.attempted_client_id = named.map(|c| AuditText::new(c, cap::ID));
            let reason = refusal.reason();
            Err((reason, Box::new(refusal.into_response_for(&row.event.request_id, Some(&mcp.metadata_url)))))
        }
    }
}

/// The person a Management MCP request's personal access token acts for. A client
/// credential, or anything else, is refused like an unknown token: this route is for
/// people's automation, never an agent's own access.
pub(super) async fn person(mcp: &McpServer, headers: &HeaderMap) -> Result<Actor, (Reason, Box<Response>)> {
    let unauthorized = |reason: Reason, message: &str| {
        let error = if reason == Reason::InvalidToken { r#", error="invalid_token""# } else { "" };
        let challenge = format!(r#"Bearer realm="portcullis"{error}, resource_metadata="{}""#, mcp.metadata_url);
        let mut res = rpc_fault(StatusCode::UNAUTHORIZED, &Value::Null, &RpcError::new(INVALID_REQUEST, message));
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        (reason, Box::new(res))
    };
    let Some(token) = bearer(headers) else {
        return Err(unauthorized(
            Reason::MissingCredential,
            "Send a personal access token: Authorization: Bearer pcp_…",
        ));
    };
    match mcp.gateway.store().authenticate_access_token(token, Channel::McpManage).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => {
            Err(unauthorized(Reason::InvalidToken, "The personal access token is unknown, expired or revoked."))
        }
        Err(e) => {
            tracing::error!(error = %e, "Management MCP: token lookup failed");
            let e = RpcError::new(jsonrpc::INTERNAL_ERROR, "The token could not be checked; retry.");
            Err((Reason::StoreUnavailable, Box::new(rpc_fault(StatusCode::SERVICE_UNAVAILABLE, &Value::Null, &e))))
        }
    }
}

/// No server-to-client stream is offered: every answer comes back on its POST.
pub(super) async fn get_stream(
    State(mcp): State<McpServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let row = match reserve(&mcp, &method, &headers, peer, Instant::now()).await {
        Ok(row) => row,
        Err(refused) => return refused,
    };
    if let Some((reason, refused)) = foreign_request(&mcp, &headers) {
        return refuse(&mcp, peer, row, reason, refused).await;
    }
    let res = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST, DELETE")]).into_response();
    refuse(&mcp, peer, row, Reason::MethodNotAllowed, res).await
}

pub(super) async fn delete(
    State(mcp): State<McpServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    certificate: Option<Extension<ClientCertificate>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut row = match reserve(&mcp, &method, &headers, peer, Instant::now()).await {
        Ok(row) => row,
        Err(refused) => return refused,
    };
    let snap = mcp.gateway.enforcement().snapshot().current();
    let certificate = certificate.map(|Extension(c)| c);
    let caller = match admit(&mcp, &snap, &method, &uri, &headers, certificate, &mut row).await {
        Ok(c) => c,
        Err((reason, refused)) => return refuse(&mcp, peer, row, reason, *refused).await,
    };
    let Some(id) = header_str(&headers, "mcp-session-id") else {
        let e = RpcError::new(INVALID_REQUEST, "Mcp-Session-Id is required.");
        return refuse_rpc(&mcp, peer, row, Reason::SessionRequired, StatusCode::BAD_REQUEST, e).await;
    };
    // Each end is kept by every replica until the session would have expired: a profile
    // pays for ends from its own rate limit, so none can grow that set without bound.
    match &caller {
        Principal::Agent(agent) => {
            if let Err(refusal) = mcp.gateway.charge(agent.profile).await {
                let (reason, answer) = (refusal.reason(), refusal.into_response(&row.event.request_id));
                return refuse(&mcp, peer, row, reason, answer).await;
            }
        }
        Principal::Person(person) => {
            if let Err(wait) = mcp.person_ends.check(&person.id().to_owned()) {
                let e = RpcError::new(INVALID_REQUEST, "Too many sessions ended; retry later.");
                let mut res = rpc_fault(StatusCode::TOO_MANY_REQUESTS, &Value::Null, &e);
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
                return refuse(&mcp, peer, row, Reason::RateLimited, res).await;
            }
        }
    }
    let store = mcp.gateway.store();
    match mcp.sessions.end(store, id, caller.subject(), store.now()).await {
        Ok(()) => {
            row.event.allowed();
            audit::answer(row, StatusCode::NO_CONTENT.into_response()).await
        }
        Err(EndError::Unknown) => refuse(&mcp, peer, row, Reason::UnknownSession, session_not_found()).await,
        Err(EndError::Store(e)) => {
            // Not ended here either: an end only this replica knew would leave the
            // session open on the others. The client may retry.
            tracing::error!(error = %e, "MCP session end not recorded");
            let e = RpcError::new(jsonrpc::INTERNAL_ERROR, "The session could not be ended; retry.");
            refuse_rpc(&mcp, peer, row, Reason::StoreUnavailable, StatusCode::SERVICE_UNAVAILABLE, e).await
        }
    }
}

pub(super) fn session_not_found() -> Response {
    rpc_fault(
        StatusCode::NOT_FOUND,
        &Value::Null,
        &RpcError::new(INVALID_REQUEST, "Session not found; initialize again."),
    )
}

pub(super) fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = header_str(headers, "accept") else { return true };
    accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .any(|t| t == "application/json" || t == "application/*" || t == "*/*")
}

pub(super) async fn post(
    State(mcp): State<McpServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    certificate: Option<Extension<ClientCertificate>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut row = match reserve(&mcp, &method, &headers, peer, Instant::now()).await {
        Ok(row) => row,
        Err(refused) => return refused,
    };
    let snap = mcp.gateway.enforcement().snapshot().current();
    let certificate = certificate.map(|Extension(c)| c);
    let caller = match admit(&mcp, &snap, &method, &uri, &headers, certificate, &mut row).await {
        Ok(c) => c,
        Err((reason, refused)) => return refuse(&mcp, peer, row, reason, *refused).await,
    };
    if !header_str(&headers, "content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
        let e = RpcError::new(INVALID_REQUEST, "Content-Type must be application/json.");
        return refuse_rpc(&mcp, peer, row, Reason::UnsupportedMediaType, StatusCode::UNSUPPORTED_MEDIA_TYPE, e).await;
    }
    if !accepts_json(&headers) {
        let e = RpcError::new(INVALID_REQUEST, "Accept must allow application/json.");
        return refuse_rpc(&mcp, peer, row, Reason::NotAcceptable, StatusCode::NOT_ACCEPTABLE, e).await;
    }
    let (read, bytes_in) = request_body::read(body, request_body::declared_length(&headers), MAX_BODY_BYTES).await;
    row.event.bytes_in = i64::try_from(bytes_in).unwrap_or(i64::MAX);
    let body = match read {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let e = RpcError::new(INVALID_REQUEST, format!("The body is larger than {MAX_BODY_BYTES} bytes."));
            return refuse_rpc(&mcp, peer, row, Reason::PayloadTooLarge, StatusCode::PAYLOAD_TOO_LARGE, e).await;
        }
        Err(BodyError::Broken) => {
            let e = RpcError::new(INVALID_REQUEST, "The body was cut off.");
            return refuse_rpc(&mcp, peer, row, Reason::IncompleteBody, StatusCode::BAD_REQUEST, e).await;
        }
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            let e = RpcError::new(PARSE_ERROR, "Parse error");
            return refuse_rpc(&mcp, peer, row, Reason::ParseError, StatusCode::BAD_REQUEST, e).await;
        }
    };
    let now = mcp.gateway.store().now();
    let ctx = Ctx { mcp: &mcp, snap: &snap, caller, headers: &headers, peer, now };
    let stateless = header_str(&headers, "mcp-protocol-version")
        .is_some_and(|v| v == STATELESS_VERSION || !HANDSHAKE_VERSIONS.contains(&v) && body_is_stateless(&value));
    let mut slot = Some(row);
    let res = if stateless {
        stateless_post(&ctx, value, &mut slot).await
    } else {
        session_post(&ctx, value, &mut slot).await
    };
    // The row is still here unless `execute_endpoint` handed it to the gateway.
    match slot {
        Some(row) => audit::answer(row, res).await,
        None => res,
    }
}
