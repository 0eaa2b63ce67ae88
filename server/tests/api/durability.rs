//! Crash durability, with the real `portcullis` binary: under committed durability an
//! answer leaves only after its audit row has committed, so a SIGKILL under load loses
//! no row of any request a client was answered; and the killed server starts again.

use crate::helpers::{agent_for, audit_rows, Server, TestApp, TestUpstream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
