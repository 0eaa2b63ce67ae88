use crate::helpers::{TestApp, SECRET};
use portcullis_domain::model::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A script calling the management API with a personal access token.
pub(crate) struct Script {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Script {
    pub(crate) fn new(app: &TestApp, token: &str) -> Self {
        let http = app.trusted_cas.iter().fold(reqwest::Client::builder(), |b, ca| b.add_root_certificate(ca.clone()));
        Self { http: http.build().unwrap(), base: format!("{}/api/v1", app.base), token: token.to_owned() }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
    }
    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, b, _) = self.send(reqwest::Method::GET, path, None).await;
        (s, b)
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, b, _) = self.send(reqwest::Method::POST, path, Some(body)).await;
        (s, b)
    }
    pub(crate) async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, b, _) = self.send(reqwest::Method::PUT, path, Some(body)).await;
        (s, b)
    }
}

/// A token made through the portal session, as a developer would make one.
pub(crate) async fn token_for(app: &TestApp, session: &crate::helpers::Session) -> String {
    let res = session
        .http
        .post(format!("{}/api/v1/tokens", app.base))
        .header("origin", &app.base)
        .json(&json!({ "name": "ci pipeline" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_script_registers_an_agent_with_a_personal_access_token() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let dev = app.developer("ada").await;
    let token = token_for(&app, &dev).await;
    assert!(token.starts_with("pcp_"));
    let api = Script::new(&app, &token);

    let (status, me) = api.get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], dev.email.as_str());

    let (status, created) = api.post("/clients", json!({ "name": "Scripted agent", "kind": "ai_agent" })).await;
    assert_eq!(status, 201, "{created}");
    let client_id = created["client"]["client"]["id"].as_str().unwrap().to_owned();
    let profile_id = created["secret"]["profile_id"].as_str().unwrap().to_owned();
    let secret = created["secret"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pcs_"));

    let (status, detail) = api.get(&format!("/clients/{client_id}")).await;
    assert_eq!(status, 200);
    assert!(!detail.to_string().contains(&secret), "the secret is never shown again");

    let (_, products) = api.get("/products").await;
    let accounts = products.as_array().unwrap().iter().find(|p| p["slug"] == "accounts").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, grant) = api
        .post(&format!("/profiles/{profile_id}/grants"), json!({ "product_id": accounts, "scopes": ["read"] }))
        .await;
    assert_eq!(status, 201, "{grant}");
    assert_eq!(grant["status"], "approved");

    // The same client is the same in the portal.
    let listed: Vec<Value> = dev.call("list_clients", &[]).await.ok();
    assert_eq!(listed[0]["id"], client_id.as_str());
}

#[tokio::test]
async fn the_api_obeys_the_same_ownership_rules_as_the_portal() {
    let app = TestApp::spawn().await;
    let ada = app.developer("ada").await;
    let mallory = app.developer("mallory").await;
    let ada_api = Script::new(&app, &token_for(&app, &ada).await);
    let mallory_api = Script::new(&app, &token_for(&app, &mallory).await);
    let (_, created) = ada_api.post("/clients", json!({ "name": "Ada's", "kind": "service" })).await;
    let client_id = created["client"]["client"]["id"].as_str().unwrap();
    let profile_id = created["secret"]["profile_id"].as_str().unwrap();
    let credential_id = created["secret"]["credential_id"].as_str().unwrap();

    for (path, body) in [
        (format!("/clients/{client_id}/profiles"), Some(json!({ "environment": "production" }))),
        (format!("/profiles/{profile_id}/rotate"), None),
        (format!("/profiles/{profile_id}/api-keys"), None),
        (format!("/credentials/{credential_id}/revoke"), None),
    ] {
        let (status, problem, headers) = mallory_api.send(reqwest::Method::POST, &path, body).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["code"], "not_found");
        assert_eq!(problem["status"], 404);
    }
    let (status, _) = mallory_api.get(&format!("/clients/{client_id}")).await;
    assert_eq!(status, 404);
    let (_, mine) = mallory_api.get("/clients").await;
    assert_eq!(mine, json!([]));
    // Developers cannot change rate limits or approve.
    let (status, problem, _) = ada_api
        .send(
            reqwest::Method::PUT,
            &format!("/profiles/{profile_id}/rate-limit"),
            Some(json!({ "rate_per_minute": 1000, "burst": 50 })),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
}

#[tokio::test]
async fn an_admin_sets_a_profiles_rate_limit() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let admin = app.user_with_role(Role::Admin).await;
    let admin_api = Script::new(&app, &token_for(&app, &admin).await);
    let dev_api = Script::new(&app, &token_for(&app, &dev).await);
    let (_, created) = dev_api.post("/clients", json!({ "name": "Busy", "kind": "application" })).await;
    let profile_id = created["secret"]["profile_id"].as_str().unwrap();
    let client_id = created["client"]["client"]["id"].as_str().unwrap();
    let (status, _, _) = admin_api
        .send(
            reqwest::Method::PUT,
            &format!("/profiles/{profile_id}/rate-limit"),
            Some(json!({ "rate_per_minute": 1200, "burst": 40 })),
        )
        .await;
    assert_eq!(status, 204);
    let (_, detail) = dev_api.get(&format!("/clients/{client_id}")).await;
    assert_eq!(detail["profiles"][0]["rate_per_minute"], 1200);
    assert_eq!(detail["profiles"][0]["burst"], 40);
    let (status, problem, _) = admin_api
        .send(
            reqwest::Method::PUT,
            &format!("/profiles/{profile_id}/rate-limit"),
            Some(json!({ "rate_per_minute": 0, "burst": 40 })),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
}

#[tokio::test]
async fn bad_credentials_and_bad_bodies_get_problem_details() {
    let app = TestApp::spawn().await;
    let anonymous = reqwest::get(format!("{}/api/v1/clients", app.base)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="portcullis""#);

    let forged = Script::new(&app, "pcp_not-a-real-token");
    let (status, problem, headers) = forged.send(reqwest::Method::GET, "/clients", None).await;
    assert_eq!(status, 401);
    assert_eq!(problem["code"], "invalid_token");
    assert!(headers["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_token""#));

    let dev = app.developer("ada").await;
    let api = Script::new(&app, &token_for(&app, &dev).await);
    let (status, problem) = api.post("/clients", json!({ "name": "x", "kind": "robot" })).await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "invalid_body");
    let (status, problem) = api.post("/clients", json!({ "name": "   ", "kind": "ai_agent" })).await;
    assert_eq!(status, 422);
    assert_eq!(problem["detail"], "Give the client a name.");
    let (status, problem) = api.get("/no-such-thing").await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let token = token_for(&app, &dev).await;
    let api = Script::new(&app, &token);
    let (_, tokens) = api.get("/tokens").await;
    let id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(tokens[0]["active"], true);
    assert!(!tokens.to_string().contains(&token));
    let (status, _) = api.post(&format!("/tokens/{id}/revoke"), json!({})).await;
    assert_eq!(status, 204);
    let (status, problem) = api.get("/me").await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
}

/// Using a token is a read: its last use is written at most once a minute, so a script
/// calling many times a second costs the database no write per call, and the tokens
/// page still says when it was last used, to the minute.
#[tokio::test]
async fn a_tokens_last_use_is_kept_to_the_minute_not_written_per_call() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let api = Script::new(&app, &token_for(&app, &dev).await);
    let last_used = || async { api.get("/tokens").await.1[0]["last_used_at"].as_i64() };
    let first = last_used().await.expect("the first use is recorded");
    for _ in 0..20 {
        assert_eq!(api.get("/me").await.0, StatusCode::OK);
    }
    app.clock.advance(59_000);
    assert_eq!(last_used().await, Some(first), "uses within the minute write nothing");
    app.clock.advance(2_000);
    let later = last_used().await.expect("recorded");
    assert!(later >= first + 60_000, "a minute on, the next use is recorded: {first} → {later}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::spawn().await;
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", app.base)).await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/clients",
        "/clients/{client_id}",
        "/profiles/{profile_id}/rotate",
        "/credentials/{credential_id}/revoke",
        "/tokens",
        "/audit",
        "/audit/export",
        "/reviews",
        "/security/dashboard",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["components"]["schemas"].get("Problem").is_some());
}

#[tokio::test]
async fn an_operator_creates_a_token_from_the_command_line() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ops").await;
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cli.args(["admin", "create-token", "--email", &dev.email, "--name", "nightly sync"])
        .args(["--database-url", &app.database_url])
        .env("PORTCULLIS_SECRET", SECRET);
    // Off the runtime: the server under test runs on this thread, and a write it has
    // begun must be able to finish while the command waits for the database.
    let out = tokio::task::spawn_blocking(move || cli.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (status, me) = Script::new(&app, &token).get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], dev.email.as_str());
}

