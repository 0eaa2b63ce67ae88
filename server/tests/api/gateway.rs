use crate::helpers::{agent, TestApp};
use portcullis_domain::model::Role;
use reqwest::StatusCode;
use serde_json::Value;

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let (status, h) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    (status, h, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn audit_rows(app: &TestApp, expected: usize) -> Vec<(String, String, i64)> {
    let rows = app.wait_for_audit("action = 'request'", expected).await;
    rows.iter().map(|r| (text(&r["decision"]), text(&r["reason"]), r["status"].as_i64().unwrap())).collect()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_agent_calls_its_granted_endpoint_through_the_gateway() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let (status, headers, body) = call(
        &app,
        reqwest::Method::GET,
        "/gw/accounts/accounts/acc-1002",
        &[("x-api-key", &a.key.secret), ("authorization", "Basic eA==")],
    )
    .await;
    // An API key wins over other headers; the upstream answered.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["holder"], "Alan Turing");
    assert_eq!(body["seen"]["x-portcullis-client-id"], a.reg.client_id.as_str());
    assert_eq!(body["seen"]["x-portcullis-profile-id"], a.reg.secret.profile_id.as_str());
    assert_eq!(body["seen"]["x-portcullis-client-type"], "ai_agent");
    assert_eq!(body["caller_credentials_seen"], false, "no caller credential reaches the upstream");
    assert_eq!(body["seen"]["x-request-id"], headers["x-request-id"].to_str().unwrap());
    assert_eq!(headers["ratelimit-limit"], "20");
    assert_eq!(headers["ratelimit-remaining"], "19");

    let rows = audit_rows(&app, 1).await;
    assert_eq!(rows, [("allowed".to_owned(), "allowed".to_owned(), 200)]);
    // The portal now shows when the key was last used.
    let detail: portcullis_domain::model::ClientDetail =
        a.dev.call("get_client", &[("client_id", &a.reg.client_id)]).await.ok();
    let used = detail.profiles[0].credentials.iter().find(|c| c.id == a.key.credential_id).unwrap();
    assert!(used.last_used_at.is_some());
}

#[tokio::test]
async fn every_refusal_has_its_status_reason_and_audit_row() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let key = a.key.secret.as_str();
    // (method, path, headers, expected status, expected reason)
    type Case<'a> = (reqwest::Method, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (reqwest::Method::GET, "/gw/accounts/accounts", vec![], 401, "missing_credential"),
        (reqwest::Method::GET, "/gw/accounts/accounts", vec![("x-api-key", "pck_unknown")], 401, "invalid_token"),
        (
            reqwest::Method::GET,
            "/gw/accounts/accounts",
            vec![("x-api-key", &a.reg.secret.secret)],
            401,
            "invalid_token",
        ),
        (
            reqwest::Method::GET,
            "/gw/accounts/accounts",
            vec![("authorization", "Bearer abc.def.ghi")],
            401,
            "invalid_token",
        ),
        (
            reqwest::Method::GET,
            "/gw/accounts/accounts",
            vec![("x-api-key", key), ("x-client-id", "cl_someone_else")],
            401,
            "identity_mismatch",
        ),
        (reqwest::Method::POST, "/gw/accounts/accounts", vec![("x-api-key", key)], 403, "insufficient_scope"),
        (reqwest::Method::GET, "/gw/payments/payments", vec![("x-api-key", key)], 403, "not_granted"),
        (reqwest::Method::GET, "/gw/nothing-here/x", vec![("x-api-key", key)], 404, "unknown_product"),
        (reqwest::Method::GET, "/gw/accounts/ACCOUNTS", vec![("x-api-key", key)], 404, "unknown_endpoint"),
        (reqwest::Method::GET, "/gw/accounts/accounts/%2e%2e/x", vec![("x-api-key", key)], 404, "unknown_endpoint"),
        (reqwest::Method::GET, "/gw/accounts/accounts//acc-1", vec![("x-api-key", key)], 404, "unknown_endpoint"),
        (
            reqwest::Method::GET,
            "/gw/accounts/accounts/a%2Fb/balance",
            vec![("x-api-key", key)],
            404,
            "unknown_endpoint",
        ),
    ];
    for (method, path, headers, status, reason) in &cases {
        let (got, h, body) = call(&app, method.clone(), path, headers).await;
        assert_eq!(got.as_u16(), *status, "{method} {path}: {body}");
        assert_eq!(body["code"], *reason, "{method} {path}");
        assert_eq!(h["content-type"], "application/problem+json");
        if *status == 401 {
            assert!(h.contains_key("www-authenticate"), "{path}");
        }
    }
    let rows = audit_rows(&app, cases.len()).await;
    assert_eq!(rows.len(), cases.len(), "exactly one row per request");
    for (row, case) in rows.iter().zip(&cases) {
        assert_eq!((row.0.as_str(), row.1.as_str(), row.2), ("refused", case.4, i64::from(case.3)));
    }
}

