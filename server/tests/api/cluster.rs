//! The cluster `scripts/cluster.sh` starts, run for real: three `portcullis serve`
//! processes on one PostgreSQL and one Redis behind a real nginx (round robin), one
//! replica SIGKILLed under load and started again. Needs `TEST_DATABASE_URL`,
//! `TEST_REDIS_URL` and nginx (`scripts/install-tools.sh --cluster`); without any of
//! them the test says which and passes.

use crate::helpers::{agent_for, audit_rows, Server, TestApp, TestUpstream, SECRET};
use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::scopes::Scopes;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent request loops driving the load.
const LOOPS: usize = 4;
/// The limited profile: requests a minute, and its burst.
const PER_MINUTE: i64 = 10;
const BURST: i64 = 5;

fn needs() -> Option<(String, PathBuf)> {
    let mut missing = Vec::new();
    if std::env::var("TEST_DATABASE_URL").map_or(true, |u| u.is_empty()) {
        missing.push("TEST_DATABASE_URL is not set (replicas share PostgreSQL)");
    }
    let redis = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty());
    if redis.is_none() {
        missing.push("TEST_REDIS_URL is not set (replicas share rate limits in Redis)");
    }
    let nginx = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file());
    if nginx.is_none() {
        missing.push("nginx is not installed (scripts/install-tools.sh --cluster)");
    }
    match (redis, nginx) {
        (Some(redis), Some(nginx)) if missing.is_empty() => Some((redis, nginx)),
        _ => {
            eprintln!("skipped: {}", missing.join("; "));
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One replica: its own port (so it comes back where nginx expects it) and its own data
/// directory (its audit spill file), everything else shared.
struct Replica {
    addr: String,
    data_dir: PathBuf,
    flags: Vec<String>,
    server: Option<Server>,
}

impl Replica {
    fn new(app: &TestApp, n: usize, flags: &[String]) -> Self {
        let data_dir = app.data_dir().join(format!("replica-{n}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        Self { addr: format!("127.0.0.1:{}", free_port()), data_dir, flags: flags.to_vec(), server: None }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn start(&mut self, database_url: &str) {
        let mut serve = Server::command_at(&self.addr);
        serve
            .args(["--database-url", database_url])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.flags)
            .env("PORTCULLIS_SECRET", SECRET);
        self.server = Some(Server::spawn(serve).await);
    }

    fn kill(&mut self) {
        self.server.take().expect("running").kill();
    }
}

/// nginx as `scripts/cluster.sh` configures it, in one process (no master and workers,
/// so that killing it on drop leaves nothing behind), with its files in a temp dir.
struct Nginx {
    child: std::process::Child,
    base: String,
    _dir: crate::helpers::tempdir::TempDir,
}

impl Nginx {
    async fn start(binary: &Path, replicas: &[&Replica], port: u16) -> Self {
        let dir = crate::helpers::tempdir::TempDir::new();
        let d = dir.0.display();
        let servers: String =
            replicas.iter().map(|r| format!("    server {} max_fails=1 fail_timeout=1s;\n", r.addr)).collect();
        let config = format!(
            "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream portcullis {{
{servers}    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://portcullis;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error;
      proxy_next_upstream_tries 3;
      proxy_read_timeout 60s;
      proxy_buffering off;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"
        );
        let conf = dir.0.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let mut child = std::process::Command::new(binary)
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(res) = http.get(format!("{base}/healthz")).send().await {
                if res.status() == StatusCode::OK {
                    break;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.0.join("error.log")).unwrap_or_default();
                panic!("nginx ended ({status}): {log}");
            }
            assert!(started.elapsed() < Duration::from_secs(10), "nginx does not serve within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, base, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one request through nginx came to.
struct Outcome {
    started: Instant,
    ended: Instant,
    status: Option<StatusCode>,
    request_id: Option<String>,
    /// The replicas nginx tried, in order (`$upstream_addr`).
    tried: Option<String>,
}

/// A request with `key`: its status, request id, and the replica that answered it.
async fn get(http: &reqwest::Client, url: &str, key: &str) -> (StatusCode, Option<String>, Option<String>) {
    let res = http.get(url).header("x-api-key", key).send().await.unwrap();
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    // nginx lists every replica it tried ("dead:port, live:port"); the last one answered.
    let replica = header("x-upstream").map(|tried| tried.rsplit(", ").next().unwrap().to_owned());
    (res.status(), header("x-request-id"), replica)
}

/// How many audit rows each request id has.
async fn rows_per_request(database_url: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for row in audit_rows(database_url, "action = 'request'").await {
        if let Some(id) = row["request_id"].as_str() {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Every id in `answered` has exactly one row; returns how many were checked.
async fn each_has_one_row(database_url: &str, answered: &[String]) -> usize {
    let counts = rows_per_request(database_url).await;
    let wrong: Vec<_> = answered
        .iter()
        .filter(|id| counts.get(id.as_str()) != Some(&1))
        .map(|id| (id, counts.get(id.as_str()).copied().unwrap_or(0)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answered requests have not exactly one row: {wrong:?}",
        wrong.len(),
        answered.len()
    );
    let duplicated = counts.values().filter(|n| **n > 1).count();
    assert_eq!(duplicated, 0, "request ids with more than one row");
    answered.len()
}

#[tokio::test]
async fn three_replicas_behind_nginx_survive_a_sigkill_under_load_and_one_rejoins() {
    let Some((redis, nginx_bin)) = needs() else { return };
    let mut app = TestApp::spawn().await;
    let upstream = TestUpstream::start().await;
    let load = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let limited = agent_for(&app, "limited", &upstream.base, &[("GET", "/fast")]).await;
    let admin = app.operator_admin().await;
    app.store.set_rate_limit(&admin, &limited.reg.secret.profile_id, PER_MINUTE, BURST).await.unwrap();
    let owner = app.store.user_by_email(&load.dev.email).await.unwrap().unwrap();
    let pat = app
        .store
        .create_access_token(&Actor::new(owner, Channel::Cli), "cluster", Some(1), Scopes::all())
        .await
        .unwrap()
        .token;
    app.shut_down().await;

    // nginx's port is chosen first: it is the public URL, the issuer and audience every
    // replica must share.
    let nginx_port = free_port();
    let public_url = format!("http://127.0.0.1:{nginx_port}");
    let flags: Vec<String> = [
        "--public-url",
        &public_url,
        "--redis-url",
        &redis,
        "--trusted-proxies",
        "127.0.0.1",
        "--audit-durability",
        "committed",
    ]
    .map(String::from)
    .to_vec();
    let mut replicas: Vec<Replica> = (1..=3).map(|n| Replica::new(&app, n, &flags)).collect();
    for r in &mut replicas {
        r.start(&app.database_url).await;
    }
    let nginx = Nginx::start(&nginx_bin, &replicas.iter().collect::<Vec<_>>(), nginx_port).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Load through nginx; one replica SIGKILLed two seconds in, the load going on.
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..LOOPS)
        .map(|_| {
            let (http, stop) = (http.clone(), stop.clone());
            let (url, key) = (format!("{}/gw/bank/fast", nginx.base), load.key.secret.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let res = http.get(&url).header("x-api-key", &key).send().await;
                    let header =
                        |name: &str| res.as_ref().ok()?.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
                    let (request_id, tried) = (header("x-request-id"), header("x-upstream"));
                    let status = res.as_ref().ok().map(reqwest::Response::status);
                    outcomes.push(Outcome { started, ended: Instant::now(), status, request_id, tried });
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    replicas[0].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for l in loops {
        outcomes.extend(l.await.unwrap());
    }

    let answered: Vec<String> = outcomes
        .iter()
        .filter(|o| o.status == Some(StatusCode::OK))
        .map(|o| o.request_id.clone().expect("an answer carries its request id"))
        .collect();
    let after_kill = outcomes.iter().filter(|o| o.status == Some(StatusCode::OK) && o.started > killed_at).count();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != Some(StatusCode::OK)).collect();
    let in_flight_at_kill = |o: &&Outcome| o.started <= killed_at && o.ended >= killed_at;
    let stray: Vec<_> = failed
        .iter()
        .filter(|o| !(in_flight_at_kill(o) && o.status == Some(StatusCode::BAD_GATEWAY)))
        .map(|o| (o.status, o.started.saturating_duration_since(killed_at)))
        .collect();
    assert!(stray.is_empty(), "failures other than a 502 in flight at the kill: {stray:?}");
    assert!(failed.len() <= LOOPS, "at most one request per loop was in flight at the kill: {}", failed.len());
    assert!(answered.len() >= 50, "the load ran: {} answers", answered.len());
    assert!(after_kill >= 20, "the survivors served on after the kill: {after_kill} answers");
    // The dead replica's turns: nginx could not connect and asked a survivor instead.
    let dead = format!("{}, ", replicas[0].addr);
    let rerouted = outcomes.iter().filter(|o| o.tried.as_deref().is_some_and(|t| t.starts_with(&dead))).count();
    assert!(rerouted >= 1, "no request found the killed replica gone: was it killed?");
    let checked = each_has_one_row(&app.database_url, &answered).await;
    println!(
        "load through nginx: {} requests, {} answered 200 ({after_kill} after the kill, {rerouted} of them \
         after nginx found the killed replica gone), {} 502 at the kill; {checked} answered requests have \
         exactly one audit row",
        outcomes.len(),
        answered.len(),
        failed.len()
    );

    // A revocation made through nginx holds on both survivors, asked directly.
    let survivors: Vec<String> = replicas[1..].iter().map(Replica::base).collect();
    let issued: serde_json::Value = http
        .post(format!("{}/api/v1/profiles/{}/api-keys", nginx.base, load.reg.secret.profile_id))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key, credential) = (issued["secret"].as_str().unwrap(), issued["credential_id"].as_str().unwrap());
    let issued_at = Instant::now();
    for base in &survivors {
        while get(&http, &format!("{base}/gw/bank/fast"), key).await.0 != StatusCode::OK {
            assert!(issued_at.elapsed() < Duration::from_secs(3), "{base} never learned of the new key");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let revoked = http
        .post(format!("{}/api/v1/credentials/{credential}/revoke", nginx.base))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "revoked through nginx: {}", revoked.status());
    let revoked_at = Instant::now();
    for base in &survivors {
        while get(&http, &format!("{base}/gw/bank/fast"), key).await.0 != StatusCode::UNAUTHORIZED {
            assert!(revoked_at.elapsed() < Duration::from_secs(1), "{base} still accepts the key a second on");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let refused_in = revoked_at.elapsed();
    println!("revocation through nginx refused by both survivors {refused_in:?} after it was answered");

    // One limit between the survivors: 3B requests at once through nginx admit the burst
    // once, not once per replica.
    let started = Instant::now();
    let url = format!("{}/gw/limited/fast", nginx.base);
    let calls = (0..3 * BURST).map(|_| get(&http, &url, &limited.key.secret));
    let results = futures_util::future::join_all(calls).await;
    let admitted = results.iter().filter(|r| r.0 == StatusCode::OK).count();
    let unexpected: Vec<_> =
        results.iter().filter(|r| ![StatusCode::OK, StatusCode::TOO_MANY_REQUESTS].contains(&r.0)).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let mut by_replica: HashMap<String, (usize, usize)> = HashMap::new();
    for (status, _, upstream) in &results {
        let tally = by_replica.entry(upstream.clone().unwrap_or_default()).or_default();
        if *status == StatusCode::OK {
            tally.0 += 1;
        } else {
            tally.1 += 1;
        }
    }
    assert_eq!(by_replica.len(), 2, "both survivors took part (else one count could not be told from two)");
    // One more every 6 s may be earned while the requests run.
    let earned = (started.elapsed().as_secs() * PER_MINUTE as u64 / 60) as usize;
    assert!(
        (1..=BURST as usize + earned).contains(&admitted),
        "admitted {admitted} of {} (burst {BURST}): {by_replica:?}",
        3 * BURST
    );
    println!("shared limit through nginx: {admitted} of {} admitted (burst {BURST}): {by_replica:?}", 3 * BURST);

    // The killed replica comes back with the same flags, port and data dir.
    assert!(
        !replicas[0].data_dir.join("audit-spill.jsonl").exists(),
        "a SIGKILL leaves no spill file (it has nothing to replay)"
    );
    replicas[0].start(&app.database_url).await;
    let back = replicas[0].base();
    assert_eq!(get(&http, &format!("{back}/gw/bank/fast"), &load.key.secret).await.0, StatusCode::OK);
    assert_eq!(
        get(&http, &format!("{back}/gw/bank/fast"), key).await.0,
        StatusCode::UNAUTHORIZED,
        "the restarted replica refuses the key revoked while it was down"
    );
    let mut rejoined = Vec::new();
    let restarted = Instant::now();
    loop {
        let (status, id, upstream) = get(&http, &format!("{}/gw/bank/fast", nginx.base), &load.key.secret).await;
        assert_eq!(status, StatusCode::OK);
        rejoined.push(id.unwrap());
        if upstream.as_deref() == Some(replicas[0].addr.as_str()) {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(10), "nginx never sent the restarted replica a request");
    }
    println!("the restarted replica served through nginx {:?} after it listened", restarted.elapsed());
    let checked = each_has_one_row(&app.database_url, &[answered, rejoined].concat()).await;
    println!("after the rejoin: {checked} answered requests, each with exactly one audit row");
    drop(nginx);
    drop(replicas);
}
