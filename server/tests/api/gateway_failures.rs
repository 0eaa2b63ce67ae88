//! When things go wrong around the gateway: an upstream that is down (502) or too slow
//! (504), an audit trail that cannot keep up (fail closed: 503, nothing forwarded), and
//! a shutdown with audit rows still queued (every one is written).

use crate::helpers::{agent_for, block_audit_writer, TestApp};
use portcullis_domain::model::IssuedSecret;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;
use std::time::Duration;

/// A new agent's API key for a product `slug` with one endpoint, `GET /accounts`,
/// served at `upstream`.
async fn agent_for_upstream(app: &TestApp, slug: &str, upstream: &str) -> IssuedSecret {
    agent_for(app, slug, upstream, &[("GET", "/accounts")]).await.key
}

async fn get(app: &TestApp, path: &str, key: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new().get(format!("{}{path}", app.base)).header("x-api-key", key).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn request_rows(database_url: &str) -> Vec<(String, i64)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT reason, status FROM audit_events WHERE action = 'request' AND channel = 'rest' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter().map(|r| (r.get("reason"), r.get("status"))).collect()
}

async fn wait_for_rows(app: &TestApp, n: usize) -> Vec<(String, i64)> {
    let rows = app.wait_for_audit("action = 'request' AND channel = 'rest'", n).await;
    rows.iter().map(|r| (r["reason"].as_str().unwrap().to_owned(), r["status"].as_i64().unwrap())).collect()
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_and_audited() {
    let app = TestApp::spawn().await;
    // A port that was just free: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let key = agent_for_upstream(&app, "down", &format!("http://{closed}")).await;
    let (status, body) = get(&app, "/gw/down/accounts", &key.secret).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["code"], "upstream_unavailable");
    assert_eq!(wait_for_rows(&app, 1).await, [("upstream_unavailable".to_owned(), 502)]);
}

#[tokio::test]
async fn an_upstream_slower_than_the_timeout_is_a_504_and_audited() {
    let app = TestApp::spawn_configured(|a| a.upstream_timeout_secs = 1).await;
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let key = agent_for_upstream(&app, "slow", &format!("http://{addr}")).await;
    let started = std::time::Instant::now();
    let (status, body) = get(&app, "/gw/slow/accounts", &key.secret).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body["code"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout applied: {:?}", started.elapsed());
    assert_eq!(wait_for_rows(&app, 1).await, [("upstream_timeout".to_owned(), 504)]);
}

#[tokio::test]
async fn fail_closed_refuses_with_503_before_the_upstream_when_the_audit_queue_is_full() {
    let app = TestApp::spawn_configured(|a| {
        a.audit_queue = 2;
        a.audit_when_full = portcullis::config::AuditWhenFull::FailClosed;
    })
    .await;
    let sample = portcullis::sample_upstream::spawn_loopback().await.unwrap();
    let key = agent_for_upstream(&app, "items", &format!("{sample}/sample/accounts")).await;
    let release = block_audit_writer(&app.database_url).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(&app, "/gw/items/accounts", &key.secret).await.0.as_u16());
    }
    // The writer holds one row and waits for the lock; the queue holds two more.
    assert!(statuses.contains(&503), "{statuses:?}");
    let served = statuses.iter().filter(|s| **s != 503).count();
    assert!((1..=3).contains(&served), "{statuses:?}");
    let (status, body) = get(&app, "/gw/items/accounts", &key.secret).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::SERVICE_UNAVAILABLE, Value::from("audit_unavailable")));
    release.send(()).unwrap();
    // Every request that was answered other than 503 has its row once the writer resumes.
    let rows = wait_for_rows(&app, served).await;
    assert_eq!(rows.len(), served, "{rows:?}");
    assert!(rows.iter().all(|(_, status)| *status != 503));
}

#[tokio::test]
async fn shutdown_writes_every_queued_audit_row() {
    let mut app = TestApp::spawn().await;
    let sample = portcullis::sample_upstream::spawn_loopback().await.unwrap();
    let key = agent_for_upstream(&app, "drain", &format!("{sample}/sample/accounts")).await;
    let release = block_audit_writer(&app.database_url).await;
    for _ in 0..15 {
        assert_eq!(get(&app, "/gw/drain/accounts", &key.secret).await.0, StatusCode::OK);
    }
    assert!(request_rows(&app.database_url).await.is_empty(), "the rows are still queued");
    let url = app.database_url.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        release.send(()).unwrap();
    });
    app.shut_down().await;
    assert_eq!(request_rows(&url).await.len(), 15, "the queue was drained before the server ended");
}

/// An upstream failure is in the log as well as in the trail: a JSON line (`--log-json`)
/// carrying the request id the caller was given and the trace id it sent.
#[tokio::test]
async fn a_failed_upstream_call_is_logged_with_its_request_and_trace_ids() {
    let mut app = TestApp::spawn().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let key = agent_for_upstream(&app, "down", &format!("http://{closed}")).await;
    app.shut_down().await;
    let log_path = app.data_dir().join("server.log");
    let mut serve = crate::helpers::Server::command_on(&app, &app.database_url);
    serve.arg("--log-json").env("RUST_LOG", "warn");
    let server = crate::helpers::Server::spawn_logging(serve, Some(log_path.clone())).await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = reqwest::Client::new()
        .get(format!("{}/gw/down/accounts", server.base))
        .header("x-api-key", &key.secret)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if let Some(line) = text.lines().find(|l| l.contains("upstream call failed")) {
            break serde_json::from_str::<Value>(line).expect("a JSON log line");
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no log line: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fields = &line["fields"];
    assert_eq!(fields["request.id"], request_id.as_str(), "{line}");
    assert_eq!(fields["trace.id"], trace, "{line}");
    assert_eq!(fields["reason"], "upstream_unavailable", "{line}");
    assert_eq!(line["level"], "WARN");
    server.kill();
}