#[tokio::test]
async fn revoking_a_key_refuses_the_very_next_request() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let ok = call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &[("x-api-key", &a.key.secret)]).await;
    assert_eq!(ok.0, 200);
    assert!(a.dev.call("revoke_credential", &[("credential_id", &a.key.credential_id)]).await.status < 300);
    let (status, headers, body) =
        call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &[("x-api-key", &a.key.secret)]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "invalid_token");
    assert!(headers["www-authenticate"].to_str().unwrap().contains("unknown or revoked"));
}

#[tokio::test]
async fn a_reload_that_raced_a_revocation_never_brings_the_key_back() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let key = [("x-api-key", a.key.secret.as_str())];
    // A reload reads the policy (a backstop tick, another change's publication)...
    let stale = app.store.load_snapshot().await.unwrap();
    assert!(stale.credentials_by_id.contains_key(&a.key.credential_id));
    // ...the key is revoked and that is published, and the next request is refused...
    assert!(a.dev.call("revoke_credential", &[("credential_id", &a.key.credential_id)]).await.status < 300);
    assert_eq!(call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &key).await.0, 401);
    // ...then the slow reload finishes: it must not publish what it read before.
    assert!(
        !app.store.enforcement().snapshot().publish(stale),
        "a snapshot older than the current one is not published"
    );
    for _ in 0..3 {
        assert_eq!(call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &key).await.0, 401);
    }
    // Reloads racing a stream of changes, in earnest: each publishes only forward.
    let reloads = (0..20).map(|_| app.store.reload_policy());
    let changes = async {
        for _ in 0..5 {
            let k: portcullis_domain::model::IssuedSecret =
                a.dev.call("issue_api_key", &[("profile_id", &a.reg.secret.profile_id)]).await.ok();
            assert!(a.dev.call("revoke_credential", &[("credential_id", &k.credential_id)]).await.status < 300);
            let res = call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &[("x-api-key", &k.secret)]).await;
            assert_eq!(res.0, 401, "a revoked key stays revoked while reloads race");
        }
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(reloads), changes);
    assert!(results.iter().all(Result::is_ok));
    let version = app.store.policy_version().await.unwrap();
    assert_eq!(app.store.enforcement().snapshot().current().version, version, "the newest snapshot is in place");
}

#[tokio::test]
async fn the_rate_limit_admits_the_burst_then_answers_429() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let admin = app.user_with_role(Role::Admin).await;
    let set = admin
        .call("set_rate_limit", &[("profile_id", &a.reg.secret.profile_id), ("rate_per_minute", "1"), ("burst", "3")])
        .await;
    assert!(set.status < 300, "{set:?}");
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let (s, h, _) =
            call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &[("x-api-key", &a.key.secret)]).await;
        statuses.push(s.as_u16());
        last = Some(h);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let h = last.unwrap();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["ratelimit-limit"], "3");
    assert_eq!(h["ratelimit-remaining"], "0");
    let rows = audit_rows(&app, 5).await;
    assert_eq!(rows.iter().filter(|r| r.1 == "rate_limited").count(), 2);
}

#[tokio::test]
async fn concurrent_requests_of_every_outcome_leave_exactly_one_row_each() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let key = a.key.secret.clone();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let base = app.base.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let (path, with_key) = match i % 3 {
                0 => ("/gw/accounts/accounts", true),
                1 => ("/gw/payments/payments", true),
                _ => ("/gw/accounts/accounts", false),
            };
            let mut req = reqwest::Client::new().get(format!("{base}{path}"));
            if with_key {
                req = req.header("x-api-key", key);
            }
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let rows = audit_rows(&app, 60).await;
    assert_eq!(rows.len(), 60);
    let count = |reason: &str| rows.iter().filter(|r| r.1 == reason).count();
    // 20 allowed requests fit the sandbox burst of 20.
    assert_eq!((count("allowed"), count("not_granted"), count("missing_credential")), (20, 20, 20), "{statuses:?}");
}

#[tokio::test]
async fn the_owner_sees_the_clients_recent_requests_and_nobody_else_does() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    call(&app, reqwest::Method::GET, "/gw/accounts/accounts", &[("x-api-key", &a.key.secret)]).await;
    call(&app, reqwest::Method::GET, "/gw/payments/payments", &[("x-api-key", &a.key.secret)]).await;
    audit_rows(&app, 2).await;
    let recent: Vec<portcullis_domain::model::RequestView> =
        a.dev.call("recent_requests", &[("client_id", &a.reg.client_id)]).await.ok();
    let seen: Vec<(&str, &str, i64)> = recent.iter().map(|r| (r.path.as_str(), r.reason.as_str(), r.status)).collect();
    assert_eq!(seen, [("/payments", "not_granted", 403), ("/accounts", "allowed", 200)]);
    let other = app.developer("nosy").await;
    assert_eq!(other.call("recent_requests", &[("client_id", &a.reg.client_id)]).await.status, 404);
}

