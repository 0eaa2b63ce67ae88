//! Ephemeral per-task tokens (RFC 9396 `authorization_details` of type
//! `portcullis_task`) against the real server: a token that serves one task calls only
//! its endpoints, at most its number of times, for its lifetime, on `/gw` and `/mcp`
//! alike; every malformed or overreaching request is refused with its reason and its
//! row; the calls are counted exactly under a race, on one server and across two real
//! processes sharing Redis; and the audit trail groups a task's requests by its id.

use crate::helpers::{agent_for, poll_audit, stateless_result, Agent, Server, TestApp, TestUpstream};
use crate::management::Script;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A server, an upstream counting its hits, and an agent granted `bank`'s `GET /fast`
/// and `GET /headers`; the endpoints' ids, in that order.
async fn setup(app: TestApp) -> (TestApp, TestUpstream, Agent, [String; 2]) {
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast"), ("GET", "/headers")]).await;
    let snap = app.store.enforcement().snapshot().current();
    let id = |path: &str| snap.products["bank"].endpoints.iter().find(|e| e.path_template == path).unwrap().id.clone();
    let ids = [id("/fast"), id("/headers")];
    drop(snap);
    (app, upstream, a, ids)
}

fn task(task_id: &str, endpoints: &[&str], extra: Value) -> String {
    let mut detail = json!({ "type": "portcullis_task", "task_id": task_id, "endpoints": endpoints });
    if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    json!([detail]).to_string()
}

async fn task_token(base: &str, a: &Agent, details: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "client_credentials"), ("authorization_details", details)];
    form.extend_from_slice(extra);
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn gw(base: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new().get(format!("{base}/gw/bank{path}")).bearer_auth(token).send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn a_task_token_calls_only_its_endpoints_at_most_its_number_of_times_on_gw_and_mcp() {
    let (app, upstream, a, [fast, headers]) = setup(TestApp::spawn().await).await;
    let meta = crate::helpers::get_json(&format!("{}/.well-known/oauth-authorization-server", app.base)).await;
    assert_eq!(meta["authorization_details_types_supported"], json!(["portcullis_task"]));

    let details = task("triage-42", &[&fast], json!({ "max_uses": 2, "expires_in": 30 }));
    let (status, issued) = task_token(&app.base, &a, &details, &[]).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["expires_in"], 30);
    assert_eq!(issued["scope"], "read", "only the scopes its endpoints need");
    assert_eq!(
        issued["authorization_details"],
        json!([{ "type": "portcullis_task", "task_id": "triage-42",
        "endpoints": [fast], "max_uses": 2, "expires_in": 30 }])
    );
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 30);
    assert_eq!(claims["authorization_details"], issued["authorization_details"], "RFC 9396 §9.1");
    let introspected = crate::helpers::introspect(&app.base, &a, &token).await;
    assert_eq!(introspected["authorization_details"], issued["authorization_details"], "RFC 9396 §9.2");

    // Outside the task: refused, and no call spent.
    let (status, body) = gw(&app.base, "/headers", &token).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("endpoint_not_in_task")), "{body}");
    assert_eq!(gw(&app.base, "/fast", &token).await.0, 200);
    assert_eq!(gw(&app.base, "/fast", &token).await.0, 200);
    let (status, body) = gw(&app.base, "/fast", &token).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("task_uses_exhausted")), "{body}");
    assert_eq!(upstream.hits(), 2);

    // On /mcp the agent discovers only the task's endpoints, and its calls count the same.
    let (_, issued) = task_token(&app.base, &a, &task("triage-43", &[&headers], json!({ "max_uses": 1 })), &[]).await;
    let mcp_token = format!("Bearer {}", issued["access_token"].as_str().unwrap());
    let listed = stateless_result(&app, ("authorization", &mcp_token), "list_endpoints", json!({})).await;
    let ids: Vec<&str> = listed["endpoints"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [headers.as_str()], "{listed}");
    let executed =
        stateless_result(&app, ("authorization", &mcp_token), "execute_endpoint", json!({ "endpoint_id": headers }))
            .await;
    assert_eq!(executed["status"], 200, "{executed}");
    let again =
        stateless_result(&app, ("authorization", &mcp_token), "execute_endpoint", json!({ "endpoint_id": headers }))
            .await;
    assert_eq!(again["status"], 401, "{again}");
    let outside =
        stateless_result(&app, ("authorization", &mcp_token), "execute_endpoint", json!({ "endpoint_id": fast })).await;
    assert_ne!(outside["status"], 200, "{outside}");
    assert_eq!(upstream.hits(), 3);

    // A token without a task is untouched by all this.
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let plain: Value = res.json().await.unwrap();
    assert!(plain.get("authorization_details").is_none());
    let plain = plain["access_token"].as_str().unwrap();
    assert!(claims_of(plain).get("authorization_details").is_none());
    for _ in 0..3 {
        assert_eq!(gw(&app.base, "/headers", plain).await.0, 200);
    }

    // The audit trail follows each task from its token to its last call.
    let rows = poll_audit(&app.database_url, "task_id = 'triage-42'", 5).await;
    let seen: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["channel"].as_str().unwrap(), r["reason"].as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("oauth", "allowed"),
            ("rest", "endpoint_not_in_task"),
            ("rest", "allowed"),
            ("rest", "allowed"),
            ("rest", "task_uses_exhausted")
        ]
    );
    let security = app.user_with_role(portcullis_domain::model::Role::Security).await.personal_token(None).await;
    let (status, page) = Script::new(&app, &security).get("/audit?task=triage-43").await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert!(events.len() >= 4, "the token request, the listing and the three calls: {page}");
    assert!(events.iter().all(|e| e["task_id"] == "triage-43"), "{page}");

    // The client's activity page lists its tasks.
    let (_, activity) = Script::new(&app, &security).get(&format!("/clients/{}/activity", a.reg.client_id)).await;
    let tasks: Vec<(&str, i64)> = activity["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(tasks, [("triage-42", 5), ("triage-43", 5)], "token request and calls of each: {activity}");
}

