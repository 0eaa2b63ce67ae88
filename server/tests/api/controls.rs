//! What the README claims, tried: admins disable people and suspend clients (portal, API,
//! CLI) and the gateway, the token endpoint and introspection agree at once; nobody
//! approves, extends or reviews their own access; custom scopes are requested, granted
//! and enforced; and equal writes racing each other answer 409, never 500.

use crate::helpers::{agent, endpoint, publish, Agent, Session, TestApp, PASSWORD, SECRET};
use crate::management::{token_for, Script};
use portcullis_domain::endpoints::NewEndpoint;
use portcullis_domain::model::{ReviewClient, ReviewFlag, Role};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn gw(app: &TestApp, key: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}/gw/accounts/accounts", app.base))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn token(app: &TestApp, a: &Agent) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.secret.client_id, Some(&a.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn introspect(app: &TestApp, a: &Agent, access_token: &str) -> bool {
    crate::helpers::introspect(&app.base, a, access_token).await["active"].as_bool().unwrap()
}

#[tokio::test]
async fn a_suspended_client_is_refused_everywhere_at_once_and_resumed_likewise() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let (_, t) = token(&app, &a).await;
    let access_token = t["access_token"].as_str().unwrap().to_owned();
    let admin = app.user_with_role(Role::Admin).await;

    // A developer cannot suspend anything, even their own client.
    let own = a
        .dev
        .call("set_client_suspended", &[("client_id", &a.reg.client_id), ("suspended", "true"), ("reason", "x")])
        .await;
    assert_eq!(own.status, 403, "{own:?}");
    let no_reason = admin
        .call("set_client_suspended", &[("client_id", &a.reg.client_id), ("suspended", "true"), ("reason", " ")])
        .await;
    assert_eq!(no_reason.status, 422);

    let done = admin
        .call(
            "set_client_suspended",
            &[("client_id", &a.reg.client_id), ("suspended", "true"), ("reason", "Leaked key under investigation")],
        )
        .await;
    assert!(done.status < 300, "{done:?}");
    let (status, body) = gw(&app, &a.key.secret).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("client_suspended")));
    let bearer = reqwest::Client::new()
        .get(format!("{}/gw/accounts/accounts", app.base))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::FORBIDDEN, "a token already issued stops too");
    assert_eq!(token(&app, &a).await.0, StatusCode::UNAUTHORIZED, "and no new token");
    assert!(!introspect_as_other(&app, &access_token).await);
    let (_, page) = a.dev.page(&format!("/clients/{}", a.reg.client_id)).await;
    assert!(page.contains("data-testid=\"suspended\""), "the owner sees why");

    // Resumed through the management API.
    let pat = token_for(&app, &admin).await;
    let (status, _) = Script::new(&app, &pat)
        .put(&format!("/clients/{}/suspended", a.reg.client_id), json!({"suspended": false, "reason": "Cleared"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app, &a.key.secret).await.0, StatusCode::OK);
    assert!(introspect(&app, &a, &access_token).await, "the same token is live again");

    let events = app.wait_for_audit("action IN ('client.suspended', 'client.resumed')", 2).await;
    assert_eq!(events.len(), 2);
}

/// Introspection asked while the client is suspended: its own credentials no longer
/// authenticate, so an outsider's view is what is left — inactive.
async fn introspect_as_other(app: &TestApp, access_token: &str) -> bool {
    let other = agent(app, &[]).await;
    introspect(app, &other, access_token).await
}

