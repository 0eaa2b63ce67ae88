//! Bounded under abuse: slow clients hold no connection for long, connections and bodies
//! have limits, a flood of refusals from one address is turned away at the door and
//! counted instead of filling the trail, failures against someone else's account or
//! client never lock its owner out, and made-up identities cost the server no memory.

use crate::helpers::{agent, agent_for, audit_rows, Server, Session, TestApp, TestUpstream, PASSWORD};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_disconnected() {
    let app = TestApp::spawn_configured(|a| a.header_read_timeout_secs = 1).await;
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    // The server closes the connection (EOF, or a reset): it waits for no one.
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
    assert!(read.is_ok(), "still connected after 5 s");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // A prompt client is served as ever.
    assert_eq!(reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected_at_the_same_deadline() {
    // Before any header byte hyper does not know the HTTP version, and its own header
    // timer has not started: the listener's deadline covers that wait too.
    let app = TestApp::spawn_configured(|a| a.header_read_timeout_secs = 1).await;
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still connected after 5 s: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_keep_alive_connection_left_idle_is_closed_at_the_header_deadline() {
    // Served once, then silent: waiting for a next request that never comes must not
    // hold a connection slot for ever (--max-connections would fill with such clients).
    let app = TestApp::spawn_configured(|a| a.header_read_timeout_secs = 1).await;
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let served = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(6), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still connected 6 s after its answer: {read:?}");
    assert!(served.elapsed() < Duration::from_secs(3), "closed only after {:?}", served.elapsed());
}

#[tokio::test]
async fn an_http2_connection_left_idle_is_closed_at_the_header_deadline() {
    // The same over HTTP/2 (prior knowledge on plain http): after its one request the
    // client keeps the connection and sends nothing; the server ends it (GOAWAY, close).
    let app = TestApp::spawn_configured(|a| a.header_read_timeout_secs = 1).await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = ended_tx.send(conn.await);
    });
    let req = axum::http::Request::get(format!("{}/healthz", app.base))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), axum::http::Version::HTTP_2);
    drop(http_body_util::BodyExt::collect(res.into_body()).await.unwrap());
    let served = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(6), ended).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection is still open 6 s after its answer");
    assert!(served.elapsed() < Duration::from_secs(3), "closed only after {:?}", served.elapsed());
    // Kept busy, a connection stays: requests 600 ms apart for 3 s on a new one.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..5 {
        let req = axum::http::Request::get(format!("{}/healthz", app.base))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(send.send_request(req).await.unwrap().status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_is_free() {
    let app = TestApp::spawn_configured(|a| a.max_connections = 4).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    let res = waiting.get(format!("{}/healthz", app.base)).send().await;
    assert!(res.is_err_and(|e| e.is_timeout()), "a fifth connection is not served while four are held");
    drop(held);
    let served = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    assert_eq!(served.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn bodies_over_their_route_limit_are_refused_with_413_and_audited() {
    let app = TestApp::spawn_configured(|a| a.max_body = 64 * 1024).await;
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("POST", "/echo")]).await;
    let http = reqwest::Client::new();
    // Declared: refused before anything is forwarded.
    let declared = http
        .post(format!("{}/gw/bank/echo", app.base))
        .header("x-api-key", &a.key.secret)
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.json::<Value>().await.unwrap()["code"], "payload_too_large");
    assert_eq!(upstream.hits(), 0);
    // Streamed without a length: cut off at the limit.
    let chunks = futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'b'; 1024])));
    let streamed = http
        .post(format!("{}/gw/bank/echo", app.base))
        .header("x-api-key", &a.key.secret)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let rows = app.wait_for_audit("action = 'request' AND channel = 'rest'", 2).await;
    assert!(rows.iter().all(|r| r["status"] == 413 && r["reason"] == "payload_too_large"), "{rows:?}");
    assert!(rows[1]["bytes_in"].as_i64().unwrap() <= 66 * 1024, "read no further than the limit: {rows:?}");
    // Within the limit, as ever.
    let fine =
        http.post(format!("{}/gw/bank/echo", app.base)).header("x-api-key", &a.key.secret).body(vec![b'c'; 1000]);
    assert_eq!(fine.send().await.unwrap().status(), StatusCode::OK);

    // The portal and management API read at most 8 MiB, the token endpoint 64 KiB.
    let api = http
        .post(format!("{}/api/v1/clients", app.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 9 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let token = http
        .post(format!("{}/oauth/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A client that says (through a trusted proxy) it is at `ip`.
fn from(ip: &'static str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder().default_headers(headers).cookie_store(true).build().unwrap()
}

#[tokio::test]
async fn a_flood_of_refusals_is_turned_away_at_the_door_and_counted_not_written() {
    let mut app = TestApp::spawn_configured(|a| {
        a.source_refusal_limit = 20;
        a.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    app.publish_sample_products().await;
    let owner = agent(&app, &["accounts"]).await;
    let attacker = from("203.0.113.5");
    let mut statuses = Vec::new();
    for i in 0..200 {
        let res = attacker
            .get(format!("{}/gw/accounts/accounts", app.base))
            .header("x-api-key", format!("pck_guess{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    let written = statuses.iter().filter(|s| **s == 401).count();
    let turned_away = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(written + turned_away, 200, "{statuses:?}");
    assert!((10..=15).contains(&written), "about the burst is heard: {written}");
    // The same flood on /mcp and /oauth is turned away as well: one door.
    let mcp = attacker.post(format!("{}/mcp", app.base)).header("content-type", "application/json").body("{}");
    assert_eq!(mcp.send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    let oauth = attacker.post(format!("{}/oauth/token", app.base)).form(&[("grant_type", "client_credentials")]);
    let oauth = oauth.send().await.unwrap();
    assert_eq!(oauth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(oauth.headers().contains_key("retry-after"));
    // Someone else, elsewhere, is not affected.
    let elsewhere = from("198.51.100.7")
        .get(format!("{}/gw/accounts/accounts", app.base))
        .header("x-api-key", &owner.key.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::OK);

    app.shut_down().await;
    let rows = audit_rows(&app.database_url, "action = 'request'").await;
    assert_eq!(rows.iter().filter(|r| r["status"] == 401).count(), written, "only what was heard is a row");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let (target, summary): (String, String) =
        sqlx::query_as("SELECT target_id, summary FROM audit_events WHERE action = 'requests.suppressed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(target, "203.0.113.5");
    assert_eq!(summary["refused_at_the_door"]["rest"], turned_away, "{summary}");
    assert_eq!(summary["refused_at_the_door"]["mcp"], 1);
    assert_eq!(summary["refused_at_the_door"]["oauth"], 1);
}

#[tokio::test]
async fn failures_from_an_attackers_address_never_lock_the_owner_out() {
    let app = TestApp::spawn_configured(|a| {
        a.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        a.source_refusal_limit = 0;
    })
    .await;
    app.publish_sample_products().await;
    let owner = agent(&app, &["accounts"]).await;

    // Token endpoint: the attacker hammers the owner's client id with wrong secrets.
    let attacker = from("203.0.113.5");
    let mut last = StatusCode::OK;
    for _ in 0..40 {
        last = attacker
            .post(format!("{}/oauth/token", app.base))
            .basic_auth(&owner.reg.secret.client_id, Some("pcs_wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "the attacker is slowed down");
    let token = from("198.51.100.7")
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&owner.reg.secret.client_id, Some(&owner.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK, "the owner, elsewhere, still gets a token");

    // Portal: the attacker guesses the owner's password until throttled.
    let guesser = Session { http: attacker.clone(), base: app.base.clone(), email: String::new() };
    let mut throttled = false;
    for _ in 0..12 {
        throttled |= guesser.call("sign_in", &[("email", &owner.dev.email), ("password", "guess")]).await.status == 429;
    }
    assert!(throttled);
    let owner_browser = Session { http: from("198.51.100.7"), base: app.base.clone(), email: owner.dev.email.clone() };
    let signed_in = owner_browser.call("sign_in", &[("email", &owner.dev.email), ("password", PASSWORD)]).await;
    assert!(signed_in.status < 400, "the owner signs in from elsewhere: {signed_in:?}");
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn made_up_identities_by_the_thousand_leave_the_servers_memory_flat() {
    let mut app = TestApp::spawn().await;
    app.shut_down().await;
    // The real binary, so its memory is its own; every limit that would stop the flood
    // early is lifted, so each request reaches the keyed limiters.
    let flags = ["--source-refusal-limit", "0", "--token-rate-limit", "100000000", "--audit-queue", "1000"];
    let server = Server::start(&app, &flags).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let flood = |n: usize, round: usize| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let calls = (0..n).map(|i| {
                let (http, base) = (http.clone(), base.clone());
                async move {
                    let id = format!("cl_{round}_{i}_{}", "x".repeat(16_000));
                    let _ = http
                        .post(format!("{base}/oauth/token"))
                        .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", "pcs_x")])
                        .send()
                        .await;
                    let email = format!("{round}-{i}-{}@example.com", "y".repeat(16_000));
                    let _ = http
                        .post(format!("{base}/api/sign_in"))
                        .header("accept", "application/json")
                        .header("origin", &base)
                        .form(&[("email", email.as_str()), ("password", "nope")])
                        .send()
                        .await;
                }
            });
            futures_util::stream::iter(calls).buffer_unordered(16).collect::<Vec<_>>().await;
        }
    };
    use futures_util::StreamExt;
    // The first flood brings every bounded structure (audit queue, pools, caches, the
    // allocator's arenas) to its working size; a second one as large must add nothing.
    flood(10_000, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(server.pid());
    flood(10_000, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(server.pid());
    server.kill();
    let grown_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "rss before {before} KiB, after 10,000 more made-up client ids and emails {after} KiB (+{grown_mib:.1} MiB)"
    );
    // Kept per identity, 10,000 ids and emails of 16 KB would be 320 MiB. The sign-ins
    // the throttle lets through hash in memory allocated once (one 19 MiB buffer per
    // core, taken during the first flood), so nothing else should move the figure.
    assert!(grown_mib < 16.0, "memory grew by {grown_mib:.1} MiB for 20,000 more made-up identities");
}