#[tokio::test]
async fn a_task_token_ends_when_its_seconds_are_up() {
    let (app, _upstream, a, [fast, _]) = setup(TestApp::spawn().await).await;
    // JWT times are whole seconds: a one-second token asked for late in a second lives
    // only until that second ends. Asked for just after a second starts, it has all of it.
    let into_second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - into_second) + 20)).await;
    let (status, issued) = task_token(&app.base, &a, &task("blink", &[&fast], json!({ "expires_in": 1 })), &[]).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap();
    assert_eq!(gw(&app.base, "/fast", token).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = gw(&app.base, "/fast", token).await;
    assert_eq!(status, 401, "no 30-second leeway for a task token: {body}");
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
}

#[tokio::test]
async fn task_requests_that_overreach_or_are_malformed_are_refused_with_their_reason() {
    let (app, _upstream, a, [fast, headers]) =
        setup(TestApp::spawn_configured(|args| args.token_rate_limit = 60_000).await).await;
    // A product the profile has no grant for.
    let other = TestUpstream::start().await;
    let stranger = agent_for(&app, "vault", &other.base, &[("GET", "/secret")]).await;
    let snap = app.store.enforcement().snapshot().current();
    let vault = snap.products["vault"].endpoints[0].id.clone();
    drop(snap);
    drop(stranger);
    let fast = fast.as_str();
    let one = json!({ "type": "portcullis_task", "task_id": "t", "endpoints": [fast] });
    // (authorization_details, the scope asked for, what the refusal says)
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        ("not json".into(), None, "JSON array"),
        (json!({ "type": "portcullis_task" }).to_string(), None, "JSON array"),
        (json!([]).to_string(), None, "exactly one"),
        (json!([one, one]).to_string(), None, "exactly one"),
        (json!([{ "type": "payment_initiation", "task_id": "t", "endpoints": [fast] }]).to_string(), None, "only"),
        (task("t", &[fast], json!({ "locations": ["https://evil.example"] })), None, "unknown field"),
        (task("", &[fast], json!({})), None, "task_id"),
        (task("has space", &[fast], json!({})), None, "task_id"),
        (task("<script>", &[fast], json!({})), None, "task_id"),
        (task(&"x".repeat(65), &[fast], json!({})), None, "task_id"),
        (task("t", &[], json!({})), None, "1 to 32 endpoints"),
        (task("t", &["ep_nope"], json!({})), None, "no endpoint ep_nope"),
        (task("t", &[&vault], json!({})), None, "no current grant"),
        (task("t", &[fast], json!({ "max_uses": 0 })), None, "max_uses"),
        (task("t", &[fast], json!({ "max_uses": 10_001 })), None, "max_uses"),
        (task("t", &[fast], json!({ "max_uses": -1 })), None, "max_uses"),
        (task("t", &[fast], json!({ "expires_in": 0 })), None, "expires_in"),
        (task("t", &[fast], json!({ "expires_in": 3601 })), None, "expires_in"),
        (task("t", &[fast, &headers], json!({})), Some("write"), "needs the `read` scope"),
        ("x".repeat(9000), None, "over 8 KB"),
    ];
    let n = cases.len();
    for (details, scope, says) in cases {
        let extra: Vec<(&str, &str)> = scope.map(|s| ("scope", s)).into_iter().collect();
        let (status, body) = task_token(&app.base, &a, &details, &extra).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_authorization_details")),
            "{details}: {body}"
        );
        assert!(body["error_description"].as_str().unwrap().contains(says), "{details}: {body}");
    }
    let rows = poll_audit(&app.database_url, "reason = 'invalid_authorization_details'", n).await;
    assert_eq!(rows.len(), n, "each refusal has its row");
    assert!(rows.iter().all(|r| r["client_id"].is_null() && r["task_id"].is_null()), "no token, no task");
}