#[tokio::test]
async fn a_disabled_owner_stops_their_clients_sessions_and_tokens_and_the_review_says_so() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let owner_pat = token_for(&app, &a.dev).await;
    let admin = app.user_with_role(Role::Admin).await;
    let security = app.user_with_role(Role::Security).await;
    let users: Vec<Value> = admin.call("list_users", &[]).await.ok();
    let owner_id =
        users.iter().find(|u| u["email"] == a.dev.email.as_str()).unwrap()["id"].as_str().unwrap().to_owned();

    let done = admin
        .call("set_user_disabled", &[("user_id", &owner_id), ("disabled", "true"), ("reason", "Left the company")])
        .await;
    assert!(done.status < 300, "{done:?}");
    let (status, body) = gw(&app, &a.key.secret).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("owner_disabled")));
    assert_eq!(token(&app, &a).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = a.dev.page("/clients").await;
    let me = a.dev.call("current_user", &[]).await;
    assert_eq!(me.body, Value::Null, "the session ended (page {status})");
    let refused =
        reqwest::Client::new().get(format!("{}/api/v1/me", app.base)).bearer_auth(&owner_pat).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "their personal access token too");
    let signin = a.dev.call("sign_in", &[("email", &a.dev.email), ("password", PASSWORD)]).await;
    assert_eq!(signin.status, 422, "and they cannot sign in");

    let review: Vec<ReviewClient> = security.call("access_review", &[]).await.ok();
    let theirs = review.iter().find(|c| c.client.id == a.reg.client_id).unwrap();
    assert!(theirs.owner_disabled && theirs.flags.contains(&ReviewFlag::OwnerDisabled), "{:?}", theirs.flags);

    // Guard rails: not oneself, not the last admin, not by a developer.
    let admin_id =
        users.iter().find(|u| u["email"] == admin.email.as_str()).unwrap()["id"].as_str().unwrap().to_owned();
    let self_disable =
        admin.call("set_user_disabled", &[("user_id", &admin_id), ("disabled", "true"), ("reason", "x")]).await;
    assert_eq!(self_disable.status, 403);
    let by_dev = app
        .developer("dev")
        .await
        .call("set_user_disabled", &[("user_id", &owner_id), ("disabled", "false"), ("reason", "x")])
        .await;
    assert_eq!(by_dev.status, 403);

    // Enabled again with the operator's command line; running servers follow within a second.
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cli.args(["admin", "disable-user", "--enable", "--email", &a.dev.email, "--reason", "Came back"])
        .args(["--database-url", &app.database_url])
        .env("PORTCULLIS_SECRET", SECRET)
        .env("PORTCULLIS_DATA_DIR", std::env::temp_dir());
    // Run off the runtime (the server under test shares this thread), not before it.
    let out = tokio::task::spawn_blocking(move || cli.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut status = StatusCode::FORBIDDEN;
    for _ in 0..40 {
        status = gw(&app, &a.key.secret).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK, "the running server applied the command line's change");
    let events = app.wait_for_audit("action IN ('user.disabled', 'user.enabled')", 2).await;
    assert_eq!(events.iter().map(|e| e["channel"].as_str().unwrap()).collect::<Vec<_>>(), ["portal", "cli"]);
}

#[tokio::test]
async fn nobody_approves_extends_or_reviews_access_to_their_own_client() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let admin = app.user_with_role(Role::Admin).await;
    let other_admin = app.user_with_role(Role::Admin).await;
    // The admin registers a client of their own and asks production access for it.
    let reg: portcullis_app::api::Registration =
        admin.call("register_client", &[("name", "Admin's own"), ("kind", "service"), ("description", "")]).await.ok();
    let prod: portcullis_domain::model::IssuedSecret =
        admin.call("add_profile", &[("client_id", &reg.client_id), ("environment", "production")]).await.ok();
    let accounts = app.product_id("accounts").await;
    let grant: portcullis_domain::model::GrantView = admin
        .call(
            "request_access",
            &[
                ("profile_id", &prod.profile_id),
                ("product_id", &accounts),
                ("scopes[]", "read"),
                ("justification", "Reporting"),
            ],
        )
        .await
        .ok();
    let own =
        admin.call("decide_grant", &[("grant_id", &grant.id), ("decision", "approve"), ("reason", "Looks fine")]).await;
    assert_eq!(own.status, 403, "{own:?}");
    let approved = other_admin
        .call("decide_grant", &[("grant_id", &grant.id), ("decision", "approve"), ("reason", "Checked")])
        .await;
    assert!(approved.status < 300, "{approved:?}");

    // A security reviewer does not extend or sign off their own client's access.
    let security = app.user_with_role(Role::Security).await;
    let sec_reg: portcullis_app::api::Registration = security
        .call("register_client", &[("name", "Reviewer's own"), ("kind", "service"), ("description", "")])
        .await
        .ok();
    let sandbox: portcullis_domain::model::GrantView =
        security.request_access(&sec_reg.secret.profile_id, &accounts, &["read"]).await.ok();
    let act = |action: &'static str, target: String| {
        let s: &Session = &security;
        async move {
            s.call("review_action", &[("action", action), ("target", &target), ("reason", "Fine"), ("days", "10")])
                .await
        }
    };
    assert_eq!(act("extend_grant", sandbox.id.clone()).await.status, 403);
    assert_eq!(act("mark_reviewed", sec_reg.client_id.clone()).await.status, 403);
    // Someone else's client, they may.
    assert!(act("mark_reviewed", reg.client_id.clone()).await.status < 300);
}

