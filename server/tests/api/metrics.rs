//! Prometheus metrics on their own listener: scraped after real traffic, the request
//! counts equal the audit rows (they are counted from them), and the public port does
//! not serve them.

use crate::helpers::{agent_for, audit_rows, TestApp, TestUpstream};
use std::collections::HashMap;

/// `name{labels} value` lines of an OpenMetrics text, as a map.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

#[tokio::test]
async fn a_scrape_after_traffic_counts_exactly_what_the_audit_trail_records() {
    let app = TestApp::spawn_configured(|a| a.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics = app.metrics.clone().expect("a metrics listener");
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let http = reqwest::Client::new();
    for key in [a.key.secret.as_str(), a.key.secret.as_str(), a.key.secret.as_str(), "pck_wrong", "pck_wrong"] {
        http.get(format!("{}/gw/bank/fast", app.base)).header("x-api-key", key).send().await.unwrap();
    }
    let token = http
        .post(format!("{}/oauth/token", app.base))
        .basic_auth("cl_nobody", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 401);
    let issued = http
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200);
    // An MCP session begun and ended.
    let mcp = |req: reqwest::RequestBuilder| {
        req.header("x-api-key", &a.key.secret)
            .header("accept", "application/json")
            .header("content-type", "application/json")
    };
    let init = mcp(http.post(format!("{}/mcp", app.base)))
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let end = mcp(http.delete(format!("{}/mcp", app.base))).header("mcp-session-id", &session).send().await.unwrap();
    assert_eq!(end.status(), 204);

    // Once the writer has written all nine rows (its watermark), the scrape says the same.
    assert!(app.audit.settled().await);
    let seen = samples(&http.get(&metrics).send().await.unwrap().text().await.unwrap());
    assert_eq!(seen.get("portcullis_audit_rows_written_total").copied(), Some(9.0), "{seen:?}");
    let count = |labels: &str| seen.get(&format!("portcullis_requests_total{{{labels}}}")).copied().unwrap_or(0.0);
    assert_eq!(count(r#"channel="rest",decision="allowed",status_class="2xx""#), 3.0, "{seen:?}");
    assert_eq!(count(r#"channel="rest",decision="refused",status_class="4xx""#), 2.0, "{seen:?}");
    assert_eq!(count(r#"channel="oauth",decision="refused",status_class="4xx""#), 1.0, "{seen:?}");
    assert_eq!(count(r#"channel="oauth",decision="allowed",status_class="2xx""#), 1.0, "{seen:?}");
    let counted: f64 = seen.iter().filter(|(k, _)| k.starts_with("portcullis_requests_total{")).map(|(_, v)| v).sum();
    let rows = audit_rows(&app.database_url, "action = 'request'").await.len();
    assert_eq!(counted as usize, rows, "one count per audit row");
    assert_eq!(seen[r#"portcullis_request_duration_seconds_count{channel="rest"}"#], 5.0);
    assert_eq!(seen["portcullis_audit_queue_capacity"], 10_000.0, "the default queue");
    assert_eq!(seen["portcullis_audit_writer_failing"], 0.0);
    assert_eq!(seen["portcullis_audit_rows_spilled_total"], 0.0);
    assert_eq!(seen["portcullis_policy_version"], app.store.enforcement().snapshot().current().version as f64);
    assert!(seen["portcullis_policy_snapshot_age_seconds"] <= 2.0, "confirmed by the last second's poll");

    // What the gateway adds and what the upstream takes, for each forwarded request.
    assert_eq!(seen[r#"portcullis_gateway_added_seconds_count{channel="rest"}"#], 3.0);
    assert_eq!(seen[r#"portcullis_upstream_response_seconds_count{channel="rest"}"#], 3.0);
    assert!(seen[r#"portcullis_gateway_added_seconds_sum{channel="rest"}"#] > 0.0);
    // Tokens and MCP sessions.
    assert_eq!(seen[r#"portcullis_tokens_total{outcome="issued"}"#], 1.0);
    assert_eq!(seen[r#"portcullis_tokens_total{outcome="refused"}"#], 1.0);
    assert_eq!(seen[r#"portcullis_mcp_sessions_total{outcome="started"}"#], 1.0);
    assert_eq!(seen[r#"portcullis_mcp_sessions_total{outcome="ended"}"#], 1.0);
    // Refusals by reason: exactly the refused rows of the trail, reason by reason.
    let mut refused: HashMap<String, f64> = HashMap::new();
    for row in audit_rows(&app.database_url, "action = 'request' AND decision = 'refused'").await {
        let key = format!(
            r#"portcullis_refusals_total{{channel="{}",reason="{}"}}"#,
            row["channel"].as_str().unwrap(),
            row["reason"].as_str().unwrap()
        );
        *refused.entry(key).or_default() += 1.0;
    }
    let scraped: HashMap<String, f64> = seen
        .iter()
        .filter(|(k, _)| k.starts_with("portcullis_refusals_total{"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(scraped, refused);

    // Not on the public port.
    assert_eq!(http.get(format!("{}/metrics", app.base)).send().await.unwrap().status(), 404);
}

/// A caller that hangs up mid-call still leaves its row (499), and the metrics count it
/// from that row: a request the trail records is never missing from the counts.
#[tokio::test]
async fn a_caller_that_hangs_up_is_counted_from_its_499_row() {
    let app = TestApp::spawn_configured(|a| a.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics = app.metrics.clone().expect("a metrics listener");
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/slow")]).await;
    let impatient = reqwest::Client::builder().timeout(std::time::Duration::from_millis(100)).build().unwrap();
    let gone = impatient.get(format!("{}/gw/bank/slow", app.base)).header("x-api-key", &a.key.secret).send().await;
    assert!(gone.is_err(), "the caller gave up first");

    let rows = app.wait_for_audit("action = 'request' AND status = 499", 1).await;
    assert_eq!(rows[0]["reason"], "client_closed_request");
    let http = reqwest::Client::new();
    let seen = samples(&http.get(&metrics).send().await.unwrap().text().await.unwrap());
    assert_eq!(seen.get("portcullis_audit_rows_written_total").copied(), Some(1.0), "{seen:?}");
    let counted: Vec<(&String, &f64)> =
        seen.iter().filter(|(k, v)| k.starts_with("portcullis_requests_total{") && **v > 0.0).collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert!(
        counted[0].0.contains(r#"channel="rest""#) && counted[0].0.contains(r#"status_class="4xx""#),
        "{counted:?}"
    );
    assert_eq!(*counted[0].1, 1.0);
    assert_eq!(audit_rows(&app.database_url, "action = 'request'").await.len(), 1);
}
