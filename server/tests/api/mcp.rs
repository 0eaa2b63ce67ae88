//! `/mcp`: the protocol (both revision families), authentication as at `/gw`, discovery
//! filtered by grants, and execution through the gateway's enforcement with audit rows.

use crate::helpers::{agent, TestApp};
use portcullis_app::api::Registration;
use portcullis_domain::model::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A bare MCP client: JSON-RPC over POST with the headers a test chooses.
struct Mcp {
    url: String,
    http: reqwest::Client,
    headers: Vec<(String, String)>,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Mcp {
    fn new(app: &TestApp, credential: (&str, &str)) -> Self {
        Self {
            url: format!("{}/mcp", app.base),
            http: reqwest::Client::new(),
            headers: vec![(credential.0.into(), credential.1.into())],
        }
    }

    fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    async fn send(&self, method: reqwest::Method, body: Option<String>, extra: &[(&str, &str)]) -> Reply {
        let mut req = self
            .http
            .request(method, &self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let text = res.text().await.unwrap();
        Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    async fn post(&self, body: Value, extra: &[(&str, &str)]) -> Reply {
        self.send(reqwest::Method::POST, Some(body.to_string()), extra).await
    }

    /// `initialize` then `notifications/initialized`; returns a client bound to the session.
    async fn session(self, version: &str) -> (Self, Value) {
        let init = self
            .post(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}),
                &[],
            )
            .await;
        assert_eq!(init.status, StatusCode::OK, "{}", init.body);
        let sid = init.headers["mcp-session-id"].to_str().unwrap().to_owned();
        let negotiated = init.body["result"]["protocolVersion"].as_str().unwrap().to_owned();
        let s = self.with("mcp-session-id", &sid).with("mcp-protocol-version", &negotiated);
        let ack = s.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}), &[]).await;
        assert_eq!(ack.status, StatusCode::ACCEPTED);
        (s, init.body)
    }

    async fn call_tool(&self, name: &str, arguments: Value) -> Value {
        let r = self
            .post(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": name, "arguments": arguments}}), &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["result"].clone()
    }
}

