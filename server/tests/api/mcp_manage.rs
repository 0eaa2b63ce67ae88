//! The Management MCP (`/mcp/manage`), tried as a person's automation and as someone
//! trying to misuse it: both protocol styles (the 2025 handshake with sessions, the
//! stateless 2026-07-28), every tool's annotations, the same rules as the portal and
//! the API for another developer's objects (BOLA) and for a token's scopes, the audit
//! trail, and the credentials it must not take.

use crate::helpers::{agent, audit_rows, TestApp};
use crate::mcp::bearer_token;
use portcullis_domain::model::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A person's script speaking to `/mcp/manage` with a personal access token.
pub(crate) struct Manage {
    http: reqwest::Client,
    url: String,
    token: String,
}

const STATELESS: &str = "2026-07-28";

impl Manage {
    pub(crate) fn new(app: &TestApp, token: &str) -> Self {
        Self { http: reqwest::Client::new(), url: format!("{}/mcp/manage", app.base), token: token.to_owned() }
    }

    /// One stateless request: the method and tool name in the headers, the version in `_meta`.
    async fn stateless(&self, method: &str, mut params: Value) -> (StatusCode, Value) {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {}
        });
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", STATELESS)
            .header("mcp-method", method);
        if let Some(name) = params["name"].as_str() {
            req = req.header("mcp-name", name);
        }
        let res =
            req.json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })).send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A tool's result: (isError, structured content).
    pub(crate) async fn tool(&self, name: &str, arguments: Value) -> (bool, Value) {
        let (status, body) = self.stateless("tools/call", json!({ "name": name, "arguments": arguments })).await;
        assert_eq!(status, 200, "{name}: {body}");
        let result = &body["result"];
        (result["isError"].as_bool().unwrap(), result["structuredContent"].clone())
    }

    pub(crate) async fn ok(&self, name: &str, arguments: Value) -> Value {
        let (is_error, value) = self.tool(name, arguments).await;
        assert!(!is_error, "{name}: {value}");
        value
    }
}

