//! MCP sessions on two real server processes sharing one store, as behind a round-robin
//! load balancer: a session begun on one replica is served by the other, an end made on
//! either reaches the other within about a second, and ids that are not ours — another
//! profile's, forged, expired — are as unknown on every replica as a made-up one.

use crate::helpers::{agent, agent_for, poll_audit, Server, TestApp, TestUpstream, SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use portcullis_domain::secrets::ServerSecret;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

struct Replicas {
    a: Server,
    b: Server,
    /// The API key of the profile that owns the sessions, and its profile id.
    key: String,
    profile_id: String,
    /// Another profile's API key, granted the same product.
    other_key: String,
    upstream: TestUpstream,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    session: Option<String>,
    body: Value,
}

impl Replicas {
    async fn start() -> (TestApp, Self) {
        let mut app = TestApp::spawn().await;
        let upstream = TestUpstream::start().await;
        let owner = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
        let other = agent(&app, &["bank"]).await;
        app.shut_down().await;
        let (a, b) = (Server::start(&app, &[]).await, Server::start(&app, &[]).await);
        let replicas = Self {
            a,
            b,
            key: owner.key.secret.clone(),
            profile_id: owner.reg.secret.profile_id.clone(),
            other_key: other.key.secret.clone(),
            upstream,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        };
        (app, replicas)
    }

    /// One JSON-RPC request (or `DELETE` when `body` is `None`) to `base`'s `/mcp`.
    async fn send(&self, base: &str, key: &str, session: Option<&str>, body: Option<Value>) -> Reply {
        self.send_as(base, key, session, body, "mcp-replicas-test").await
    }

    async fn send_as(
        &self,
        base: &str,
        key: &str,
        session: Option<&str>,
        body: Option<Value>,
        user_agent: &str,
    ) -> Reply {
        let url = format!("{base}/mcp");
        let mut req = match &body {
            Some(b) => self.http.post(&url).header("content-type", "application/json").body(b.to_string()),
            None => self.http.delete(&url),
        };
        req = req.header("x-api-key", key).header("accept", "application/json").header("user-agent", user_agent);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let session = res.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        Reply { status, session, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    async fn initialize(&self, base: &str) -> String {
        let init = self
            .send(
                base,
                &self.key,
                None,
                Some(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})),
            )
            .await;
        assert_eq!(init.status, StatusCode::OK, "{}", init.body);
        init.session.expect("initialize names a session")
    }

    async fn ping(&self, base: &str, key: &str, session: &str) -> StatusCode {
        self.send(base, key, Some(session), Some(json!({"jsonrpc": "2.0", "id": "p", "method": "ping"}))).await.status
    }

    async fn call_tool(&self, base: &str, session: &str, name: &str, arguments: Value) -> Value {
        let r = self
            .send(
                base,
                &self.key,
                Some(session),
                Some(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                            "params": {"name": name, "arguments": arguments}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["result"].clone()
    }

    fn kill(self) {
        self.a.kill();
        self.b.kill();
    }
}

/// A session id laid out as the server lays them out (format 1, version code 3 =
/// 2025-11-25, issue time, nonce, profile id) and sealed with the key `secret` derives:
/// with the servers' own secret it must be accepted, which shows that a refusal of any
/// other spelling comes from the MAC, not from a layout the test got wrong.
fn forge(secret: &str, profile_id: &str, issued_at: i64) -> String {
    let key = ServerSecret::parse(secret).unwrap().derive("mcp-session-id/v1");
    let mut sealed = vec![1u8, 3];
    sealed.extend_from_slice(&issued_at.to_be_bytes());
    sealed.extend_from_slice(&rand::random::<[u8; 16]>());
    sealed.push(u8::try_from(profile_id.len()).unwrap());
    sealed.extend_from_slice(profile_id.as_bytes());
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(&sealed);
    sealed.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(sealed)
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[tokio::test]
async fn a_session_begun_on_one_replica_is_served_by_the_other() {
    let (_app, r) = Replicas::start().await;
    let sid = r.initialize(&r.a.base).await;
    let ack =
        r.send(&r.b.base, &r.key, Some(&sid), Some(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})));
    assert_eq!(ack.await.status, StatusCode::ACCEPTED);

    let list = r.send(&r.b.base, &r.key, Some(&sid), Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})));
    let list = list.await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let names: Vec<&str> =
        list.body["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["list_collections", "list_endpoints", "endpoint_details", "execute_endpoint"]);

    let endpoints = r.call_tool(&r.b.base, &sid, "list_endpoints", json!({})).await;
    let fast =
        endpoints["structuredContent"]["endpoints"].as_array().unwrap().iter().find(|e| e["path"] == "/fast").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let hits = r.upstream.hits();
    for base in [&r.b.base, &r.a.base, &r.b.base] {
        let out = r.call_tool(base, &sid, "execute_endpoint", json!({"endpoint_id": fast})).await;
        assert_eq!(out["isError"], false, "{out}");
        assert_eq!(
            (out["structuredContent"]["status"].clone(), out["structuredContent"]["body"].clone()),
            (json!(200), json!("fast"))
        );
    }
    assert_eq!(r.upstream.hits(), hits + 3, "each call reached the upstream once");
    r.kill();
}