pub async fn bearer_token(app: &TestApp, reg: &Registration) -> String {
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&reg.secret.client_id, Some(&reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// `(channel, tool, decision, reason, status)` of request rows, once `expected` are written.
async fn mcp_rows(app: &TestApp, expected: usize) -> Vec<(String, Option<String>, String, String, i64)> {
    let rows = app.wait_for_audit("action = 'request' AND channel = 'mcp'", expected).await;
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    rows.iter()
        .map(|r| {
            (
                text(&r["channel"]),
                r["tool"].as_str().map(str::to_owned),
                text(&r["decision"]),
                text(&r["reason"]),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn without_a_credential_mcp_answers_401_naming_its_resource_metadata() {
    let app = TestApp::spawn().await;
    let res = reqwest::Client::new()
        .post(format!("{}/mcp", app.base))
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", app.base);
    assert!(challenge.starts_with("Bearer ") && challenge.contains(&format!(r#"resource_metadata="{metadata_url}""#)));

    let doc: Value = reqwest::get(&metadata_url).await.unwrap().json().await.unwrap();
    assert_eq!(doc["resource"], format!("{}/mcp", app.base));
    assert_eq!(doc["authorization_servers"], json!([app.base]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));

    // A token in the query string is refused, not used.
    let q = reqwest::Client::new()
        .post(format!("{}/mcp?access_token=abc", app.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(q.json::<Value>().await.unwrap()["code"], "credential_in_query");
    let rows = mcp_rows(&app, 2).await;
    assert_eq!(rows.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(), ["missing_credential", "credential_in_query"]);
}

#[tokio::test]
async fn the_2025_handshake_negotiates_and_sessions_are_enforced() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let bare = || Mcp::new(&app, ("x-api-key", &a.key.secret));

    // The version asked for when we speak it, our latest otherwise.
    let (_, init) = bare().session("2025-06-18").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "portcullis");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    let (s, init) = bare().session("1999-01-01").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");

    let ping = s.post(json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}), &[]).await;
    assert_eq!(ping.body, json!({"jsonrpc": "2.0", "id": "p", "result": {}}));
    let list = s.post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), &[]).await;
    let names: Vec<&str> =
        list.body["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["list_collections", "list_endpoints", "endpoint_details", "execute_endpoint"]);
    let unknown = s.post(json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}), &[]).await;
    assert_eq!(unknown.body["error"]["code"], -32601);
    let bad_params =
        s.post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": 5}}), &[]).await;
    assert_eq!(bad_params.body["error"]["code"], -32602);
    let no_tool =
        s.post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "rm_rf"}}), &[]).await;
    assert_eq!(no_tool.body["error"]["code"], -32602);

    // Protocol faults are JSON-RPC errors, never a 500.
    let parse = s.send(reqwest::Method::POST, Some("{not json".into()), &[]).await;
    assert_eq!((parse.status, parse.body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!(-32700)));
    let invalid = s.post(json!({"jsonrpc": "2.0", "id": 6}), &[]).await;
    assert_eq!(invalid.body["error"]["code"], -32600);
    let batch = s.post(json!([{"jsonrpc": "2.0", "id": 7, "method": "ping"}]), &[]).await;
    assert_eq!(batch.status, StatusCode::BAD_REQUEST, "batches ended with 2025-03-26");

    // Session rules: required, bound to the version negotiated, ended by DELETE.
    let ping = json!({"jsonrpc": "2.0", "id": 8, "method": "ping"});
    assert_eq!(bare().post(ping.clone(), &[]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(bare().post(ping.clone(), &[("mcp-session-id", "made-up")]).await.status, StatusCode::NOT_FOUND);
    let sid = s.headers.iter().find(|(k, _)| k == "mcp-session-id").unwrap().1.clone();
    let unknown_version = bare().with("mcp-session-id", &sid).with("mcp-protocol-version", "2099-01-01");
    assert_eq!(unknown_version.post(ping.clone(), &[]).await.status, StatusCode::BAD_REQUEST);
    let other = agent(&app, &["accounts"]).await;
    let stolen = Mcp::new(&app, ("x-api-key", &other.key.secret)).with("mcp-session-id", &sid);
    assert_eq!(stolen.post(ping.clone(), &[]).await.status, StatusCode::NOT_FOUND, "a session belongs to its profile");
    assert_eq!(s.send(reqwest::Method::GET, None, &[]).await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(s.send(reqwest::Method::DELETE, None, &[]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.post(ping, &[]).await.status, StatusCode::NOT_FOUND);

    // DNS rebinding: a browser page from a foreign origin is refused.
    let foreign =
        bare().post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}), &[("origin", "http://evil.example")]).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let rebound =
        bare().post(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}), &[("host", "evil.example:80")]).await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    let local_page = bare()
        .post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}),
            &[("origin", "http://localhost:6274")],
        )
        .await;
    assert_eq!(local_page.status, StatusCode::OK, "a local tool such as the MCP Inspector may connect");

    // 2025-03-26 still had batches.
    let (old, _) = bare().session("2025-03-26").await;
    let b = old
        .post(
            json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "method": "notifications/x"}]),
            &[],
        )
        .await;
    assert_eq!(b.body, json!([{"jsonrpc": "2.0", "id": 1, "result": {}}]));
}

/// Session ids are sealed, not remembered: they outlive a restart, an end does too (it is
/// in the store), and every session ends 24 hours after `initialize` by the store's clock,
/// however busy it was.
#[tokio::test]
async fn sessions_outlive_a_restart_and_expire_a_day_after_initialize() {
    let mut app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let (kept, _) = Mcp::new(&app, ("x-api-key", &a.key.secret)).session("2025-03-26").await;
    let (ended, _) = Mcp::new(&app, ("x-api-key", &a.key.secret)).session("2025-11-25").await;
    assert_eq!(ended.send(reqwest::Method::DELETE, None, &[]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(ended.send(reqwest::Method::DELETE, None, &[]).await.status, StatusCode::NOT_FOUND);

    app.restart().await;
    let url = format!("{}/mcp", app.base);
    let (kept, ended) = (Mcp { url: url.clone(), ..kept }, Mcp { url, ..ended });
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(kept.post(ping.clone(), &[]).await.status, StatusCode::OK, "a session survives a restart");
    assert_eq!(ended.post(ping.clone(), &[]).await.status, StatusCode::NOT_FOUND, "and an end does too");
    // The negotiated version travels in the id: batches only in a 2025-03-26 session.
    let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]);
    assert_eq!(kept.post(batch, &[]).await.body, json!([{"jsonrpc": "2.0", "id": 1, "result": {}}]));

    app.clock.advance(24 * 60 * 60 * 1000 - 60_000);
    assert_eq!(kept.post(ping.clone(), &[]).await.status, StatusCode::OK, "busy or not, it lasts a day");
    app.clock.advance(60_000);
    assert_eq!(kept.post(ping.clone(), &[]).await.status, StatusCode::NOT_FOUND, "and no longer");
    assert_eq!(kept.send(reqwest::Method::DELETE, None, &[]).await.status, StatusCode::NOT_FOUND);
    let rows = mcp_rows(&app, 12).await;
    assert_eq!(rows.len(), 12, "one row per request: {rows:?}");
    assert_eq!(
        rows.iter().rev().take(2).map(|r| (r.3.as_str(), r.4)).collect::<Vec<_>>(),
        [("unknown_session", 404), ("unknown_session", 404)]
    );
}