#[tokio::test]
async fn a_script_onboards_an_agent_through_the_management_mcp() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let dev = app.developer("ada").await;
    let m = Manage::new(&app, &dev.personal_token(None).await);

    // Discovery and the tool list, with truthful annotations.
    let (status, discover) = m.stateless("server/discover", json!({})).await;
    assert_eq!(status, 200, "{discover}");
    assert_eq!(discover["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["title"], "Portcullis Management MCP");
    let (_, listed) = m.stateless("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().unwrap().clone();
    let hint = |name: &str, key: &str| {
        tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name}"))["annotations"][key].as_bool()
    };
    for read in
        ["whoami", "list_clients", "get_client", "list_products", "search_audit", "client_activity", "access_review"]
    {
        assert_eq!(hint(read, "readOnlyHint"), Some(true), "{read}");
        assert_eq!(hint(read, "destructiveHint"), Some(false), "{read}");
    }
    for destructive in ["revoke_credential", "review_revoke_credential", "review_end_grant"] {
        assert_eq!(
            (hint(destructive, "readOnlyHint"), hint(destructive, "destructiveHint")),
            (Some(false), Some(true))
        );
    }
    assert_eq!(
        (hint("register_client", "readOnlyHint"), hint("register_client", "idempotentHint")),
        (Some(false), Some(false))
    );
    assert!(tools.iter().all(|t| t["inputSchema"]["type"] == "object"));

    let me = m.ok("whoami", json!({})).await;
    assert_eq!(me["email"], dev.email.as_str());
    assert_eq!(me["scopes"].as_array().unwrap().len(), 7);

    // Register an agent: its secret comes back once, and it works at the token endpoint.
    let reg = m.ok("register_client", json!({ "name": "MCP-made agent", "kind": "ai_agent" })).await;
    let client_id = reg["client"]["client"]["id"].as_str().unwrap().to_owned();
    let (cid, secret) = (reg["secret"]["client_id"].as_str().unwrap(), reg["secret"]["secret"].as_str().unwrap());
    let token = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(cid, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let detail = m.ok("get_client", json!({ "client_id": client_id })).await;
    assert!(!detail.to_string().contains(secret), "the secret is never shown again");

    // Ask for a product; mistakes are tool errors the script can correct.
    let products = m.ok("list_products", json!({})).await;
    let accounts =
        products["products"].as_array().unwrap().iter().find(|p| p["slug"] == "accounts").unwrap()["id"].clone();
    let profile_id = reg["secret"]["profile_id"].clone();
    let grant =
        m.ok("request_access", json!({ "profile_id": profile_id, "product_id": accounts, "scopes": ["read"] })).await;
    assert_eq!(grant["status"], "approved", "sandbox requests are granted at once: {grant}");

    // Test the access as the portal's Test access does: a real gateway call as the
    // profile, acting for the person, recorded as its own request row in their name.
    assert_eq!(
        (hint("test_access", "readOnlyHint"), hint("test_access", "openWorldHint")),
        (Some(false), Some(true)),
        "it calls an upstream API"
    );
    let call = json!({ "profile_id": profile_id, "method": "GET", "path": "/gw/accounts/accounts" });
    let tried = m.ok("test_access", call).await;
    assert_eq!((tried["status"].as_u64(), tried["outcome"].as_str()), (Some(200), Some("allowed")), "{tried}");
    let request_id = tried["request_id"].as_str().unwrap();
    let row = app.wait_for_audit(&format!("action = 'request' AND request_id = '{request_id}'"), 1).await;
    assert_eq!((row[0]["channel"].as_str(), &row[0]["actor_user_id"]), (Some("rest"), &me["id"]), "{row:?}");
    let (is_error, outside) =
        m.tool("test_access", json!({ "profile_id": profile_id, "method": "GET", "path": "/admin" })).await;
    assert!(is_error && outside["code"] == "invalid_request", "only gateway paths: {outside}");
    let (is_error, wrong) = m.tool("register_client", json!({ "name": "x", "kind": "robot" })).await;
    assert!(is_error);
    assert_eq!((wrong["status"].as_u64(), wrong["code"].as_str()), (Some(422), Some("invalid_request")), "{wrong}");
    let (is_error, extra) = m.tool("list_clients", json!({ "owner": "someone-else" })).await;
    assert!(is_error && extra["code"] == "invalid_request", "unknown arguments are refused: {extra}");

    // Each change is the person's, from this channel; each request is an audit row.
    app.wait_for_audit("channel = 'mcp-manage' AND tool = 'register_client' AND reason = 'invalid_request'", 1).await;
    let rows =
        app.wait_for_audit("channel = 'mcp-manage' AND tool = 'register_client' AND decision = 'allowed'", 1).await;
    assert!(rows.iter().all(|r| r["actor_user_id"] == me["id"] && r["status"] == 200), "{rows:?}");
    let admin_events = audit_rows(&app.database_url, "action = 'client.created'").await;
    assert_eq!(admin_events.len(), 1);
    assert_eq!(admin_events[0]["channel"], "mcp-manage", "{admin_events:?}");
}

#[tokio::test]
async fn sessions_of_the_2025_handshake_are_bound_to_their_person() {
    let app = TestApp::spawn().await;
    let ada = app.developer("ada").await;
    let ada_token = ada.personal_token(None).await;
    let http = reqwest::Client::new();
    let url = format!("{}/mcp/manage", app.base);
    let post = |token: &str, session: Option<&str>, body: Value| {
        let mut req = http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.json(&body).send()
    };
    let init = post(
        &ada_token,
        None,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "script", "version": "1" } } }),
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let body: Value = init.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["title"], "Portcullis Management MCP");
    let call =
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "whoami", "arguments": {} } });
    let res = post(&ada_token, Some(&session), call.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["result"]["structuredContent"]["email"], ada.email.as_str());

    // Another person's token cannot use Ada's session, nor can an agent's.
    let mallory = app.developer("mallory").await;
    let res = post(&mallory.personal_token(None).await, Some(&session), call.clone()).await.unwrap();
    assert_eq!(res.status(), 404, "another person's session is unknown");

    // Ended, it is gone.
    let end = http.delete(&url).bearer_auth(&ada_token).header("mcp-session-id", &session).send().await.unwrap();
    assert_eq!(end.status(), 204);
    assert_eq!(post(&ada_token, Some(&session), call).await.unwrap().status(), 404);
}

