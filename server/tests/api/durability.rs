//! Crash durability, with the real `portcullis` binary: under committed durability an
//! answer leaves only after its audit row has committed, so a SIGKILL under load loses
//! no row of any request a client was answered; and the killed server starts again.

use crate::helpers::{agent_for, audit_rows, TestApp, TestUpstream, SECRET};
use std::io::BufRead;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `portcullis serve` process on the test's database and data directory.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    async fn start(app: &TestApp, extra: &[&str]) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--database-url", &app.database_url])
            .arg("--data-dir")
            .arg(app.data_dir())
            .args(extra)
            .env("PORTCULLIS_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the portcullis binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads on to the end, so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("Portcullis is listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.to_owned());
                    }
                }
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .expect("the server listens within 30 s")
            .expect("the server ended before listening");
        Self { child, base }
    }

    /// SIGKILL: no shutdown, no drain, nothing flushed.
    fn kill(mut self) {
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }
}

#[tokio::test]
async fn with_committed_durability_a_sigkill_under_load_loses_no_answered_requests_row() {
    let mut app = TestApp::spawn().await;
    let upstream = TestUpstream::start().await;
    let agent = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    app.shut_down().await;

    let server = Server::start(&app, &["--audit-durability", "committed"]).await;
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (url, key) = (format!("{}/gw/bank/fast", server.base), agent.key.secret.clone());
            let (answered, stop) = (answered.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::SeqCst) {
                    // Once the server is gone, requests fail: those were never answered.
                    if let Ok(res) = http.get(&url).header("x-api-key", &key).send().await {
                        if res.status().is_success() {
                            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
                            answered.lock().unwrap().push(id);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 20, "the load ran: {} answers", answered.len());

    let rows = audit_rows(&app.database_url, "action = 'request' AND channel = 'rest'").await;
    let written: std::collections::HashSet<&str> = rows.iter().filter_map(|r| r["request_id"].as_str()).collect();
    let missing: Vec<&String> = answered.iter().filter(|id| !written.contains(id.as_str())).collect();
    assert!(missing.is_empty(), "{} of {} answered requests have no row: {missing:?}", missing.len(), answered.len());

    // The killed server starts again on the same store and serves.
    let again = Server::start(&app, &["--audit-durability", "committed"]).await;
    let res = reqwest::Client::new()
        .get(format!("{}/gw/bank/fast", again.base))
        .header("x-api-key", &agent.key.secret)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(
        audit_rows(&app.database_url, &format!("request_id = '{id}'")).await.len(),
        1,
        "committed before answered"
    );
    again.kill();
}