fn stateless(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    });
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[tokio::test]
async fn the_2026_stateless_revision_checks_its_envelope() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let m = Mcp::new(&app, ("x-api-key", &a.key.secret)).with("mcp-protocol-version", "2026-07-28");

    let d = m.post(stateless("server/discover", json!({})), &[("mcp-method", "server/discover")]).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert!(d.headers.get("mcp-session-id").is_none(), "no sessions in this revision");
    let r = &d.body["result"];
    assert_eq!(r["resultType"], "complete");
    assert!(r["supportedVersions"].as_array().unwrap().contains(&json!("2026-07-28")));
    assert!(r["supportedVersions"].as_array().unwrap().contains(&json!("2025-11-25")));
    assert_eq!(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "portcullis");
    assert!(r["ttlMs"].is_number() && r["cacheScope"].is_string());

    let l = m.post(stateless("tools/list", json!({})), &[("mcp-method", "tools/list")]).await;
    assert_eq!(l.body["result"]["resultType"], "complete");
    assert_eq!(l.body["result"]["tools"].as_array().unwrap().len(), 4);

    let call = stateless("tools/call", json!({"name": "list_collections", "arguments": {}}));
    let c = m.post(call.clone(), &[("mcp-method", "tools/call"), ("mcp-name", "list_collections")]).await;
    assert_eq!(c.body["result"]["structuredContent"]["collections"][0]["collection"], "accounts", "{}", c.body);
    assert_eq!(c.body["result"]["resultType"], "complete");

    // Headers that disagree with the body: -32020, HTTP 400.
    let wrong_name = m.post(call.clone(), &[("mcp-method", "tools/call"), ("mcp-name", "execute_endpoint")]).await;
    assert_eq!((wrong_name.status, wrong_name.body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!(-32020)));
    let no_method = m.post(call, &[]).await;
    assert_eq!(no_method.body["error"]["code"], -32020);
    // A version we do not speak: -32022 with what we do.
    let mut future = stateless("tools/list", json!({}));
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let f = Mcp::new(&app, ("x-api-key", &a.key.secret))
        .with("mcp-protocol-version", "2099-01-01")
        .post(future, &[("mcp-method", "tools/list")])
        .await;
    assert_eq!((f.status, f.body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!(-32022)), "{}", f.body);
    assert_eq!(f.body["error"]["data"]["requested"], "2099-01-01");
    // No `_meta`: invalid params.
    let bare =
        m.post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), &[("mcp-method", "tools/list")]).await;
    assert_eq!((bare.status, bare.body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!(-32602)));
    let unknown = m.post(stateless("prompts/list", json!({})), &[("mcp-method", "prompts/list")]).await;
    assert_eq!((unknown.status, unknown.body["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!(-32601)));
}

#[tokio::test]
async fn profiles_discover_only_their_grants_and_execute_through_the_gateway() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let banker = agent(&app, &["accounts"]).await;
    let analyst = agent(&app, &["reports"]).await;
    let token = bearer_token(&app, &banker.reg).await;
    let auth = format!("Bearer {token}");
    let (b, _) = Mcp::new(&app, ("authorization", &auth)).session("2025-11-25").await;
    let (r, _) = Mcp::new(&app, ("x-api-key", &analyst.key.secret)).session("2025-11-25").await;

    let collections = |v: &Value| -> Vec<String> {
        v["structuredContent"]["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["collection"].as_str().unwrap().to_owned())
            .collect()
    };
    let bc = b.call_tool("list_collections", json!({})).await;
    assert_eq!(collections(&bc), ["accounts"]);
    assert_eq!(bc["structuredContent"]["collections"][0]["endpoints"], 3, "the write endpoint is not granted");
    assert_eq!(bc["structuredContent"]["collections"][0]["tags"], json!(["internal", "pii"]));
    assert_eq!(collections(&r.call_tool("list_collections", json!({})).await), ["reports"]);

    let eps = b.call_tool("list_endpoints", json!({})).await;
    let eps = eps["structuredContent"]["endpoints"].as_array().unwrap().clone();
    assert_eq!(eps.len(), 3);
    assert!(eps.iter().all(|e| e["scope"] == "read" && e["collection"] == "accounts"));
    let get_account = eps.iter().find(|e| e["path"] == "/accounts/{id}").unwrap()["id"].as_str().unwrap().to_owned();
    let hidden = r.call_tool("list_endpoints", json!({"collection": "accounts"})).await;
    assert_eq!(hidden["isError"], true, "another profile's collection is unknown to it");

    let details = b.call_tool("endpoint_details", json!({"endpoint_id": get_account})).await;
    assert_eq!(details["structuredContent"]["method"], "GET");
    assert_eq!(r.call_tool("endpoint_details", json!({"endpoint_id": get_account})).await["isError"], true);

    // Allowed: through the gateway, to the upstream, without the caller's token.
    let ok =
        b.call_tool("execute_endpoint", json!({"endpoint_id": get_account, "path_params": {"id": "acc-1002"}})).await;
    assert_eq!(ok["isError"], false, "{ok}");
    let out = &ok["structuredContent"];
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"]["data"]["holder"], "Alan Turing");
    assert_eq!(out["body"]["caller_credentials_seen"], false);
    assert_eq!(out["body"]["seen"]["x-portcullis-client-id"], json!(banker.reg.secret.client_id));
    assert!(out["headers"]["ratelimit-remaining"].is_string());
    // Upstream 404: a tool error with the upstream's answer.
    let missing =
        b.call_tool("execute_endpoint", json!({"endpoint_id": get_account, "path_params": {"id": "nope"}})).await;
    assert_eq!((missing["isError"].clone(), missing["structuredContent"]["status"].clone()), (json!(true), json!(404)));
    // Outside the grant: refused by the gateway, as a tool error with the problem body.
    let refused =
        r.call_tool("execute_endpoint", json!({"endpoint_id": get_account, "path_params": {"id": "acc-1001"}})).await;
    assert_eq!(refused["isError"], true);
    assert_eq!(refused["structuredContent"]["status"], 403);
    assert_eq!(refused["structuredContent"]["body"]["code"], "not_granted");

    // One row per message: each session's initialize and notifications/initialized, and
    // the nine tool calls.
    let rows = mcp_rows(&app, 13).await;
    assert_eq!(rows.len(), 13, "one row per message: {rows:?}");
    let handshake = |m: &str| rows.iter().filter(|r| r.1.as_deref() == Some(m) && r.2 == "allowed").count();
    assert_eq!((handshake("initialize"), handshake("notifications/initialized")), (2, 2));
    let executes: Vec<_> = rows.iter().filter(|r| r.1.as_deref() == Some("execute_endpoint")).collect();
    assert_eq!(executes.len(), 3);
    assert_eq!((executes[0].2.as_str(), executes[0].4), ("allowed", 200));
    assert_eq!((executes[1].2.as_str(), executes[1].4), ("allowed", 404));
    assert_eq!((executes[2].2.as_str(), executes[2].3.as_str(), executes[2].4), ("refused", "not_granted", 403));
    assert!(rows.iter().any(|r| r.1.as_deref() == Some("list_collections") && r.2 == "allowed"));
}

#[tokio::test]
async fn revocation_and_rate_limits_apply_to_mcp_as_to_rest() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let (m, _) = Mcp::new(&app, ("x-api-key", &a.key.secret)).session("2025-11-25").await;
    let eps = m.call_tool("list_endpoints", json!({})).await;
    let list =
        eps["structuredContent"]["endpoints"].as_array().unwrap().iter().find(|e| e["path"] == "/accounts").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();

    let admin = app.user_with_role(Role::Admin).await;
    let set = admin
        .call("set_rate_limit", &[("profile_id", &a.reg.secret.profile_id), ("rate_per_minute", "1"), ("burst", "2")])
        .await;
    assert!(set.status < 300, "{set:?}");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = m.call_tool("execute_endpoint", json!({"endpoint_id": list})).await;
        statuses.push(r["structuredContent"]["status"].as_u64().unwrap());
    }
    assert_eq!(statuses, [200, 200, 429]);

    assert!(a.dev.call("revoke_credential", &[("credential_id", &a.key.credential_id)]).await.status < 300);
    let after = m.post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), &[]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.headers["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
}