#[tokio::test]
async fn only_a_live_personal_access_token_opens_the_management_mcp() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let agent_token = bearer_token(&app, &a.reg).await;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/mcp/manage", app.base))
        .header("content-type", "application/json")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("resource_metadata=")
            && challenge.contains("/.well-known/oauth-protected-resource/mcp/manage")
    );

    // An agent's access token, an API key, a revoked token: all refused alike.
    let dev = app.developer("ada").await;
    let token = dev.personal_token(None).await;
    for (what, credential) in [("agent token", agent_token.clone()), ("api key", a.key.secret.clone())] {
        let (status, _) = Manage::new(&app, &credential).stateless("tools/list", json!({})).await;
        assert_eq!(status, 401, "{what}");
    }
    let tokens: Value = dev.http.get(format!("{}/api/v1/tokens", app.base)).send().await.unwrap().json().await.unwrap();
    let id = tokens[0]["id"].as_str().unwrap();
    let revoked = dev
        .http
        .post(format!("{}/api/v1/tokens/{id}/revoke", app.base))
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(Manage::new(&app, &token).stateless("tools/list", json!({})).await.0, 401, "revoked: refused at once");

    // And a personal access token does not open the Gateway MCP.
    let other = dev.personal_token(None).await;
    let res = crate::helpers::stateless_tool(
        &app,
        &http,
        ("authorization", &format!("Bearer {other}")),
        "list_collections",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    let refused = "channel = 'mcp-manage' AND decision = 'refused' AND reason";
    app.wait_for_audit(&format!("{refused} = 'invalid_token'"), 1).await;
    app.wait_for_audit(&format!("{refused} = 'missing_credential'"), 1).await;
}

/// Arguments for a tool, from its input schema: Ada's ids where it names one, a valid
/// value of the declared type otherwise.
fn arguments_for(tool: &Value, ids: &std::collections::HashMap<&str, Value>) -> Value {
    let mut args = serde_json::Map::new();
    for name in tool["inputSchema"]["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap();
        let schema = &tool["inputSchema"]["properties"][name];
        let value = match (ids.get(name), name) {
            (Some(id), _) => id.clone(),
            (None, "scopes") => json!(["read"]),
            (None, "document") => json!("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"),
            (None, "path") => json!("/gw/accounts/accounts"),
            // A nullable argument's type is a list (`["array", "null"]`): its first.
            _ => match (&schema["enum"], schema["type"].as_str().or_else(|| schema["type"][0].as_str())) {
                (Value::Array(e), _) => e[0].clone(),
                (_, Some("integer")) => json!(1),
                (_, Some("boolean")) => json!(true),
                (_, Some("array")) => json!([]),
                _ => json!("x"),
            },
        };
        args.insert(name.to_owned(), value);
    }
    Value::Object(args)
}