#[tokio::test]
async fn an_admin_approves_through_the_api_for_the_days_chosen() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let dev = app.developer("ada").await;
    let admin = app.user_with_role(Role::Admin).await;
    let admin_api = Script::new(&app, &token_for(&app, &admin).await);
    let dev_api = Script::new(&app, &token_for(&app, &dev).await);
    let (_, created) = dev_api.post("/clients", json!({ "name": "Payer", "kind": "service" })).await;
    let client_id = created["client"]["client"]["id"].as_str().unwrap();
    let (status, prod) =
        dev_api.post(&format!("/clients/{client_id}/profiles"), json!({ "environment": "production" })).await;
    assert_eq!(status, 201, "{prod}");
    let (status, grant) = dev_api
        .post(
            &format!("/profiles/{}/grants", prod["profile_id"].as_str().unwrap()),
            json!({ "product_id": app.product_id("payments").await, "scopes": ["read"], "justification": "refunds" }),
        )
        .await;
    assert!(status.is_success(), "{grant}");
    let decision = format!("/grants/{}/decision", grant["id"].as_str().unwrap());
    let (status, problem) =
        admin_api.post(&decision, json!({ "decision": "approve", "reason": "ok", "days": 400 })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")));
    let before = app.clock.now();
    let (status, approved) =
        admin_api.post(&decision, json!({ "decision": "approve", "reason": "quarter-end only", "days": 7 })).await;
    assert_eq!(status, 200, "{approved}");
    let expires = approved["expires_at"].as_i64().unwrap();
    let week = 7 * portcullis_domain::time::DAY;
    assert!((before + week..before + week + 60_000).contains(&expires), "{approved}");
}

