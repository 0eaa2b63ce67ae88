//! The management API's authorization, route by route, as an attacker would try it.
//! Routes come from the API's own OpenAPI document, so a route added later is tried
//! too, with real ids and bodies built from its schemas:
//!
//! - scopes: every write route with a read-only admin token; a token minting a broader
//!   one; a developer's token naming an admin scope;
//! - objects (BOLA): every route that names one of Ada's objects, called by another
//!   developer and by the security team with full tokens.

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

/// A body the operation accepts, from its schema: every required member, of its type.
fn example(doc: &Value, schema: &Value) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return example(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(given) = schema.get("example").or(schema["examples"].get(0)) {
        return given.clone();
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

/// One call of the API: its method, the path template it fills, and a valid body.
struct Operation {
    method: Method,
    template: String,
    path: String,
    body: Option<Value>,
    yaml: bool,
}

impl Operation {
    async fn send(&self, api: &Api) -> Reply {
        let body = match (&self.body, self.yaml) {
            (Some(v), _) => Some(Body::Json(v.clone())),
            (None, true) => Some(Body::Text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n".into())),
            (None, false) => None,
        };
        api.send(self.method.clone(), &self.path, body).await
    }
}

/// Every operation of the API with its ids filled in from `ids` (those naming an id
/// not in `ids` are left out), required query parameters included.
fn operations(doc: &Value, ids: &HashMap<&str, String>) -> Vec<Operation> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let mut path = template.clone();
            for (name, id) in ids {
                path = path.replace(&format!("{{{name}}}"), id);
            }
            if path.contains('{') {
                continue;
            }
            let required: Vec<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| {
                    let value = example(doc, &p["schema"]);
                    let text = value.as_str().map(str::to_owned).unwrap_or(value.to_string());
                    format!("{}={text}", p["name"].as_str().unwrap())
                })
                .collect();
            if !required.is_empty() {
                path = format!("{path}?{}", required.join("&"));
            }
            let content = &op["requestBody"]["content"];
            let body = content.get("application/json").map(|c| example(doc, &c["schema"]));
            let yaml = body.is_none() && content.is_object();
            out.push(Operation { method, template: template.clone(), path, body, yaml });
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

/// Ada's objects, for every id a route names: a client with a production profile, its
/// credential, a pending request, her token; a product; Ada herself.
struct World {
    ada: Api,
    admin_session: Session,
    admin: Api,
    ids: HashMap<&'static str, String>,
    doc: Value,
}

async fn world(app: &TestApp) -> World {
    app.publish_sample_products().await;
    let admin_session = app.user_with_role(Role::Admin).await;
    let dev = app.developer("ada").await;
    let admin = Api::new(app, &admin_session.personal_token(None).await);
    let ada = Api::new(app, &dev.personal_token(None).await);
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
    let me = ada.get("/me").await.body;
    let tokens = ada.get("/tokens").await.body;
    let ids = HashMap::from([
        ("client_id", client_id),
        ("profile_id", profile_id),
        ("credential_id", credential_id),
        ("product_id", product_id),
        ("grant_id", asked.body["id"].as_str().unwrap().to_owned()),
        ("token_id", tokens[0]["id"].as_str().unwrap().to_owned()),
        ("user_id", me["id"].as_str().unwrap().to_owned()),
    ]);
    let doc = admin.get("/openapi.json").await.body;
    World { ada, admin_session, admin, ids, doc }
}

#[tokio::test]
async fn a_read_only_token_changes_nothing_through_any_route() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let read_only: Vec<&str> =
        ["clients:read", "catalog:read", "grants:read", "audit:read", "reviews:read", "users:read", "tokens:read"]
            .into();
    let reader = Api::new(&app, &w.admin_session.personal_token(Some(&read_only)).await);
    let all = operations(&w.doc, &w.ids);
    let writes: Vec<&Operation> = all.iter().filter(|o| o.method != Method::GET).collect();
    assert!(writes.len() >= 20, "the API's write routes: {}", writes.len());

    let before = everything_readable(&w.admin, &w.ids["client_id"]).await;
    for op in &writes {
        let r = op.send(&reader).await;
        let what = format!("{} {}", op.method, op.template);
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert_eq!(r.body["code"], "insufficient_scope", "{what}: {}", r.body);
        assert!(r.challenge.contains(r#"error="insufficient_scope""#), "{what}: {}", r.challenge);
        assert!(r.challenge.contains(":write\""), "{what} names the scope it needs: {}", r.challenge);
    }
    assert_eq!(everything_readable(&w.admin, &w.ids["client_id"]).await, before, "a read-only token changed something");

    // It reads everything its owner may read.
    for op in all.iter().filter(|o| o.method == Method::GET) {
        let r = op.send(&reader).await;
        assert!(r.status.is_success(), "GET {} with a read-only token: {} {}", op.path, r.status, r.body);
    }

    // The same bodies with the full token are not refused for scope: the refusals
    // above were the scopes', not the bodies'.
    for op in writes {
        let r = op.send(&w.admin).await;
        assert_ne!(r.body["code"], "insufficient_scope", "{} {}", op.method, op.template);
        assert!(r.status != 401, "{} {}", op.method, op.template);
    }
}

/// Ids only Ada's own requests may touch (the product and the people are not hers).
const ADAS: [&str; 5] = ["client_id", "profile_id", "credential_id", "grant_id", "token_id"];

#[tokio::test]
async fn nobody_reaches_another_developers_objects_through_any_route() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let mallory_session = app.developer("mallory").await;
    let mallory = Api::new(&app, &mallory_session.personal_token(None).await);
    let security_session = app.user_with_role(Role::Security).await;
    let security = Api::new(&app, &security_session.personal_token(None).await);
    let client_id = w.ids["client_id"].clone();
    let ops: Vec<Operation> = operations(&w.doc, &w.ids)
        .into_iter()
        .filter(|o| ADAS.iter().any(|id| o.template.contains(&format!("{{{id}}}"))))
        .collect();
    assert!(ops.len() >= 15, "routes naming Ada's objects: {}", ops.len());
    let adas_view = || async {
        let mut seen = Map::new();
        for path in [format!("/clients/{client_id}"), "/tokens".into(), format!("/clients/{client_id}/requests")] {
            let r = w.ada.get(&path).await;
            assert_eq!(r.status, 200, "{path}");
            let mut body = r.body;
            if path == "/tokens" {
                for t in body.as_array_mut().unwrap() {
                    t.as_object_mut().unwrap().remove("last_used_at");
                }
            }
            seen.insert(path, body);
        }
        Value::Object(seen)
    };
    let before = adas_view().await;

    // Another developer: nothing, and never a hint that it exists (404, or 403 where the
    // route is for another role whatever the object).
    for op in &ops {
        let r = op.send(&mallory).await;
        let what = format!("mallory {} {}", op.method, op.template);
        assert!(r.status == 404 || r.status == 403, "{what}: {} {}", r.status, r.body);
        assert!(!r.body.to_string().contains(&client_id), "{what} answered with Ada's client: {}", r.body);
    }
    let listed = mallory.get("/clients").await.body.to_string();
    assert!(!listed.contains(&client_id));
    let audit = mallory.get("/audit").await;
    assert_eq!(audit.status, 403, "a developer does not search everyone's audit trail");

    // The security team reads every client, and changes nothing outside the review.
    for op in &ops {
        let r = op.send(&security).await;
        let what = format!("security {} {}", op.method, op.template);
        if op.method == Method::GET {
            let own_only = op.template.starts_with("/tokens");
            assert!(r.status == 200 || own_only && r.status == 404, "{what}: {} {}", r.status, r.body);
        } else if !op.template.starts_with("/reviews/") {
            assert!(r.status == 404 || r.status == 403, "{what}: {} {}", r.status, r.body);
        }
    }
    // (The review's own actions are the security team's to take, with a reason.)
    let mut after = adas_view().await;
    let mut before = before;
    for view in [&mut before, &mut after] {
        // Reviewed and revoked-by-review are the review's effects, looked at elsewhere.
        view.as_object_mut().unwrap().remove(&format!("/clients/{client_id}"));
    }
    assert_eq!(after, before, "Ada's tokens and requests are as she left them");
}

#[tokio::test]
async fn a_narrow_token_reads_only_its_area_and_mints_nothing_broader() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let security = app.user_with_role(Role::Security).await;

    let auditor = Api::new(&app, &security.personal_token(Some(&["audit:read"])).await);
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
    let minter = Api::new(&app, &security.personal_token(Some(&["tokens:write", "clients:read"])).await);
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
        Api::new(&app, &admin.personal_token(None).await).get("/me").await.body["id"].as_str().unwrap().to_owned();
    let ada = Api::new(&app, &dev.personal_token(Some(&["users:write"])).await);
    let r = ada
        .send(
            Method::PUT,
            &format!("/users/{admin_id}/disabled"),
            Some(Body::Json(json!({ "disabled": true, "reason": "takeover" }))),
        )
        .await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", r.body);
}
