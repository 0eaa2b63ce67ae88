//! The audit trail tried as an attacker and an unlucky operator would: callers that hang
//! up, a full queue in fail-closed mode, hostile strings on every channel, a row the
//! database refuses, a database that goes away, and a stop with rows still unwritten.
//! Each test asserts the promise: every request leaves exactly one row, and an upstream
//! never runs a request without one.

use crate::helpers::{agent_for, audit_rows, block_audit_writer, stateless_tool, Agent, Cable, TestApp, TestUpstream};
use portcullis_domain::audit_event::REDUCED_PATH;
use portcullis_domain::audit_text::TRUNCATED;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const ENDPOINTS: &[(&str, &str)] = &[("GET", "/slow"), ("GET", "/fast"), ("POST", "/echo"), ("GET", "/stream")];

async fn bank(app: &TestApp) -> (TestUpstream, Agent) {
    let upstream = TestUpstream::start().await;
    let agent = agent_for(app, "bank", &upstream.base, ENDPOINTS).await;
    (upstream, agent)
}

fn impatient(ms: u64) -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_millis(ms)).build().unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

const REST: &str = "action = 'request' AND channel = 'rest'";
const MCP: &str = "action = 'request' AND channel = 'mcp'";

#[tokio::test]
async fn a_caller_that_hangs_up_leaves_one_row_and_the_upstream_call_completes() {
    let app = TestApp::spawn().await;
    let (upstream, agent) = bank(&app).await;
    let gave_up =
        impatient(150).get(format!("{}/gw/bank/slow", app.base)).header("x-api-key", &agent.key.secret).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the caller gave up first");
    wait_until("the upstream saw the call", || upstream.hits() == 1).await;

    let rows = app.wait_for_audit(REST, 1).await;
    // Nothing else arrives later: one request, one row.
    tokio::time::sleep(Duration::from_millis(TestUpstream::SLOW_MS)).await;
    let rows_after = audit_rows(&app.database_url, REST).await;
    assert_eq!(rows_after.len(), 1, "{rows_after:?}");
    let row = &rows[0];
    assert_eq!(row["status"], 499, "{row:?}");
    assert_eq!(row["upstream_status"], 200, "the upstream's answer is known: {row:?}");
    assert_eq!((row["decision"].as_str(), row["reason"].as_str()), (Some("allowed"), Some("client_closed_request")));
    assert_eq!(row["path"], "/slow");
}

#[tokio::test]
async fn a_caller_that_hangs_up_mid_body_leaves_a_499_row_with_the_bytes_it_got() {
    let app = TestApp::spawn().await;
    let (_upstream, agent) = bank(&app).await;
    let mut res = reqwest::Client::new()
        .get(format!("{}/gw/bank/stream", app.base))
        .header("x-api-key", &agent.key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let first = res.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(res);
    let row = app.wait_for_audit(REST, 1).await.remove(0);
    assert_eq!((row["status"].clone(), row["upstream_status"].clone()), (json!(499), json!(200)), "{row:?}");
    let sent = row["bytes_out"].as_i64().unwrap();
    assert!(sent > 0 && sent < 20 * 1024, "counted what went out before the hang-up: {sent}");

    // A caller that reads to the end is recorded whole, its bytes counted.
    let whole = reqwest::Client::new()
        .get(format!("{}/gw/bank/stream", app.base))
        .header("x-api-key", &agent.key.secret)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let rows = app.wait_for_audit(REST, 2).await;
    assert_eq!((rows[1]["status"].clone(), rows[1]["reason"].clone()), (json!(200), json!("allowed")));
    assert_eq!(rows[1]["bytes_out"], whole.len());
}

#[tokio::test]
async fn bytes_in_and_out_are_counted_not_taken_from_headers() {
    let app = TestApp::spawn().await;
    let (_upstream, agent) = bank(&app).await;
    // A chunked body declares no length: only counting can know it.
    let chunks = futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1000])));
    let res = reqwest::Client::new()
        .post(format!("{}/gw/bank/echo", app.base))
        .header("x-api-key", &agent.key.secret)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.bytes().await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["read"], 10_000);
    let row = app.wait_for_audit(REST, 1).await.remove(0);
    assert_eq!((row["bytes_in"].clone(), row["bytes_out"].clone()), (json!(10_000), json!(body.len())), "{row:?}");
}

