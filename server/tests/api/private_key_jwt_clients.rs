//! private_key_jwt with clients written by others: oauth4webapi (npm) makes the key
//! pair and signs the assertions (with RFC 9864's `Ed25519` name for its DPoP key), and
//! the official MCP Python SDK signs an RSA assertion and runs a session with the token.
//! `scripts/install-tools.sh --mcp` installs both.

use crate::dpop::bank_agent;
use crate::helpers::TestApp;
use crate::mcp_clients::{clients_dir, installed, node, root, run_json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::process::Command;

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn oauth4webapi_registers_its_key_and_gets_bound_tokens_with_its_own_assertions() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let mut cmd = Command::new(node());
    cmd.current_dir(clients_dir())
        .arg("private_key_jwt_client.mjs")
        .arg(&app.base)
        .arg(a.dev.personal_token(None).await)
        .arg(&a.reg.secret.profile_id)
        .arg(&a.reg.client_id)
        .arg("/gw/bank/fast");
    let out = run_json(cmd).await;
    assert_eq!(out["registration_status"], 201, "{out}");
    assert!(out["auth_methods"].as_array().unwrap().contains(&"private_key_jwt".into()), "{out}");
    assert_eq!(out["token_type"], "dpop", "{out}");
    assert_eq!(out["second_token"], true, "a second assertion got a second token: {out}");
    assert_eq!(out["gateway_status"], 200, "{out}");
    assert_eq!(upstream.hits(), 1);
    let credential = out["credential_id"].as_str().unwrap();
    let claims = claims_of(out["access_token"].as_str().unwrap());
    assert_eq!(claims["cid"], credential, "the token was obtained with the registered key, not the secret");
    let rows = app
        .wait_for_audit(&format!("channel = 'oauth' AND decision = 'allowed' AND credential_id = '{credential}'"), 2)
        .await;
    assert_eq!(rows.len(), 2, "two token requests, each with its own assertion: {rows:?}");
}

#[tokio::test]
async fn the_mcp_python_sdk_signs_an_rsa_assertion_and_runs_a_session_with_the_token() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let python = installed(root().join(".tools/mcp-sdk1/bin/python"));
    let mut cmd = Command::new(python);
    cmd.arg(clients_dir().join("private_key_jwt_client.py"))
        .arg(&app.base)
        .arg(a.dev.personal_token(None).await)
        .arg(&a.reg.secret.profile_id)
        .arg(&a.reg.client_id);
    let out = run_json(cmd).await;
    assert_eq!(out["registration_status"], 201, "{out}");
    assert_eq!(out["registered"]["thumbprint"], out["thumbprint"], "our thumbprint is joserfc's (RFC 7638)");
    assert_eq!(out["registered"]["key_type"], "RSA 2048", "{out}");
    let credential = out["registered"]["credential_id"].as_str().unwrap();
    assert_eq!(claims_of(out["access_token"].as_str().unwrap())["cid"], credential, "{out}");
    assert_eq!(out["executed"]["status"], 200, "{out}");
    assert_eq!(out["ps256_status"], 200, "{out}");
    assert_eq!(upstream.hits(), 1);
    let rows = app
        .wait_for_audit(&format!("channel = 'oauth' AND decision = 'allowed' AND credential_id = '{credential}'"), 2)
        .await;
    assert_eq!(rows.len(), 2, "the SDK's token request and the PS256 one: {rows:?}");
}
