//! Forwarding an authorized request to its upstream: a pooled client, streamed bodies,
//! no redirects followed, timeouts, and headers cleaned both ways.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use std::time::Duration;

use super::refusal::Refusal;

/// Hop-by-hop headers (RFC 9110 §7.6.1) never cross a proxy.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the caller sent that the upstream must not see: its credentials, its claims
/// about who it is, and the host it called.
const CALLER_ONLY: &[&str] =
    &["host", "authorization", "x-api-key", "cookie", "x-client-id", "x-profile-id", "content-length"];

/// `timeout` bounds the whole exchange up to the response headers and body.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn forwardable(name: &HeaderName) -> bool {
    let n = name.as_str();
    !HOP_BY_HOP.contains(&n) && !CALLER_ONLY.contains(&n) && !n.starts_with("x-portcullis-") && n != "x-request-id"
}

/// Request headers for the upstream; `identity` are the `x-portcullis-*` headers that
/// say who called, set by us and never taken from the caller.
pub fn upstream_headers(incoming: &HeaderMap, request_id: &str, identity: &[(&'static str, &str)]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if forwardable(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        out.insert(HeaderName::from_static("x-request-id"), v);
    }
    for (name, value) in identity {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), v);
        }
    }
    out
}

pub async fn forward(
    client: &reqwest::Client,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: reqwest::Body,
) -> Result<Response<Body>, Refusal> {
    let upstream = client.request(method, url).headers(headers).body(body).send().await.map_err(|e| {
        if e.is_timeout() {
            Refusal::UpstreamTimeout
        } else {
            Refusal::UpstreamUnavailable
        }
    })?;
    let mut res = Response::builder().status(upstream.status());
    if let Some(h) = res.headers_mut() {
        for (name, value) in upstream.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                h.append(name.clone(), value.clone());
            }
        }
    }
    res.body(Body::from_stream(upstream.bytes_stream())).map_err(|_| Refusal::UpstreamUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_credentials_hop_by_hop_and_identity_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer x"),
            ("x-api-key", "pck_secret"),
            ("cookie", "portcullis_session=1"),
            ("connection", "close"),
            ("x-portcullis-client-id", "cl_forged"),
            ("x-request-id", "forged"),
            ("x-client-id", "cl_1"),
            ("accept", "application/json"),
            ("x-custom", "kept"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = upstream_headers(&h, "req-1", &[("x-portcullis-client-id", "cl_real")]);
        assert_eq!(out.get("x-portcullis-client-id").unwrap(), "cl_real");
        assert_eq!(out.get("x-request-id").unwrap(), "req-1");
        assert_eq!(out.get("accept").unwrap(), "application/json");
        assert_eq!(out.get("x-custom").unwrap(), "kept");
        for gone in ["authorization", "x-api-key", "cookie", "connection", "x-client-id"] {
            assert!(out.get(gone).is_none(), "{gone} must not reach the upstream");
        }
    }
}