/// Every tool that names one of Ada's objects, called by another developer and by the
/// security team, as the API's matrix does for routes: the developer is refused (not
/// found, or forbidden where the tool is another role's) and Ada's things are unchanged;
/// the security team reads, and changes nothing outside the review. A read-only token
/// changes nothing either.
#[tokio::test]
async fn the_management_mcp_obeys_the_same_rules_as_the_api() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let ada_session = app.developer("ada").await;
    let ada = Manage::new(&app, &ada_session.personal_token(None).await);
    let reg = ada.ok("register_client", json!({ "name": "Ada's agent", "kind": "ai_agent" })).await;
    let client_id = reg["client"]["client"]["id"].clone();
    let accounts = json!(app.product_id("accounts").await);
    let production = ada.ok("add_profile", json!({ "client_id": client_id, "environment": "production" })).await;
    let grant = ada
        .ok(
            "request_access",
            json!({ "profile_id": production["profile_id"], "product_id": accounts, "scopes": ["read"],
                    "justification": "month-end reconciliation" }),
        )
        .await;
    let me = ada.ok("whoami", json!({})).await;
    let ada_token = ada.ok("list_tokens", json!({})).await["tokens"][0]["id"].clone();
    let ids = std::collections::HashMap::from([
        ("token_id", ada_token),
        ("client_id", client_id.clone()),
        ("profile_id", production["profile_id"].clone()),
        ("credential_id", reg["secret"]["credential_id"].clone()),
        ("grant_id", grant["id"].clone()),
        ("product_id", accounts.clone()),
        ("user_id", me["id"].clone()),
    ]);
    let adas = ["client_id", "profile_id", "credential_id", "grant_id", "token_id"];
    let (_, listed) = ada.stateless("tools/list", json!({})).await;
    let tools: Vec<Value> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| adas.iter().any(|id| t["inputSchema"]["required"].as_array().unwrap().iter().any(|r| r == id)))
        .cloned()
        .collect();
    assert!(tools.len() >= 15, "tools naming Ada's objects: {}", tools.len());
    let before = ada.ok("get_client", json!({ "client_id": client_id })).await;

    let mallory_session = app.developer("mallory").await;
    let mallory = Manage::new(&app, &mallory_session.personal_token(None).await);
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let (is_error, answer) = mallory.tool(name, arguments_for(tool, &ids)).await;
        assert!(is_error, "mallory {name}: {answer}");
        assert!(answer["code"] == "not_found" || answer["code"] == "forbidden", "mallory {name}: {answer}");
        assert!(!answer.to_string().contains(client_id.as_str().unwrap()), "{name}");
    }
    let listed = mallory.ok("list_clients", json!({})).await;
    assert!(!listed.to_string().contains(client_id.as_str().unwrap()));
    assert_eq!(ada.ok("get_client", json!({ "client_id": client_id })).await, before, "nothing of Ada's changed");

    // A read-only token reads and changes nothing, whoever holds it.
    let admin = app.user_with_role(Role::Admin).await;
    let read_only =
        ["clients:read", "catalog:read", "grants:read", "audit:read", "reviews:read", "users:read", "tokens:read"];
    let reader = Manage::new(&app, &admin.personal_token(Some(&read_only)).await);
    assert_eq!(reader.ok("get_client", json!({ "client_id": client_id })).await, before);
    let review = reader.ok("access_review", json!({})).await;
    assert!(review["clients"].to_string().contains(client_id.as_str().unwrap()));
    for tool in tools.iter().filter(|t| t["annotations"]["readOnlyHint"] == false) {
        let name = tool["name"].as_str().unwrap();
        let (is_error, answer) = reader.tool(name, arguments_for(tool, &ids)).await;
        assert!(is_error, "{name}");
        assert_eq!(answer["code"], "insufficient_scope", "{name}: {answer}");
    }
    assert_eq!(ada.ok("get_client", json!({ "client_id": client_id })).await, before);

    // The security team reads every client and changes nothing outside the review.
    let security_session = app.user_with_role(Role::Security).await;
    let security = Manage::new(&app, &security_session.personal_token(None).await);
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let read = tool["annotations"]["readOnlyHint"] == true;
        if !read && name.starts_with("review_") || name == "mark_client_reviewed" {
            continue; // the review's own actions are the security team's to take
        }
        let (is_error, answer) = security.tool(name, arguments_for(tool, &ids)).await;
        if read {
            assert!(!is_error, "security {name}: {answer}");
        } else {
            assert!(is_error && (answer["status"] == 403 || answer["status"] == 404), "security {name}: {answer}");
        }
    }
    assert_eq!(ada.ok("get_client", json!({ "client_id": client_id })).await, before);
}

#[tokio::test]
async fn an_admin_publishes_and_controls_through_the_management_mcp() {
    let app = TestApp::spawn().await;
    let admin_session = app.user_with_role(Role::Admin).await;
    let admin = Manage::new(&app, &admin_session.personal_token(None).await);
    let dev_session = app.developer("ada").await;
    let dev = Manage::new(&app, &dev_session.personal_token(None).await);
    let (_, tools) = admin.stateless("tools/list", json!({})).await;
    assert_eq!(tools["result"]["tools"].as_array().map(Vec::len), Some(42));
    // Every listed tool is implemented: with no arguments each answers or says what is
    // missing, never an internal error.
    for tool in tools["result"]["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let (_, answer) = dev.tool(name, json!({})).await;
        assert_ne!(answer["code"], "internal", "{name}: {answer}");
    }

    // Publish a product, give it endpoints from an OpenAPI document, set its policy.
    let product = admin
        .ok(
            "create_product",
            json!({ "slug": "loans", "name": "Loans", "sandbox_url": "http://127.0.0.1:9/sandbox",
                    "production_url": "http://127.0.0.1:9/prod" }),
        )
        .await;
    let product_id = product["id"].clone();
    let document = "openapi: 3.0.3\ninfo: {title: Loans, version: '1'}\npaths:\n  /loans:\n    get:\n      \
                    operationId: listLoans\n      responses: {'200': {description: ok}}\n";
    let imported = admin.ok("import_openapi", json!({ "product_id": product_id, "document": document })).await;
    assert_eq!(imported["added"], 1, "{imported}");
    let policy = admin
        .ok(
            "set_product_policy",
            json!({ "product_id": product_id, "rate_per_minute": 600, "api_key_in_query": false }),
        )
        .await;
    assert_eq!(policy["rate_per_minute"], 600, "{policy}");
    let (is_error, missing) =
        admin.tool("set_product_policy", json!({ "product_id": product_id, "upstream_tls": "nowhere" })).await;
    assert!(is_error && missing["code"] == "invalid_request", "{missing}");

    // A developer may do none of it, and learns why.
    for (name, args) in [
        (
            "create_product",
            json!({ "slug": "x", "name": "X", "sandbox_url": "http://a", "production_url": "http://b" }),
        ),
        ("import_openapi", json!({ "product_id": product_id, "document": document })),
        ("list_users", json!({})),
    ] {
        let (is_error, answer) = dev.tool(name, args).await;
        assert!(is_error && answer["code"] == "forbidden", "{name}: {answer}");
    }

    // Suspend a developer's client: the gateway's token endpoint refuses it at once.
    let reg = dev.ok("register_client", json!({ "name": "Night batch", "kind": "service" })).await;
    let client_id = reg["client"]["client"]["id"].clone();
    admin
        .ok("set_client_suspended", json!({ "client_id": client_id, "suspended": true, "reason": "incident 42" }))
        .await;
    let token = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(reg["secret"]["client_id"].as_str().unwrap(), reg["secret"]["secret"].as_str())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 401, "a suspended client gets no token");
    let events = audit_rows(&app.database_url, "action = 'client.suspended'").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["channel"], "mcp-manage");

    // Disabling the developer ends their token's access to the Management MCP too.
    let users = admin.ok("list_users", json!({})).await;
    let ada = users["users"].as_array().unwrap().iter().find(|u| u["email"] == dev_session.email.as_str()).unwrap()
        ["id"]
        .clone();
    admin.ok("set_user_disabled", json!({ "user_id": ada, "disabled": true, "reason": "left the company" })).await;
    assert_eq!(dev.stateless("tools/list", json!({})).await.0, 401);
}