#[tokio::test]
async fn custom_scopes_from_an_import_are_requested_granted_and_enforced() {
    let app = TestApp::spawn().await;
    let upstream = crate::helpers::TestUpstream::start().await;
    let approve_endpoint = NewEndpoint { scope: "loans:approve".into(), ..endpoint("POST", "/echo") };
    let loans = publish(&app, "loans", &upstream.base, vec![endpoint("GET", "/fast"), approve_endpoint]).await;
    assert_eq!(loans.scopes(), ["read", "write", "loans:approve"]);
    let a = agent(&app, &[]).await;
    let unknown = a.dev.request_access(&a.reg.secret.profile_id, &loans.id, &["loans:delete"]).await;
    assert_eq!(unknown.status, 422, "{unknown:?}");
    let g: portcullis_domain::model::GrantView =
        a.dev.request_access(&a.reg.secret.profile_id, &loans.id, &["read", "loans:approve"]).await.ok();
    assert_eq!(g.scopes, ["loans:approve", "read"]);

    let (status, t) = token(&app, &a).await;
    assert_eq!(status, StatusCode::OK);
    let scopes: Vec<&str> = t["scope"].as_str().unwrap().split(' ').collect();
    assert!(scopes.contains(&"loans:approve"), "{t}");
    let approve = |scope: Option<&'static str>| {
        let (app, a) = (&app, &a);
        async move {
            let mut form = vec![("grant_type", "client_credentials")];
            if let Some(s) = scope {
                form.push(("scope", s));
            }
            let t: Value = reqwest::Client::new()
                .post(format!("{}/oauth/token", app.base))
                .basic_auth(&a.reg.secret.client_id, Some(&a.reg.secret.secret))
                .form(&form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            reqwest::Client::new()
                .post(format!("{}/gw/loans/echo", app.base))
                .bearer_auth(t["access_token"].as_str().unwrap())
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(approve(None).await, StatusCode::OK, "granted and carried by the token");
    assert_eq!(approve(Some("read")).await, StatusCode::FORBIDDEN, "a token narrowed to read may not approve");
}

#[tokio::test]
async fn equal_writes_racing_each_other_answer_409_never_500() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &[]).await;
    let pat = token_for(&app, &a.dev).await;
    let admin = app.user_with_role(Role::Admin).await;
    let admin_pat = token_for(&app, &admin).await;
    let post = |path: String, body: Value, pat: String| {
        let base = app.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1{path}"))
                .bearer_auth(pat)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let count = |statuses: &[u16]| {
        let mut sorted = statuses.to_vec();
        sorted.sort_unstable();
        sorted
    };
    // The same production profile, eight times at once.
    let profiles = futures_util::future::join_all((0..8).map(|_| {
        post(format!("/clients/{}/profiles", a.reg.client_id), json!({"environment": "production"}), pat.clone())
    }))
    .await;
    assert_eq!(count(&profiles), [201, 409, 409, 409, 409, 409, 409, 409], "{profiles:?}");
    // The same grant, eight times at once.
    let accounts = app.product_id("accounts").await;
    let grants = futures_util::future::join_all((0..8).map(|_| {
        post(
            format!("/profiles/{}/grants", a.reg.secret.profile_id),
            json!({"product_id": accounts, "scopes": ["read"]}),
            pat.clone(),
        )
    }))
    .await;
    assert_eq!(count(&grants), [201, 409, 409, 409, 409, 409, 409, 409], "{grants:?}");
    // The same product slug, five times at once.
    let products = futures_util::future::join_all((0..5).map(|i| {
        post(
            "/products".into(),
            json!({"slug": "race", "name": format!("Race {i}"), "sandbox_url": "http://127.0.0.1:9/x", "production_url": "http://127.0.0.1:9/x"}),
            admin_pat.clone(),
        )
    }))
    .await;
    assert_eq!(count(&products), [201, 409, 409, 409, 409], "{products:?}");
    // The same email signing up five times at once.
    let email = format!("twin-{}@example.com", uuid::Uuid::now_v7().simple());
    let signups = futures_util::future::join_all((0..5).map(|_| {
        let s = app.session();
        let email = email.clone();
        async move { s.call("sign_up", &[("email", &email), ("password", PASSWORD)]).await.status }
    }))
    .await;
    assert_eq!(signups.iter().filter(|s| **s < 400).count(), 1, "{signups:?}");
    assert!(signups.iter().all(|s| *s < 400 || *s == 409), "{signups:?}");
}
