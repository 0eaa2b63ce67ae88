//! DPoP with clients written by others: oauth4webapi (npm), and a Python client whose
//! keys, thumbprints and proofs come from joserfc, driving a whole session of the
//! official MCP Python SDK. `scripts/install-tools.sh --mcp` installs both.

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
async fn oauth4webapi_gets_a_bound_token_and_calls_the_gateway_and_mcp_with_its_proofs() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let endpoint = app.store.enforcement().snapshot().current().products["bank"].endpoints[0].id.clone();
    let mut cmd = Command::new(node());
    cmd.current_dir(clients_dir())
        .arg("dpop_client.mjs")
        .arg(&app.base)
        .arg(&a.reg.client_id)
        .arg(&a.reg.secret.secret)
        .arg("/gw/bank/fast")
        .arg(&endpoint);
    let out = run_json(cmd).await;
    assert_eq!(out["token_type"], "dpop", "oauth4webapi lower-cases it: {out}");
    assert!(claims_of(out["access_token"].as_str().unwrap())["cnf"]["jkt"].is_string(), "{out}");
    assert_eq!(out["gateway_status"], 200, "{out}");
    assert_eq!(out["mcp_status"], 200, "{out}");
    assert_eq!(out["mcp_result"]["structuredContent"]["status"], 200, "{out}");
    assert_eq!(
        (out["bearer_status"].as_u64(), out["bearer_code"].as_str()),
        (Some(401), Some("sender_constraint_required"))
    );
    assert_eq!(upstream.hits(), 2, "the gateway call and the MCP tool call");
    // The library asked once without a nonce, as a client does that has none yet.
    let rows =
        app.wait_for_audit(&format!("channel = 'oauth' AND attempted_client_id = '{}'", a.reg.client_id), 1).await;
    assert_eq!(rows[0]["reason"], "use_dpop_nonce");
}

#[tokio::test]
async fn a_python_client_with_joserfc_proofs_drives_an_mcp_sdk_session() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let python = installed(root().join(".tools/mcp-sdk1/bin/python"));
    let mut cmd = Command::new(python);
    cmd.arg(clients_dir().join("dpop_client.py")).arg(&app.base).arg(&a.reg.client_id).arg(&a.reg.secret.secret);
    let out = run_json(cmd).await;
    assert_eq!(
        (out["first_error"].as_str(), out["token_type"].as_str()),
        (Some("use_dpop_nonce"), Some("DPoP")),
        "{out}"
    );
    let claims = claims_of(out["access_token"].as_str().unwrap());
    assert_eq!(claims["cnf"]["jkt"], out["thumbprint"], "our thumbprint is joserfc's (RFC 7638)");
    assert_eq!(out["protocol_version"], "2025-11-25");
    assert_eq!(out["executed"]["status"], 200, "{out}");
    assert_eq!(upstream.hits(), 1);
    // initialize, initialized, tools/list, two tool calls, and the session's end: each
    // its own proof, none refused as a replay.
    assert!(out["requests_with_proofs"].as_u64().unwrap() >= 5, "{out}");
    let refused = crate::helpers::audit_rows(
        &app.database_url,
        &format!(
            "channel = 'mcp' AND decision = 'refused' AND (client_id = '{0}' OR attempted_client_id = '{0}')",
            a.reg.client_id
        ),
    )
    .await;
    assert!(
        refused.iter().all(|r| r["reason"] != "dpop_proof_replayed" && r["reason"] != "invalid_dpop_proof"),
        "{refused:?}"
    );
}