/// Forty calls at once with a token good for five: exactly five reach the upstream, on
/// one server and across two real processes sharing Redis.
#[tokio::test]
async fn a_task_tokens_calls_are_counted_exactly_under_a_race_and_across_replicas() {
    let (mut app, upstream, a, [fast, _]) = setup(TestApp::spawn().await).await;
    let race = |bases: Vec<String>, token: String| async move {
        let calls = (0..40).map(|i| {
            let (base, token) = (bases[i % bases.len()].clone(), token.clone());
            async move { gw(&base, "/fast", &token).await }
        });
        let answers = futures_util::future::join_all(calls).await;
        let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        let spent = answers.iter().filter(|(_, b)| b["code"] == "task_uses_exhausted").count();
        (ok, spent)
    };
    let (_, issued) = task_token(&app.base, &a, &task("race", &[&fast], json!({ "max_uses": 5 })), &[]).await;
    let token = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(race(vec![app.base.clone()], token).await, (5, 35), "one server");
    assert_eq!(upstream.hits(), 5);

    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped the two-replica half: TEST_REDIS_URL is not set");
        return;
    };
    app.shut_down().await;
    let public = "https://api.portcullis.test";
    for (flags, shared) in [
        (vec!["--public-url", public, "--redis-url", redis.as_str(), "--token-rate-limit", "60000"], true),
        (vec!["--public-url", public, "--token-rate-limit", "60000"], false),
    ] {
        let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
        let (_, issued) = task_token(&first.base, &a, &task("race", &[&fast], json!({ "max_uses": 5 })), &[]).await;
        let token = issued["access_token"].as_str().unwrap().to_owned();
        let (ok, spent) = race(vec![first.base.clone(), second.base.clone()], token).await;
        if shared {
            assert_eq!((ok, spent), (5, 35), "two replicas sharing Redis");
        } else {
            assert_eq!((ok, spent), (10, 30), "without Redis each replica counts its own: the test can tell");
        }
        first.kill();
        second.kill();
    }
}

/// A Redis that accepts connections and never answers: a task token's calls are still
/// served and still counted (each replica counting its own once Redis cannot say), and
/// no call waits much more than the one-use budget of a second. Needs no Redis.
#[tokio::test]
async fn with_a_redis_that_never_answers_a_task_tokens_calls_are_still_counted() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (mut app, upstream, a, [fast, _]) = setup(TestApp::spawn().await).await;
    app.shut_down().await;
    let redis = format!("redis://{silent_addr}");
    let server = Server::start(&app, &["--public-url", "https://api.portcullis.test", "--redis-url", &redis]).await;
    let (status, issued) = task_token(&server.base, &a, &task("outage", &[&fast], json!({ "max_uses": 3 })), &[]).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap();
    let mut answers = Vec::new();
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..6 {
        let started = std::time::Instant::now();
        answers.push(gw(&server.base, "/fast", token).await.0.as_u16());
        slowest = slowest.max(started.elapsed());
    }
    assert_eq!(answers, [200, 200, 200, 401, 401, 401]);
    assert_eq!(upstream.hits(), 3);
    assert!(slowest < std::time::Duration::from_millis(1800), "slowest call {slowest:?}");
    eprintln!("silent Redis: slowest of 6 task calls {slowest:?}");
    server.kill();
}