#[tokio::test]
async fn every_transport_refusal_leaves_its_row() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let m = Mcp::new(&app, ("x-api-key", &a.key.secret));
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    // Content-Type and Accept as a client sets them, alone (the helper sets JSON ones).
    let raw = |content_type: &'static str, accept: &'static str| {
        let (url, key) = (format!("{}/mcp", app.base), a.key.secret.clone());
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .header("x-api-key", key)
                .header("content-type", content_type)
                .header("accept", accept)
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .send()
                .await
                .unwrap();
            Reply { status: res.status(), headers: res.headers().clone(), body: Value::Null }
        }
    };
    let cases: Vec<(&str, Reply)> = vec![
        ("origin_not_allowed", m.post(ping.clone(), &[("origin", "https://evil.example")]).await),
        ("host_not_allowed", m.post(ping.clone(), &[("host", "evil.example")]).await),
        ("unsupported_media_type", raw("text/plain", "application/json").await),
        ("not_acceptable", raw("application/json", "text/html").await),
        (
            "payload_too_large",
            m.send(reqwest::Method::POST, Some(format!("[{}]", " ".repeat(2 * 1024 * 1024))), &[]).await,
        ),
        ("parse_error", m.send(reqwest::Method::POST, Some("{not json".into()), &[]).await),
        ("session_required", m.post(ping.clone(), &[]).await),
        ("unknown_session", m.post(ping.clone(), &[("mcp-session-id", "made-up")]).await),
        ("method_not_allowed", m.send(reqwest::Method::GET, None, &[]).await),
        ("invalid_token", Mcp::new(&app, ("x-api-key", "pck_wrong")).post(ping.clone(), &[]).await),
    ];
    let expected: Vec<u16> = vec![403, 403, 415, 406, 413, 400, 400, 404, 405, 401];
    let got: Vec<u16> = cases.iter().map(|(_, r)| r.status.as_u16()).collect();
    assert_eq!(got, expected);
    let rows = mcp_rows(&app, cases.len()).await;
    assert_eq!(rows.len(), cases.len(), "one row per refused request: {rows:?}");
    for ((reason, reply), row) in cases.iter().zip(&rows) {
        assert_eq!(
            (row.2.as_str(), row.3.as_str(), row.4),
            ("refused", *reason, i64::from(reply.status.as_u16())),
            "{row:?}"
        );
    }
}