#[tokio::test]
async fn an_end_on_one_replica_reaches_the_other_within_about_a_second() {
    let (app, r) = Replicas::start().await;
    let rounds = if app.database_url.starts_with("postgres") { 10 } else { 5 };
    let mut waits = Vec::new();
    for round in 0..rounds {
        // Alternate directions: begun on A, ended on B, refused on A; then the reverse.
        let (begin, end) = if round % 2 == 0 { (&r.a, &r.b) } else { (&r.b, &r.a) };
        let sid = r.initialize(&begin.base).await;
        assert_eq!(r.ping(&end.base, &r.key, &sid).await, StatusCode::OK);
        assert_eq!(r.ping(&begin.base, &r.key, &sid).await, StatusCode::OK);
        assert_eq!(r.send(&end.base, &r.key, Some(&sid), None).await.status, StatusCode::NO_CONTENT);
        let ended = Instant::now();
        assert_eq!(r.ping(&end.base, &r.key, &sid).await, StatusCode::NOT_FOUND, "ended at once where ended");
        while r.ping(&begin.base, &r.key, &sid).await != StatusCode::NOT_FOUND {
            assert!(ended.elapsed() < Duration::from_secs(3), "the other replica still serves an ended session");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        waits.push(ended.elapsed());
        // Ending it again, on either replica, is ending an unknown session.
        assert_eq!(r.send(&begin.base, &r.key, Some(&sid), None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(r.send(&end.base, &r.key, Some(&sid), None).await.status, StatusCode::NOT_FOUND);
    }
    waits.sort();
    println!(
        "an MCP session end reached the other replica over {} ends: min {:?}, median {:?}, max {:?}",
        waits.len(),
        waits[0],
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    // The refresh runs every second; a query and a request on top stay well inside 2 s.
    assert!(waits[waits.len() - 1] < Duration::from_millis(2000), "{waits:?}");

    // A replica that starts after the end knows it before it serves.
    let sid = r.initialize(&r.a.base).await;
    assert_eq!(r.send(&r.a.base, &r.key, Some(&sid), None).await.status, StatusCode::NO_CONTENT);
    let late = Server::start(&app, &[]).await;
    assert_eq!(r.ping(&late.base, &r.key, &sid).await, StatusCode::NOT_FOUND);
    let live = r.initialize(&r.b.base).await;
    assert_eq!(r.ping(&late.base, &r.key, &live).await, StatusCode::OK, "and serves the sessions still open");
    late.kill();
    r.kill();
}

#[tokio::test]
async fn another_profiles_credential_cannot_use_or_end_a_session_on_any_replica() {
    let (_app, r) = Replicas::start().await;
    let sid = r.initialize(&r.a.base).await;
    for base in [&r.a.base, &r.b.base] {
        assert_eq!(r.ping(base, &r.other_key, &sid).await, StatusCode::NOT_FOUND, "a session belongs to its profile");
        let ended = r.send(base, &r.other_key, Some(&sid), None).await;
        assert_eq!(ended.status, StatusCode::NOT_FOUND);
    }
    // Its owner's session was not ended by the other profile's DELETE, on either replica.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.ping(&r.a.base, &r.key, &sid).await, StatusCode::OK);
    assert_eq!(r.ping(&r.b.base, &r.key, &sid).await, StatusCode::OK);
    r.kill();
}

#[tokio::test]
async fn forged_and_expired_ids_are_unknown_sessions_with_their_audit_row() {
    let (app, r) = Replicas::start().await;
    let pid = r.profile_id.clone();
    // The control: the servers' layout and key are accepted, on both replicas.
    let genuine = forge(SECRET, &pid, now_ms());
    assert_eq!(r.ping(&r.a.base, &r.key, &genuine).await, StatusCode::OK);
    assert_eq!(r.ping(&r.b.base, &r.key, &genuine).await, StatusCode::OK);
    // Nearly a day old still serves; a day old no longer.
    assert_eq!(r.ping(&r.b.base, &r.key, &forge(SECRET, &pid, now_ms() - DAY_MS + 60_000)).await, StatusCode::OK);

    let other_secret = "another-secret-9876543210-zyxwvutsrqponmlkjihgfedcba";
    let mut tag_flipped = URL_SAFE_NO_PAD.decode(forge(SECRET, &pid, now_ms())).unwrap();
    *tag_flipped.last_mut().unwrap() ^= 1;
    let cases = [
        ("other-secret", forge(other_secret, &pid, now_ms())),
        ("tag-flipped", URL_SAFE_NO_PAD.encode(&tag_flipped)),
        ("random-mac", {
            let mut raw = URL_SAFE_NO_PAD.decode(&genuine).unwrap();
            let n = raw.len();
            raw[n - 32..].copy_from_slice(&rand::random::<[u8; 32]>());
            URL_SAFE_NO_PAD.encode(raw)
        }),
        ("expired", forge(SECRET, &pid, now_ms() - DAY_MS - 1)),
        ("truncated", genuine[..genuine.len() - 4].to_owned()),
        ("oversized", "A".repeat(64 * 1024)),
    ];
    let run = uuid::Uuid::now_v7().simple().to_string();
    for (name, sid) in &cases {
        for (replica, base) in [("a", &r.a.base), ("b", &r.b.base)] {
            let ua = format!("forged-{run}-{name}-{replica}");
            let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
            let got = r.send_as(base, &r.key, Some(sid), Some(ping), &ua).await;
            assert_eq!(got.status, StatusCode::NOT_FOUND, "{name} on {replica}: {}", got.body);
            let del = r.send_as(base, &r.key, Some(sid), None, &format!("{ua}-delete")).await;
            assert_eq!(del.status, StatusCode::NOT_FOUND, "DELETE {name} on {replica}");
        }
    }
    let rows = poll_audit(&app.database_url, &format!("user_agent LIKE 'forged-{run}-%'"), cases.len() * 4).await;
    assert_eq!(rows.len(), cases.len() * 4, "one row per request");
    for row in &rows {
        assert_eq!(
            (row["decision"].as_str(), row["reason"].as_str(), row["status"].as_i64(), row["profile_id"].as_str()),
            (Some("refused"), Some("unknown_session"), Some(404), Some(pid.as_str())),
            "{row:?}"
        );
    }
    r.kill();
}