/// What the portal does, a script does through the API, under the same rules: test
/// access and recent requests (owner only), token lifetime, roles and the upstream TLS
/// profiles (admins only).
#[tokio::test]
async fn the_api_reaches_what_the_portal_does_under_the_same_rules() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = crate::helpers::agent(&app, &["accounts"]).await;
    let owner = Script::new(&app, &token_for(&app, &a.dev).await);
    let nosy_session = app.developer("nosy").await;
    let nosy = Script::new(&app, &token_for(&app, &nosy_session).await);
    let admin_session = app.user_with_role(Role::Admin).await;
    let admin = Script::new(&app, &token_for(&app, &admin_session).await);
    let profile = &a.reg.secret.profile_id;
    let client = &a.reg.client_id;

    // Test access: a real, enforced, audited call with the profile's own credential.
    let body = json!({ "method": "GET", "path": "/gw/accounts/accounts" });
    let (status, ok) = owner.post(&format!("/profiles/{profile}/test-access"), body.clone()).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!((ok["status"].as_u64(), ok["outcome"].as_str()), (Some(200), Some("allowed")));
    let (_, refused) = owner
        .post(&format!("/profiles/{profile}/test-access"), json!({ "method": "GET", "path": "/gw/payments/payments" }))
        .await;
    assert_eq!((refused["status"].as_u64(), refused["outcome"].as_str()), (Some(403), Some("not_granted")));
    for bad in
        [json!({ "method": "TRACE", "path": "/gw/accounts/accounts" }), json!({ "method": "GET", "path": "/admin" })]
    {
        let (status, p) = owner.post(&format!("/profiles/{profile}/test-access"), bad).await;
        assert_eq!((status, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request")), "{p}");
    }
    assert_eq!(nosy.post(&format!("/profiles/{profile}/test-access"), body).await.0, 404);

    // Recent requests: both calls, newest first, for the owner only.
    let (status, recent) = owner.get(&format!("/clients/{client}/requests")).await;
    assert_eq!(status, 200, "{recent}");
    let seen: Vec<&str> = recent.as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(seen[..2], [refused["request_id"].as_str().unwrap(), ok["request_id"].as_str().unwrap()]);
    assert_eq!(nosy.get(&format!("/clients/{client}/requests")).await.0, 404);

    // Token lifetime: admins only, within its bounds.
    let put = |who: &Script, path: String, body: Value| {
        let http = who.http.clone();
        let url = format!("{}{path}", who.base);
        let token = who.token.clone();
        async move {
            let res = http.put(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let lifetime = format!("/profiles/{profile}/token-lifetime");
    assert_eq!(put(&owner, lifetime.clone(), json!({ "seconds": 60 })).await.0, 403);
    assert_eq!(put(&admin, lifetime.clone(), json!({ "seconds": 0 })).await.0, 422);
    assert_eq!(put(&admin, lifetime.clone(), json!({ "seconds": 120 })).await.0, 204);
    let (_, issued) = {
        let res = reqwest::Client::new()
            .post(format!("{}/oauth/token", app.base))
            .basic_auth(&a.reg.secret.client_id, Some(&a.reg.secret.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(issued["expires_in"], 120, "{issued}");

    // Roles: admins only; a role that does not exist is refused.
    let (_, me) = owner.get("/me").await;
    let dev_id = me["id"].as_str().unwrap();
    assert_eq!(put(&owner, format!("/users/{dev_id}/role"), json!({ "role": "admin" })).await.0, 403);
    let (status, changed) = put(&admin, format!("/users/{dev_id}/role"), json!({ "role": "security" })).await;
    assert_eq!((status, changed["role"].as_str()), (StatusCode::OK, Some("security")), "{changed}");
    let (status, p) = put(&admin, format!("/users/{dev_id}/role"), json!({ "role": "root" })).await;
    assert_eq!(status, 400, "{p}");

    // The upstream TLS profiles a product may name: for admins.
    let (status, names) = admin.get("/upstream-tls").await;
    assert_eq!(status, 200);
    assert!(names.is_array());
    assert_eq!(nosy.get("/upstream-tls").await.0, 403);
}
