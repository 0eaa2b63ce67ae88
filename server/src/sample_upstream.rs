//! The demo's sample bank: a small upstream answering for the Accounts, Payments and
//! Reports products, so a newcomer has something real to call through the gateway.
//! It is an ordinary HTTP service on a loopback listener of its own (demo mode starts
//! one; `portcullis sample-upstream` runs it alone), never on the portal's listener: the
//! gateway reaches it over the network like any other upstream, and nobody else does.

use axum::extract::Path;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/sample/{product}/{*path}", any(answer))
}

/// Starts the sample bank on a free loopback port; returns its base URL.
pub async fn spawn_loopback() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router::<()>()).await {
            tracing::error!(error = %e, "the sample bank stopped");
        }
    });
    Ok(base)
}

fn accounts() -> Value {
    json!([
        { "id": "acc-1001", "holder": "Ada Lovelace", "currency": "EUR", "balance": "1520.40" },
        { "id": "acc-1002", "holder": "Alan Turing", "currency": "GBP", "balance": "310.00" },
        { "id": "acc-1003", "holder": "Grace Hopper", "currency": "USD", "balance": "9801.12" }
    ])
}

async fn answer(
    method: Method,
    uri: axum::http::Uri,
    Path((product, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // What the gateway told us about the caller, echoed so tests can see it arrived.
    let identity: serde_json::Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-portcullis-") || k.as_str() == "x-request-id")
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), Value::String(v.to_str().ok()?.to_owned()))))
        .collect();
    let data = match (product.as_str(), method.as_str(), segments.as_slice()) {
        ("accounts", "GET", ["accounts"]) => accounts(),
        ("accounts", "GET", ["accounts", id]) | ("accounts", "GET", ["accounts", id, "balance"]) => {
            match accounts().as_array().and_then(|a| a.iter().find(|x| x["id"] == *id).cloned()) {
                Some(a) => a,
                None => return (StatusCode::NOT_FOUND, Json(json!({ "error": "no such account", "id": id }))),
            }
        }
        ("accounts", "POST", ["accounts"]) => json!({ "id": "acc-1004", "status": "opened" }),
        ("payments", "GET", ["payments"]) => {
            json!([{ "id": "pay-1", "from": "acc-1001", "to": "acc-1002", "amount": "25.00" }])
        }
        ("payments", "GET", ["payments", id]) => json!({ "id": id, "status": "settled" }),
        ("payments", "POST", ["payments"]) => json!({ "id": "pay-2", "status": "pending" }),
        ("reports", "GET", ["reports"]) => json!([{ "month": "2026-10" }, { "month": "2026-11" }]),
        ("reports", "GET", ["reports", month]) => {
            json!({ "month": month, "inflow": "120000.00", "outflow": "98000.00" })
        }
        _ => return (StatusCode::NOT_FOUND, Json(json!({ "error": "the sample bank has no such resource" }))),
    };
    // Whether any caller credential got through: the gateway must strip them all.
    let credentials = ["authorization", "x-api-key", "cookie"].iter().any(|h| headers.contains_key(*h));
    (
        StatusCode::OK,
        Json(json!({
            "product": product,
            "data": data,
            "seen": identity,
            "query": uri.query(),
            "caller_credentials_seen": credentials,
        })),
    )
}