#[tokio::test]
async fn a_token_made_over_the_management_mcp_is_never_broader_than_its_maker() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let narrow = Manage::new(&app, &dev.personal_token(Some(&["tokens:write", "clients:read"])).await);
    let (is_error, wider) = narrow.tool("create_token", json!({ "name": "wider", "scopes": ["clients:write"] })).await;
    assert!(is_error && wider["code"] == "forbidden", "{wider}");
    let made = narrow.ok("create_token", json!({ "name": "reader", "scopes": ["clients:read"] })).await;
    assert_eq!(made["scopes"], json!(["clients:read"]));
    let reader = Manage::new(&app, made["token"].as_str().unwrap());
    reader.ok("list_clients", json!({})).await;
    let (is_error, refused) = reader.tool("list_tokens", json!({})).await;
    assert!(is_error && refused["code"] == "insufficient_scope", "{refused}");
    // Revoked over MCP, refused on its next request.
    narrow.ok("revoke_token", json!({ "token_id": made["id"] })).await;
    assert_eq!(reader.stateless("tools/list", json!({})).await.0, 401);
    let listed = narrow.ok("list_tokens", json!({})).await;
    assert!(!listed.to_string().contains(made["token"].as_str().unwrap()), "tokens are never listed");
}

/// The store failing is our trouble, not the caller's. A Management MCP request whose
/// token cannot be checked is answered 503 `store_unavailable`, however often, and the
/// caller's address is never turned away for it; refusals for what the caller did (no
/// token) still count against the address, with the same small budget.
#[tokio::test]
async fn a_store_that_cannot_check_tokens_answers_503_and_never_blames_the_caller() {
    let app = TestApp::spawn_configured(|a| a.source_refusal_limit = 4).await;
    let dev = app.developer("ada").await;
    let m = Manage::new(&app, &dev.personal_token(None).await);
    assert_eq!(m.stateless("tools/list", json!({})).await.0, 200);

    // The token table out of reach, as a broken database would leave it.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    sqlx::query("ALTER TABLE access_tokens RENAME TO access_tokens_away").execute(&db).await.unwrap();
    for i in 0..12 {
        let (status, body) = m.stateless("tools/list", json!({})).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "attempt {i}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("could not be checked"), "{body}");
    }
    app.wait_for_audit("channel = 'mcp-manage' AND reason = 'store_unavailable'", 12).await;
    sqlx::query("ALTER TABLE access_tokens_away RENAME TO access_tokens").execute(&db).await.unwrap();
    assert_eq!(m.stateless("tools/list", json!({})).await.0, 200, "back at once, nobody turned away");

    // The control: requests without a token are the caller's doing, and the same budget
    // turns the address away.
    let bare = Manage::new(&app, "");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let res = bare.http.post(&bare.url).header("content-type", "application/json").body("{}").send().await.unwrap();
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&401) && statuses.contains(&429), "{statuses:?}");
}
