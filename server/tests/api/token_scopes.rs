//! Personal access tokens with scopes, tried as an attacker holding a narrow token would:
//! every write route of the management API (read from its own OpenAPI document, so a
//! route added later is tried too) with a read-only admin token, real ids and valid
//! bodies; a token trying to mint a broader one; a developer's token naming an admin
//! scope.

use crate::helpers::{Session, TestApp};
use portcullis_domain::model::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Reply {
    status: StatusCode,
    body: Value,
    challenge: String,
}

impl Api {
    fn new(app: &TestApp, token: &str) -> Self {
        Self { http: reqwest::Client::new(), base: format!("{}/api/v1", app.base), token: token.to_owned() }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Body>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Text(t)) => req.header("content-type", "application/yaml").body(t),
            None => req,
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let challenge =
            res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let text = res.text().await.unwrap();
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)), challenge }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(Body::Json(body))).await
    }
}

enum Body {
    Json(Value),
    Text(String),
}

/// A token made by a signed-in person through the API, with these scopes.
async fn token(app: &TestApp, session: &Session, scopes: Option<&[&str]>) -> String {
    let mut body = json!({ "name": "scoped" });
    if let Some(s) = scopes {
        body["scopes"] = json!(s);
    }
    let res = session
        .http
        .post(format!("{}/api/v1/tokens", app.base))
        .header("origin", &app.base)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// A body the operation accepts, from its schema: every required member, of its type.
fn example(doc: &Value, schema: &Value) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return example(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(one) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()).and_then(|o| o.first()) {
        return example(doc, one);
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|k| *k != "null").cloned().unwrap_or(Value::Null),
        k => k.clone(),
    };
    match kind.as_str() {
        Some("object") | None if schema["properties"].is_object() => {
            let mut out = Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                out.insert(name.to_owned(), example(doc, &schema["properties"][name]));
            }
            Value::Object(out)
        }
        Some("string") => json!("x"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => json!({}),
    }
}

/// Every write operation of the API: method, path with real ids, and a valid body.
fn write_operations(doc: &Value, ids: &HashMap<&str, String>) -> Vec<(Method, String, Option<Body>)> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if method == Method::GET {
                continue;
            }
            let mut path = template.clone();
            for (name, id) in ids {
                path = path.replace(&format!("{{{name}}}"), id);
            }
            assert!(!path.contains('{'), "no id for {template}");
            let content = &op["requestBody"]["content"];
            let body = if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
                Some(Body::Json(example(doc, schema)))
            } else if content.is_object() {
                Some(Body::Text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n".into()))
            } else {
                None
            };
            out.push((method, path, body));
        }
    }
    out
}

/// What an admin can read, minus what reading changes (a token's last use).
async fn everything_readable(api: &Api, client_id: &str) -> Value {
    let mut seen = Map::new();
    let one = format!("/clients/{client_id}");
    for path in ["/clients", one.as_str(), "/products", "/grants/pending", "/users", "/reviews", "/tokens"] {
        let r = api.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let mut body = r.body;
        if path == "/tokens" {
            for t in body.as_array_mut().unwrap() {
                t.as_object_mut().unwrap().remove("last_used_at");
            }
        }
        seen.insert(path.to_owned(), body);
    }
    Value::Object(seen)
}