/// Every replica keeps each ended session until it would have expired, so ending
/// sessions is paid from the profile's own rate limit: a loop of `initialize` and
/// `DELETE` cannot grow that set faster than the profile may call its APIs.
#[tokio::test]
async fn ending_sessions_is_charged_to_the_profiles_rate_limit() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let admin = app.operator_admin().await;
    app.store.set_rate_limit(&admin, &a.reg.secret.profile_id, 1, 2).await.unwrap();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(Mcp::new(&app, ("x-api-key", &a.key.secret)).session("2025-11-25").await.0);
    }
    let ends: Vec<StatusCode> = {
        let mut v = Vec::new();
        for s in &sessions {
            v.push(s.send(reqwest::Method::DELETE, None, &[]).await.status);
        }
        v
    };
    assert_eq!(ends, [StatusCode::NO_CONTENT, StatusCode::NO_CONTENT, StatusCode::TOO_MANY_REQUESTS]);
    let refused = sessions[2].send(reqwest::Method::DELETE, None, &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(sessions[2].post(ping, &[]).await.status, StatusCode::OK, "a refused end leaves the session open");
    let rows = app
        .wait_for_audit(
            &format!("channel = 'mcp' AND method = 'DELETE' AND profile_id = '{}'", a.reg.secret.profile_id),
            4,
        )
        .await;
    let reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "rate_limited").count(), 2, "{reasons:?}");
}
