//! The gateway authorizes exactly what the upstream runs: only allowed headers travel,
//! the gateway alone says where a request came from, no path form means one thing to the
//! gateway and another upstream, an MCP session cannot act as another profile, and what
//! an upstream answers cannot script the portal's origin.

use crate::helpers::{agent, agent_for, audit_rows, endpoint, publish, stateless_result, Agent, TestApp, TestUpstream};
use crate::mcp::bearer_token;
use portcullis_domain::catalog::ProductPolicy;
use portcullis_domain::endpoints::NewEndpoint;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/fast"),
    ("GET", "/headers"),
    ("GET", "/html"),
    ("GET", "/redirect"),
    ("GET", "/big"),
    ("GET", "/items/{id}"),
];

async fn bank(app: &TestApp) -> (TestUpstream, Agent) {
    let upstream = TestUpstream::start().await;
    let agent = agent_for(app, "bank", &upstream.base, ENDPOINTS).await;
    (upstream, agent)
}

async fn get(app: &TestApp, key: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}{path}", app.base)).header("x-api-key", key);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn only_allowed_and_declared_headers_reach_the_upstream_and_the_gateway_says_where_from() {
    let app = TestApp::spawn().await;
    let upstream = TestUpstream::start().await;
    // An endpoint that declares a header of its own (an OpenAPI header parameter).
    let declaring = NewEndpoint {
        parameters: vec![json!({ "name": "X-Tenant", "in": "header", "required": true })],
        ..endpoint("GET", "/headers")
    };
    let product = publish(&app, "tenant", &upstream.base, vec![declaring]).await;
    let a = agent(&app, &[]).await;
    let g = a.dev.request_access(&a.reg.secret.profile_id, &product.id, &["read"]).await;
    assert_eq!(g.status, 200, "{g:?}");

    let sent = [
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-original-url", "/admin/delete-everything"),
        ("x-rewrite-url", "/admin"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "gopher"),
        ("forwarded", "for=6.6.6.6;host=evil.example"),
        ("x-real-ip", "6.6.6.6"),
        ("cookie", "portcullis_session=abc"),
        ("x-undeclared", "dropped"),
        ("x-tenant", "acme"),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("if-none-match", "\"v1\""),
        ("range", "bytes=0-10"),
        ("accept-language", "fr"),
        ("user-agent", "edge-test/1"),
    ];
    let res = get(&app, &a.key.secret, "/gw/tenant/headers", &sent).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.unwrap();
    for dropped in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-real-ip",
        "cookie",
        "x-undeclared",
        "x-api-key",
    ] {
        assert!(seen.get(dropped).is_none(), "{dropped} reached the upstream: {seen}");
    }
    for (kept, value) in [
        ("x-tenant", "acme"),
        ("if-none-match", "\"v1\""),
        ("range", "bytes=0-10"),
        ("accept-language", "fr"),
        ("user-agent", "edge-test/1"),
    ] {
        assert_eq!(seen[kept], value, "{kept}: {seen}");
    }
    // Where the request came from is the gateway's to say, not the caller's.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], app.base.trim_start_matches("http://"));
    assert!(seen["forwarded"].as_str().unwrap().starts_with("for=127.0.0.1;proto=http;host="), "{seen}");
}