#[tokio::test]
async fn a_read_only_token_changes_nothing_through_any_route() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let admin = app.user_with_role(Role::Admin).await;
    let dev = app.developer("ada").await;
    let full = Api::new(&app, &token(&app, &admin, None).await);
    let ada = Api::new(&app, &token(&app, &dev, None).await);

    // Real objects for every id a route names: a client with a production profile, its
    // credential, a pending request, a product, a token, a person.
    let created = ada.post("/clients", json!({ "name": "Ada's agent", "kind": "ai_agent" })).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let client_id = created.body["client"]["client"]["id"].as_str().unwrap().to_owned();
    let credential_id = created.body["secret"]["credential_id"].as_str().unwrap().to_owned();
    let production = ada.post(&format!("/clients/{client_id}/profiles"), json!({ "environment": "production" })).await;
    assert_eq!(production.status, 201, "{}", production.body);
    let profile_id = production.body["profile_id"].as_str().unwrap().to_owned();
    let product_id = app.product_id("accounts").await;
    let asked = ada
        .post(
            &format!("/profiles/{profile_id}/grants"),
            json!({ "product_id": product_id, "scopes": ["read"], "justification": "month end" }),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    let grant_id = asked.body["id"].as_str().unwrap().to_owned();
    let me = ada.get("/me").await.body;
    let tokens = ada.get("/tokens").await.body;
    let ids: HashMap<&str, String> = HashMap::from([
        ("client_id", client_id.clone()),
        ("profile_id", profile_id),
        ("credential_id", credential_id),
        ("product_id", product_id),
        ("grant_id", grant_id),
        ("token_id", tokens[0]["id"].as_str().unwrap().to_owned()),
        ("user_id", me["id"].as_str().unwrap().to_owned()),
    ]);

    let read_only: Vec<&str> =
        ["clients:read", "catalog:read", "grants:read", "audit:read", "reviews:read", "users:read", "tokens:read"]
            .into();
    let reader = Api::new(&app, &token(&app, &admin, Some(&read_only)).await);
    let doc = full.get("/openapi.json").await.body;
    let writes = write_operations(&doc, &ids);
    assert!(writes.len() >= 20, "the API's write routes: {}", writes.len());

    let before = everything_readable(&full, &client_id).await;
    for (method, path, body) in write_operations(&doc, &ids) {
        let r = reader.send(method.clone(), &path, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.body["code"], "insufficient_scope", "{method} {path}: {}", r.body);
        assert!(r.challenge.contains(r#"error="insufficient_scope""#), "{method} {path}: {}", r.challenge);
        assert!(r.challenge.contains(":write\""), "{method} {path} names the scope it needs: {}", r.challenge);
    }
    assert_eq!(everything_readable(&full, &client_id).await, before, "a read-only token changed something");

    // It reads everything its owner may read.
    for (template, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_none() {
            continue;
        }
        let mut path = template.clone();
        for (name, id) in &ids {
            path = path.replace(&format!("{{{name}}}"), id);
        }
        if path.contains('{') {
            continue; // an audit event's key, which only a search gives
        }
        let required: Vec<String> = item["get"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .map(|p| {
                let value = example(&doc, &p["schema"]);
                format!(
                    "{}={}",
                    p["name"].as_str().unwrap(),
                    value.as_str().map(str::to_owned).unwrap_or(value.to_string())
                )
            })
            .collect();
        if !required.is_empty() {
            path = format!("{path}?{}", required.join("&"));
        }
        let r = reader.get(&path).await;
        assert!(
            r.status.is_success(),
            "GET {path} with a read-only token: {} {} {}",
            r.status,
            r.body,
            item["get"]["parameters"]
        );
    }

    // The same bodies with the full token are not refused for scope: the refusals
    // above were the scopes', not the bodies'.
    for (method, path, body) in writes {
        let r = full.send(method.clone(), &path, body).await;
        assert_ne!(r.body["code"], "insufficient_scope", "{method} {path}");
        assert!(r.status != 401, "{method} {path}");
    }
}

#[tokio::test]
async fn a_narrow_token_reads_only_its_area_and_mints_nothing_broader() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let security = app.user_with_role(Role::Security).await;

    let auditor = Api::new(&app, &token(&app, &security, Some(&["audit:read"])).await);
    assert_eq!(auditor.get("/audit").await.status, 200);
    assert_eq!(auditor.get("/security/dashboard").await.status, 200);
    for (path, scope) in [
        ("/clients", "clients:read"),
        ("/products", "catalog:read"),
        ("/reviews", "reviews:read"),
        ("/tokens", "tokens:read"),
    ] {
        let r = auditor.get(path).await;
        assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{path}");
        assert!(r.challenge.contains(&format!(r#"scope="{scope}""#)), "{path}: {}", r.challenge);
        assert!(r.body["detail"].as_str().unwrap().contains(scope), "{path}: {}", r.body);
    }
    let r = auditor.post("/tokens", json!({ "name": "wider", "scopes": ["audit:read"] })).await;
    assert_eq!(r.body["code"], "insufficient_scope", "minting needs tokens:write: {}", r.body);

    // A token that may mint tokens mints only what it holds itself.
    let minter = Api::new(&app, &token(&app, &security, Some(&["tokens:write", "clients:read"])).await);
    let narrower = minter.post("/tokens", json!({ "name": "n", "scopes": ["clients:read"] })).await;
    assert_eq!(narrower.status, 201, "{}", narrower.body);
    assert_eq!(narrower.body["scopes"], json!(["clients:read"]));
    let same = minter.post("/tokens", json!({ "name": "same" })).await;
    assert_eq!(same.status, 201, "{}", same.body);
    assert_eq!(same.body["scopes"], json!(["clients:read", "tokens:write"]), "omitted: the caller's own");
    for wider in [json!(["clients:write"]), json!(["audit:read"]), json!(["clients:read", "reviews:read"])] {
        let r = minter.post("/tokens", json!({ "name": "wider", "scopes": wider })).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{wider}: {}",
            r.body
        );
    }
    let tokens = Api::new(&app, narrower.body["token"].as_str().unwrap());
    assert_eq!(tokens.get("/clients").await.status, 200);
    assert_eq!(tokens.get("/tokens").await.body["code"], "insufficient_scope");

    // Names that are not scopes are refused, never ignored; an empty set is no token.
    for bad in [json!(["clients:admin"]), json!(["audit:write"]), json!(["everything"])] {
        let r = minter.post("/tokens", json!({ "name": "bad", "scopes": bad })).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["detail"].as_str().unwrap().contains("unknown scope"), "{}", r.body);
    }
    let r = minter.post("/tokens", json!({ "name": "empty", "scopes": [] })).await;
    assert_eq!(r.status, 422, "{}", r.body);
}

#[tokio::test]
async fn scopes_only_take_away_what_the_role_gives() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let admin = app.user_with_role(Role::Admin).await;
    let admin_id =
        Api::new(&app, &token(&app, &admin, None).await).get("/me").await.body["id"].as_str().unwrap().to_owned();
    let ada = Api::new(&app, &token(&app, &dev, Some(&["users:write"])).await);
    let r = ada
        .send(
            Method::PUT,
            &format!("/users/{admin_id}/disabled"),
            Some(Body::Json(json!({ "disabled": true, "reason": "takeover" }))),
        )
        .await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", r.body);
}