#[tokio::test]
async fn test_access_runs_a_real_audited_call_for_the_owner_only() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let ok: portcullis_domain::model::TestAccessResult = a
        .dev
        .call(
            "test_access",
            &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "/gw/accounts/accounts")],
        )
        .await
        .ok();
    assert_eq!((ok.status, ok.outcome.as_str()), (200, "allowed"));
    assert!(ok.body.contains("acc-1001"));
    let refused: portcullis_domain::model::TestAccessResult = a
        .dev
        .call(
            "test_access",
            &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "/gw/payments/payments")],
        )
        .await
        .ok();
    assert_eq!((refused.status, refused.outcome.as_str()), (403, "not_granted"));
    let rows = audit_rows(&app, 2).await;
    assert_eq!(rows.len(), 2, "test calls are audited like any other");

    let other = app.developer("nosy").await;
    let a2 = other
        .call(
            "test_access",
            &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "/gw/accounts/accounts")],
        )
        .await;
    assert_eq!(a2.status, 404);
    let bad = a
        .dev
        .call(
            "test_access",
            &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "http://evil.example/")],
        )
        .await;
    assert_eq!(bad.status, 422);
}

#[tokio::test]
async fn a_product_wide_limit_holds_across_callers_and_a_global_one_across_products() {
    let app = TestApp::spawn_configured(|a| a.global_rate_limit = 3).await;
    app.publish_sample_products().await;
    let (first, second) = (agent(&app, &["accounts"]).await, agent(&app, &["accounts"]).await);
    let accounts = app.product_id("accounts").await;
    let admin = app.user_with_role(Role::Admin).await;
    // Six a minute, one at a time: the second caller finds the product's bucket empty.
    let set = admin.call("set_product_policy", &[("product_id", &accounts), ("rate_per_minute", "6")]).await;
    assert!(set.status < 300, "{set:?}");
    let developer = first.dev.call("set_product_policy", &[("product_id", &accounts), ("rate_per_minute", "")]).await;
    assert_eq!(developer.error(), "Forbidden");
    let get = |key: String| {
        let app_base = app.base.clone();
        async move {
            let res = reqwest::Client::new()
                .get(format!("{app_base}/gw/accounts/accounts"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(get(first.key.secret.clone()).await.0, 200);
    let (status, body) = get(second.key.secret.clone()).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("product_rate_limited")), "{body}");

    // Lift the product's limit: the gateway-wide one (3 a second) is next.
    let clear = admin.call("set_product_policy", &[("product_id", &accounts), ("rate_per_minute", "")]).await;
    assert!(clear.status < 300, "{clear:?}");
    let mut codes = Vec::new();
    for i in 0..4 {
        let key = if i % 2 == 0 { first.key.secret.clone() } else { second.key.secret.clone() };
        let (status, body) = get(key).await;
        codes.push(if status == 200 { "ok".to_owned() } else { body["code"].as_str().unwrap_or("").to_owned() });
    }
    assert!(codes.contains(&"global_rate_limited".to_owned()), "{codes:?}");
    let rows = audit_rows(&app, 6).await;
    assert!(rows.iter().any(|r| r.1 == "product_rate_limited" && r.2 == 429));
    assert!(rows.iter().any(|r| r.1 == "global_rate_limited" && r.2 == 429));
}

#[tokio::test]
async fn api_keys_in_the_url_only_where_a_product_accepts_them_and_never_forwarded() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let key = a.key.secret.clone();
    let url_with = |q: &str| format!("/gw/accounts/accounts?{q}");
    let (status, _, body) = call(&app, reqwest::Method::GET, &url_with(&format!("api_key={key}")), &[]).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (401, Some("credential_in_query")), "headers only by default");

    let admin = app.user_with_role(Role::Admin).await;
    let accounts = app.product_id("accounts").await;
    let set = admin
        .call("set_product_policy", &[("product_id", &accounts), ("rate_per_minute", ""), ("api_key_in_query", "on")])
        .await;
    assert!(set.status < 300, "{set:?}");
    let (status, _, body) =
        call(&app, reqwest::Method::GET, &url_with(&format!("limit=5&api_key={key}&x=1")), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["query"], "limit=5&x=1", "the key is not forwarded");
    assert_eq!(body["caller_credentials_seen"], false);
    // Tokens in URLs stay refused, and a wrong key is just a wrong key.
    let (status, _, body) = call(&app, reqwest::Method::GET, &url_with("access_token=abc"), &[]).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (401, Some("credential_in_query")));
    let (status, _, body) = call(&app, reqwest::Method::GET, &url_with("api_key=pck_wrong"), &[]).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (401, Some("invalid_token")));

    let rows = app.wait_for_audit("action = 'request'", 4).await;
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert!(paths.iter().all(|p| !p.contains(&key) && !p.contains("api_key")), "{paths:?}");
}