/// W3C Trace Context: the caller's trace continues upstream with the gateway as the
/// parent; a request without one (or with a forged or malformed one) starts a trace of
/// its own; either way the row records the trace id the upstream was given.
#[tokio::test]
async fn the_trace_continues_upstream_and_its_id_is_in_the_row() {
    let app = TestApp::spawn().await;
    let (_upstream, a) = bank(&app).await;
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: [Case; 4] = [
        (&[("traceparent", caller), ("tracestate", "vendor=abc")], Some("0af7651916cd43dd8448eb211c80319c")),
        (&[], None),
        (&[("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01"), ("tracestate", "x=1")], None),
        (&[("traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")], None),
    ];
    let mut started = Vec::new();
    for (headers, continued) in cases {
        let res = get(&app, &a.key.secret, "/gw/bank/headers", headers).await;
        assert_eq!(res.status(), StatusCode::OK);
        let seen: Value = res.json().await.unwrap();
        let upstream = seen["traceparent"].as_str().expect("the upstream is always given a trace");
        let parts: Vec<&str> = upstream.split('-').collect();
        assert_eq!(parts.len(), 4, "{upstream}");
        assert_eq!(parts[0], "00");
        assert!(parts[1].len() == 32 && parts[1].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(parts[1].bytes().any(|b| b != b'0') && parts[2].bytes().any(|b| b != b'0'));
        match continued {
            Some(trace) => {
                assert_eq!(parts[1], trace, "the caller's trace continues");
                assert_ne!(parts[2], "b7ad6b7169203331", "with the gateway as the parent");
                assert_eq!(parts[3], "01", "and the caller's flags");
                assert_eq!(seen["tracestate"], "vendor=abc");
            }
            None => {
                assert!(seen.get("tracestate").is_none(), "a state without a valid parent is dropped: {seen}");
                started.push(parts[1].to_owned());
            }
        }
        // The row records the trace id the upstream was given.
        app.wait_for_audit(&format!("action = 'request' AND trace_id = '{}'", parts[1]), 1).await;
    }
    started.sort();
    started.dedup();
    assert_eq!(started.len(), 3, "each request without a valid trace starts its own");
}

#[tokio::test]
async fn only_a_trusted_proxy_names_the_client_for_the_upstream_and_the_audit() {
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "203.0.113.9")] {
        let app = TestApp::spawn_configured(|a| {
            if trusted {
                a.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            }
        })
        .await;
        let (_upstream, a) = bank(&app).await;
        let res =
            get(&app, &a.key.secret, "/gw/bank/headers", &[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]).await;
        let seen: Value = res.json().await.unwrap();
        assert_eq!(seen["x-forwarded-for"], expected, "trusted: {trusted}");
        let row = app.wait_for_audit("action = 'request'", 1).await.remove(0);
        let ip: String = {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
            sqlx::query_scalar("SELECT client_ip FROM audit_events WHERE request_id = $1")
                .bind(row["request_id"].as_str().unwrap())
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        assert_eq!(ip, expected, "the audit row names the same client (trusted: {trusted})");
    }
}

#[tokio::test]
async fn path_parameters_and_double_encoding_never_reach_an_upstream() {
    let app = TestApp::spawn().await;
    let (upstream, a) = bank(&app).await;
    let tricks = [
        "/gw/bank/fast;jsessionid=1",
        "/gw/bank/fast%3Bx=1",
        "/gw/bank/fast%3bx=1",
        "/gw/bank/..;/fast",
        "/gw/bank/.;x=1/fast",
        "/gw/bank/items/a;b",
        "/gw/bank/items/%252e%252e",
        "/gw/bank/items/%25",
    ];
    for path in tricks {
        let res = get(&app, &a.key.secret, path, &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unknown_endpoint", "{path}");
    }
    // And through MCP: a path value cannot smuggle one in either.
    let key = ("x-api-key", a.key.secret.as_str());
    let listed = stateless_result(&app, key, "list_endpoints", json!({})).await;
    let item =
        listed["endpoints"].as_array().unwrap().iter().find(|e| e["path"] == "/items/{id}").unwrap()["id"].clone();
    for id in ["a;b", "..;", "%2e%2e", "%3B"] {
        let args = json!({"endpoint_id": item, "path_params": {"id": id}});
        let out = stateless_result(&app, key, "execute_endpoint", args).await;
        assert_eq!(
            (out["status"].clone(), out["body"]["code"].clone()),
            (json!(404), json!("unknown_endpoint")),
            "{id}: {out}"
        );
    }
    assert_eq!(upstream.hits(), 0, "nothing reached the upstream");
    let rows = app.wait_for_audit("action = 'request' AND reason = 'unknown_endpoint'", tricks.len() + 4).await;
    assert_eq!(rows.len(), tricks.len() + 4, "each refusal is audited");
}

#[tokio::test]
async fn an_mcp_session_cannot_act_as_another_profile_through_tool_arguments() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let mine = agent(&app, &["accounts"]).await;
    let theirs = agent(&app, &["accounts"]).await;
    // The product accepts API keys in the URL, for REST clients that cannot set headers.
    let accounts = app.product_id("accounts").await;
    let policy = ProductPolicy { api_key_in_query: true, ..ProductPolicy::default() };
    app.store.set_product_policy(&app.operator_admin().await, &accounts, policy, &Default::default()).await.unwrap();
    let rest = reqwest::get(format!("{}/gw/accounts/accounts?api_key={}", app.base, theirs.key.secret)).await.unwrap();
    assert_eq!(rest.status(), StatusCode::OK, "over REST, their key in the URL is theirs to use");

    // My MCP session, with my token, names their key in the tool's query.
    let token = bearer_token(&app, &mine.reg).await;
    let auth = format!("Bearer {token}");
    let mine_cred = ("authorization", auth.as_str());
    let listed = stateless_result(&app, mine_cred, "list_endpoints", json!({})).await;
    let list = listed["endpoints"].as_array().unwrap().iter().find(|e| e["path"] == "/accounts").unwrap()["id"].clone();
    for query in [json!({"api_key": theirs.key.secret}), json!({"API_KEY": theirs.key.secret})] {
        let out =
            stateless_result(&app, mine_cred, "execute_endpoint", json!({"endpoint_id": list, "query": query})).await;
        assert_eq!(
            (out["status"].clone(), out["body"]["code"].clone()),
            (json!(401), json!("credential_in_query")),
            "{out}"
        );
    }
    // Over REST, an encoded spelling of a credential parameter is the same parameter: a
    // product that takes no keys in the URL refuses it.
    let payments = app.product_id("payments").await;
    assert!(!app
        .store
        .list_products(&app.operator_admin().await)
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == payments && p.api_key_in_query));
    let spelled =
        reqwest::get(format!("{}/gw/payments/payments?api%5Fkey={}", app.base, theirs.key.secret)).await.unwrap();
    assert_eq!(spelled.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(spelled.json::<Value>().await.unwrap()["code"], "credential_in_query");
    let theirs_used =
        audit_rows(&app.database_url, &format!("action = 'request' AND client_id = '{}'", theirs.reg.secret.client_id))
            .await;
    assert_eq!(theirs_used.len(), 1, "their key was used only by their own REST call: {theirs_used:?}");
}