#[tokio::test]
async fn an_agent_that_hangs_up_during_execute_endpoint_leaves_one_row() {
    let app = TestApp::spawn().await;
    let (upstream, agent) = bank(&app).await;
    let http = reqwest::Client::new();
    let listed =
        stateless_tool(&app, &http, ("x-api-key", &agent.key.secret), "list_endpoints", json!({})).await.unwrap();
    let listed: Value = listed.json().await.unwrap();
    let slow = listed["result"]["structuredContent"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/slow")
        .unwrap()["id"]
        .clone();
    let gave_up = stateless_tool(
        &app,
        &impatient(150),
        ("x-api-key", &agent.key.secret),
        "execute_endpoint",
        json!({"endpoint_id": slow}),
    )
    .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    wait_until("the upstream saw the call", || upstream.hits() == 1).await;
    let where_execute = format!("{MCP} AND tool = 'execute_endpoint'");
    let row = app.wait_for_audit(&where_execute, 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(TestUpstream::SLOW_MS)).await;
    assert_eq!(audit_rows(&app.database_url, MCP).await.len(), 2, "list_endpoints and the one execute_endpoint");
    assert_eq!((row["status"].clone(), row["upstream_status"].clone()), (json!(499), json!(200)), "{row:?}");
    assert_eq!((row["decision"].clone(), row["reason"].clone()), (json!("allowed"), json!("client_closed_request")));
    assert_eq!((row["method"].clone(), row["path"].clone()), (json!("GET"), json!("/slow")));
}

#[tokio::test]
async fn fail_closed_reserves_a_row_before_forwarding_so_executions_equal_rows() {
    let app = TestApp::spawn_configured(|a| {
        a.audit_queue = 3;
        a.audit_when_full = portcullis::config::AuditWhenFull::FailClosed;
    })
    .await;
    let (upstream, agent) = bank(&app).await;
    let release = block_audit_writer(&app.database_url).await;
    let calls = (0..30).map(|_| {
        let url = format!("{}/gw/bank/fast", app.base);
        let key = agent.key.secret.clone();
        async move { reqwest::Client::new().get(url).header("x-api-key", key).send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let refused = statuses.iter().filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    let served = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(refused + served, 30, "{statuses:?}");
    assert!(refused > 0 && served > 0, "{statuses:?}");
    release.send(()).unwrap();

    let rows = app.wait_for_audit(REST, served).await;
    assert_eq!(upstream.hits(), served, "every 503 was refused before the upstream");
    assert_eq!(rows.len(), served, "every executed request has its row");
    assert!(rows.iter().all(|r| r["status"] == 200));
    // And the trail says how many it turned away.
    for _ in 0..100 {
        if overflow_counts(&app.database_url).await.0 as usize >= refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(overflow_counts(&app.database_url).await, (refused as u64, 0));
}

/// True when no stored text of the row holds a NUL or a raw control character.
fn storable(row: &serde_json::Map<String, Value>) -> bool {
    row.values().filter_map(Value::as_str).all(|s| !s.chars().any(char::is_control))
}

#[tokio::test]
async fn hostile_strings_on_every_channel_are_stored_escaped_and_capped() {
    let app = TestApp::spawn().await;
    let (_upstream, agent) = bank(&app).await;
    let http = reqwest::Client::new();
    let key = &agent.key.secret;

    // /gw: an oversized path, and a user agent that is not UTF-8.
    let mut ua = b"agent/1 ".to_vec();
    ua.extend(std::iter::repeat_n(0xFFu8, 3000));
    let long_path = format!("/gw/bank/{}", "a".repeat(10_000));
    let res = http
        .get(format!("{}{long_path}", app.base))
        .header("x-api-key", key)
        .header("user-agent", reqwest::header::HeaderValue::from_bytes(&ua).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // /mcp, stateless: a tool name with a NUL, far over any sane length.
    let evil = format!("evil\u{0}\u{202E}{}", "x".repeat(5000));
    let res = stateless_tool(&app, &http, ("x-api-key", key), &evil, json!({})).await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!(-32602)), "unknown tool");

    // /mcp, session: the same in a 2025-11-25 session, and a method name with a NUL.
    let post = |json: Value, session: Option<String>| {
        let mut req = http
            .post(format!("{}/mcp", app.base))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .json(&json);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
        }
        req.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let res = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": evil, "arguments": {}}}),
        Some(session.clone()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(json!({"jsonrpc": "2.0", "id": 3, "method": "no\u{0}such/method"}), Some(session)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // /oauth: a client id with a NUL, far over any sane length.
    let res = http
        .post(format!("{}/oauth/token", app.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &format!("cl_\u{0}{}", "z".repeat(5000))),
            ("client_secret", "pcs_wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Every one of them is stored, escaped and capped; the writer was never stalled.
    let rows = app.wait_for_audit("action = 'request'", 6).await;
    assert!(rows.iter().all(storable), "{rows:?}");
    let gw = &rows.iter().find(|r| r["channel"] == "rest").unwrap();
    let path = gw["path"].as_str().unwrap();
    assert!(path.len() <= 2048 && path.ends_with(TRUNCATED), "{}", path.len());
    let agent_text = gw["user_agent"].as_str().unwrap();
    assert!(agent_text.len() <= 512 && agent_text.starts_with("agent/1 \u{FFFD}") && agent_text.ends_with(TRUNCATED));
    let tools: Vec<&str> = rows.iter().filter_map(|r| r["tool"].as_str()).filter(|t| t.starts_with("evil")).collect();
    assert_eq!(tools.len(), 2, "stateless and session: {rows:?}");
    for t in tools {
        assert!(t.starts_with("evil\\u{0}\\u{202e}xxx") && t.len() <= 128 && t.ends_with(TRUNCATED), "{t}");
    }
    assert!(rows.iter().any(|r| r["tool"] == "no\\u{0}such/method" && r["reason"] == "method_not_found"), "{rows:?}");
    let oauth = rows.iter().find(|r| r["channel"] == "oauth").unwrap();
    let attempted = oauth["attempted_client_id"].as_str().unwrap();
    assert!(attempted.starts_with("cl_\\u{0}zzz") && attempted.len() <= 128, "{attempted}");
    assert_eq!(oauth["client_id"], Value::Null, "a name the caller gave is not the client it proved to be");

    // The writer carries on.
    let ok = http.get(format!("{}/gw/bank/fast", app.base)).header("x-api-key", key).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    app.wait_for_audit(&format!("request_id = '{id}'"), 1).await;
}

/// Makes the database refuse (for its content) any audit row whose user agent is
/// `poison-row`, as a constraint or an encoding the writer did not foresee would.
async fn refuse_poison_rows(database_url: &str) {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    if database_url.starts_with("postgres") {
        pool.execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN
               IF NEW.user_agent = 'poison-row' THEN RAISE EXCEPTION 'poisoned row' USING ERRCODE = '22000'; END IF;
               RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .await
        .unwrap();
        pool.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .await
        .unwrap();
    } else {
        pool.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit_events WHEN NEW.user_agent = 'poison-row'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
        )
        .await
        .unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn a_row_the_database_refuses_is_split_out_and_written_reduced_and_its_batch_is_kept() {
    let app = TestApp::spawn().await;
    let (_upstream, agent) = bank(&app).await;
    refuse_poison_rows(&app.database_url).await;
    // Held back, so that the poison row shares one batch with good ones.
    let release = block_audit_writer(&app.database_url).await;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for ua in ["good-1", "good-2", "poison-row", "good-3", "good-4", "good-5"] {
        let res = http
            .get(format!("{}/gw/bank/fast", app.base))
            .header("x-api-key", &agent.key.secret)
            .header("user-agent", ua)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        ids.push((ua, res.headers()["x-request-id"].to_str().unwrap().to_owned()));
    }
    release.send(()).unwrap();
    let rows = app.wait_for_audit(REST, 6).await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    for (ua, id) in &ids {
        let row = rows.iter().find(|r| r["request_id"] == id.as_str()).unwrap();
        if *ua == "poison-row" {
            assert_eq!((row["path"].as_str(), row["user_agent"].clone()), (Some(REDUCED_PATH), Value::Null), "{row:?}");
            assert_eq!((row["status"].clone(), row["decision"].clone()), (json!(200), json!("allowed")));
            assert_eq!(row["client_id"], json!(agent.reg.secret.client_id), "who and what outcome are kept");
        } else {
            assert_eq!((row["path"].as_str(), row["user_agent"].as_str()), (Some("/fast"), Some(*ua)), "{row:?}");
        }
    }
    // Not retried forever: the next request's row follows.
    let res =
        http.get(format!("{}/gw/bank/fast", app.base)).header("x-api-key", &agent.key.secret).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    app.wait_for_audit(&format!("request_id = '{id}'"), 1).await;
}

/// `postgres://user@host:port/db` with its host and port replaced.
fn through(url: &str, addr: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let userinfo = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{userinfo}{addr}/{path}")
}

async fn readiness(app: &TestApp) -> (StatusCode, String) {
    let res = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn the_database_going_away_mid_load_loses_no_answered_request() {
    // PostgreSQL goes away through a cut cable; SQLite, a file, through a lock held
    // longer than its busy timeout. Either way the writer fails, retries and catches up.
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty());
    let mut cable = None;
    if postgres {
        let admin = std::env::var("TEST_DATABASE_URL").unwrap();
        let target = admin.split_once('@').map_or(admin.as_str(), |(_, r)| r).split('/').next().unwrap().to_owned();
        cable = Some(Cable::to(target).await);
    }
    let via = cable.as_ref().map(|c| c.addr.clone());
    let app = TestApp::spawn_configured(|a| {
        if let Some(addr) = via {
            a.store.database_url = a.store.database_url.take().map(|u| through(&u, &addr));
        }
    })
    .await;
    let (_upstream, agent) = bank(&app).await;
    let http = reqwest::Client::new();
    let call = || async {
        let res = http.get(format!("{}/gw/bank/fast", app.base)).header("x-api-key", &agent.key.secret).send().await;
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.headers()["x-request-id"].to_str().unwrap().to_owned()
    };
    let mut answered = Vec::new();
    for _ in 0..10 {
        answered.push(call().await);
    }
    let release = match &cable {
        Some(c) => {
            c.cut();
            None
        }
        None => Some(block_audit_writer(&app.database_url).await),
    };
    // The gateway keeps answering from memory while the rows wait in the queue.
    let outage = std::time::Instant::now();
    let mut reported = false;
    while outage.elapsed() < Duration::from_secs(8) {
        answered.push(call().await);
        if readiness(&app).await.0 == StatusCode::SERVICE_UNAVAILABLE {
            reported = true;
            if outage.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reported, "/readyz says the audit trail cannot write");
    let (_, why) = readiness(&app).await;
    assert!(why.contains("audit writer failing"), "{why}");
    match (&cable, release) {
        (Some(c), _) => c.restore(),
        (None, Some(r)) => r.send(()).unwrap(),
        (None, None) => unreachable!(),
    }
    let rows = wait_for_audit_long(&app, answered.len()).await;
    for id in &answered {
        assert_eq!(rows.iter().filter(|r| r["request_id"] == id.as_str()).count(), 1, "{id} exactly once");
    }
    for _ in 0..100 {
        if readiness(&app).await.0 == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz did not recover");
}

/// The writer backs off to 5 s and a pool waits up to 10 s for a connection: give its
/// watermark 30 s to pass every row reserved so far.
async fn wait_for_audit_long(app: &TestApp, n: usize) -> Vec<serde_json::Map<String, Value>> {
    let caught_up = tokio::time::timeout(Duration::from_secs(30), app.audit.settled()).await;
    assert_eq!(caught_up, Ok(true), "the audit writer did not catch up with {n} rows");
    let rows = audit_rows(&app.database_url, REST).await;
    assert!(rows.len() >= n, "expected {n} rows, found {}: {rows:?}", rows.len());
    rows
}

#[tokio::test]
async fn rows_unwritten_at_the_shutdown_deadline_are_spilled_and_replayed_once() {
    let mut app = TestApp::spawn_configured(|a| a.shutdown_timeout_secs = 1).await;
    let (_upstream, agent) = bank(&app).await;
    let release = block_audit_writer(&app.database_url).await;
    let mut answered = Vec::new();
    for _ in 0..10 {
        let res = reqwest::Client::new()
            .get(format!("{}/gw/bank/fast", app.base))
            .header("x-api-key", &agent.key.secret)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        answered.push(res.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    app.shut_down().await;
    let spill = app.data_dir().join("audit-spill.jsonl");
    let spilled = std::fs::read_to_string(&spill).expect("the unwritten rows were spilled");
    assert_eq!(spilled.lines().count(), 10, "{spilled}");
    release.send(()).unwrap();
    assert!(audit_rows(&app.database_url, REST).await.is_empty());

    // The next start writes them, once.
    app.restart().await;
    let rows = audit_rows(&app.database_url, REST).await;
    assert_eq!(rows.len(), 10, "replayed before serving");
    assert!(answered.iter().all(|id| rows.iter().any(|r| r["request_id"] == id.as_str())));
    assert!(!spill.exists(), "a replayed file is removed");
    // A file replayed twice (a crash after the rows were written) adds nothing.
    std::fs::write(&spill, &spilled).unwrap();
    app.restart().await;
    assert_eq!(audit_rows(&app.database_url, REST).await.len(), 10);
    assert!(!spill.exists());
    // And the server serves on, writing new rows beside the replayed ones.
    let res = reqwest::Client::new()
        .get(format!("{}/gw/bank/fast", app.base))
        .header("x-api-key", &agent.key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    app.wait_for_audit(REST, 11).await;
}

/// The `audit.overflow` events' counts, summed: (refused, abandoned).
async fn overflow_counts(database_url: &str) -> (u64, u64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    let summaries: Vec<String> = sqlx::query_scalar("SELECT summary FROM audit_events WHERE action = 'audit.overflow'")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    summaries.iter().map(|s| serde_json::from_str::<Value>(s).unwrap()).fold((0, 0), |(r, a), v| {
        (r + v["refused_requests"].as_u64().unwrap(), a + v["abandoned_requests"].as_u64().unwrap())
    })
}

#[tokio::test]
async fn a_caller_that_gives_up_waiting_for_room_is_counted_and_nothing_runs_for_it() {
    let app = TestApp::spawn_configured(|a| a.audit_queue = 2).await;
    let (upstream, agent) = bank(&app).await;
    let release = block_audit_writer(&app.database_url).await;
    // Back-pressure: requests are answered while there is room, then wait for it.
    let mut served = 0;
    let mut waited = 0;
    for _ in 0..8 {
        let res = impatient(300)
            .get(format!("{}/gw/bank/fast", app.base))
            .header("x-api-key", &agent.key.secret)
            .send()
            .await;
        match res {
            Ok(r) if r.status() == StatusCode::OK => served += 1,
            Err(e) if e.is_timeout() => waited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(waited > 0 && served > 0, "served {served}, gave up {waited}");
    assert_eq!(upstream.hits(), served, "nothing ran for a caller that gave up waiting");
    release.send(()).unwrap();
    let rows = app.wait_for_audit(REST, served).await;
    assert_eq!(rows.len(), served);
    for _ in 0..100 {
        if overflow_counts(&app.database_url).await == (0, waited as u64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the trail does not count the {waited} abandoned requests: {:?}", overflow_counts(&app.database_url).await);
}