#[tokio::test]
async fn what_an_upstream_answers_cannot_script_the_portal_and_pages_carry_a_strict_policy() {
    let app = TestApp::spawn().await;
    let (_upstream, a) = bank(&app).await;
    let res = get(&app, &a.key.secret, "/gw/bank/html", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["content-security-policy"], "sandbox; default-src 'none'", "the upstream's own policy is replaced");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("set-cookie").is_none(), "no cookie on the portal's origin");

    // A portal page: scripts only from here or with this response's nonce, no framing.
    let page = reqwest::get(format!("{}/", app.base)).await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let nonce = policy.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("object-src 'none'"), "{policy}");
    let script_src = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
    assert!(!script_src.contains("unsafe-inline") && !script_src.contains('*'), "{script_src}");
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "the hydration script carries the nonce");
    let again = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert!(!again.headers()["content-security-policy"].to_str().unwrap().contains(&nonce), "a nonce per response");
    // Everything else runs nothing; no HSTS over plain http.
    let api = reqwest::get(format!("{}/api/v1/me", app.base)).await.unwrap();
    assert_eq!(api.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    assert!(api.headers().get("strict-transport-security").is_none());

    let behind_https = TestApp::spawn_configured(|a| a.public_url = Some("https://portcullis.example".into())).await;
    let res = reqwest::get(format!("{}/healthz", behind_https.base)).await.unwrap();
    assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
}

#[tokio::test]
async fn test_access_follows_no_redirect_and_reads_a_bounded_body() {
    let app = TestApp::spawn().await;
    let (upstream, a) = bank(&app).await;
    let a = &a;
    let run = |path: &'static str| async move {
        a.dev.call("test_access", &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", path)]).await
    };
    let redirected: portcullis_domain::model::TestAccessResult = run("/gw/bank/redirect").await.ok();
    assert_eq!(redirected.status, 302, "the redirect is shown, not followed");
    assert_eq!(upstream.hits(), 1);

    let big: portcullis_domain::model::TestAccessResult = run("/gw/bank/big").await.ok();
    assert_eq!(big.status, 200);
    assert!(big.body.len() <= 4000);
    // The portal stopped reading: the gateway's row says the caller went away early.
    let row = app.wait_for_audit(&format!("request_id = '{}'", big.request_id), 1).await.remove(0);
    assert_eq!((row["status"].clone(), row["upstream_status"].clone()), (json!(499), json!(200)), "{row:?}");
    assert!(row["bytes_out"].as_i64().unwrap() < 1024 * 1024, "{row:?}");
}

#[tokio::test]
async fn the_sample_bank_is_reachable_only_through_the_gateway() {
    let mut app = TestApp::spawn_demo().await;
    let direct = reqwest::get(format!("{}/sample/accounts/accounts", app.base)).await.unwrap();
    assert_eq!(direct.status(), StatusCode::NOT_FOUND, "not on the portal's listener");
    let upstream_of = |products: Vec<portcullis_domain::model::ProductView>| {
        products.into_iter().find(|p| p.slug == "accounts").unwrap().sandbox_url
    };
    let first = upstream_of(app.store.list_products(&app.operator_admin().await).await.unwrap());
    assert!(first.starts_with("http://127.0.0.1:") && !first.starts_with(&app.base), "{first}");
    assert_eq!(reqwest::get(format!("{first}/accounts")).await.unwrap().status(), StatusCode::OK);

    // A restart moves the bank to a new loopback port; the demo's products follow it.
    app.restart().await;
    let second = upstream_of(app.store.list_products(&app.operator_admin().await).await.unwrap());
    assert_ne!(first, second);
    assert_eq!(reqwest::get(format!("{second}/accounts")).await.unwrap().status(), StatusCode::OK);
}
