//! Forwarding an authorized request to its upstream: a pooled client, streamed bodies,
//! no redirects followed, timeouts, and headers cleaned both ways.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use std::time::Duration;

use super::refusal::Refusal;
use super::upstream_tls::{UpstreamTls, UpstreamTlsError, UpstreamTlsProfiles};
use std::collections::HashMap;

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

/// What a caller may send on to an upstream: content negotiation, conditional and range
/// requests, the user agent and trace context. Anything else needs the product to
/// declare it (an OpenAPI header parameter of the endpoint).
const FORWARDED: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "content-encoding",
    "content-language",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "prefer",
    "range",
    "user-agent",
];

/// Never forwarded, declared or not: the caller's credentials and identity claims, what
/// the gateway sets itself, and the headers upstream stacks read as a different method
/// or URL than the one authorized.
fn never_forwarded(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
        || name.starts_with("x-portcullis-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("proxy-")
        || matches!(
            name,
            "host"
                | "authorization"
                | "cookie"
                | "x-api-key"
                | "dpop"
                | "client-cert"
                | "client-cert-chain"
                | "x-client-id"
                | "x-profile-id"
                | "x-request-id"
                | "content-length"
                | "expect"
                | "forwarded"
                | "x-real-ip"
                | "x-http-method-override"
                | "x-http-method"
                | "x-method-override"
                | "x-original-method"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-override-url"
        )
}

/// `timeout` bounds the whole exchange up to the response headers and body.
fn client(timeout: Duration, tls: &UpstreamTls) -> reqwest::Result<reqwest::Client> {
    tls.apply(reqwest::Client::builder())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

/// One pooled client per upstream TLS profile, and one for products that name none, all
/// built at start: a request only picks one.
pub struct Upstreams {
    default: reqwest::Client,
    named: HashMap<String, reqwest::Client>,
}

impl Upstreams {
    pub fn new(timeout: Duration, tls: &UpstreamTlsProfiles) -> Result<Self, UpstreamTlsError> {
        let failed = |profile: &str, e: reqwest::Error| UpstreamTlsError::Client {
            profile: profile.to_owned(),
            reason: e.to_string(),
        };
        let default = client(timeout, &tls.default).map_err(|e| failed("(default)", e))?;
        let mut named = HashMap::with_capacity(tls.named.len());
        for (name, settings) in &tls.named {
            named.insert(name.as_str().to_owned(), client(timeout, settings).map_err(|e| failed(name.as_str(), e))?);
        }
        Ok(Self { default, named })
    }

    /// The client for a product's `upstream_tls`. A name this server lacks (the product
    /// was set up through a replica configured differently) is refused, never replaced
    /// by the default: that would trust other roots, or present no certificate.
    pub fn pick(&self, upstream_tls: Option<&str>) -> Result<&reqwest::Client, Refusal> {
        match upstream_tls {
            None => Ok(&self.default),
            Some(name) => {
                self.named.get(name).ok_or_else(|| Refusal::UpstreamTlsProfileMissing { profile: name.to_owned() })
            }
        }
    }
}

/// Request headers for the upstream: the caller's allowed ones (and those the endpoint
/// declares), then what the gateway sets — the request id, where the request came from,
/// and the `x-portcullis-*` identity of the caller — never taken from the caller.
pub fn upstream_headers(
    incoming: &HeaderMap,
    declared: &[String],
    request_id: &str,
    set: impl IntoIterator<Item = (&'static str, Option<HeaderValue>)>,
) -> HeaderMap {
    // Sized once: what the caller sent plus what the gateway adds, so it never regrows.
    let mut out = HeaderMap::with_capacity(incoming.len() + 12);
    for (name, value) in incoming {
        let n = name.as_str();
        if !never_forwarded(n) && (FORWARDED.contains(&n) || declared.iter().any(|d| d == n)) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        out.insert(HeaderName::from_static("x-request-id"), v);
    }
    for (name, value) in set {
        if let Some(v) = value {
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
        } else if let Some(reason) = super::upstream_tls::handshake_failure(&e) {
            Refusal::UpstreamTls { reason }
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
    fn only_allowed_and_declared_headers_are_forwarded_and_the_gateway_sets_its_own() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer x"),
            ("x-api-key", "pck_secret"),
            ("cookie", "portcullis_session=1"),
            ("connection", "close"),
            ("x-portcullis-client-id", "cl_forged"),
            ("x-request-id", "forged"),
            ("x-client-id", "cl_1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-http-method-override", "DELETE"),
            ("x-original-url", "/admin"),
            ("accept", "application/json"),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ("x-custom", "undeclared"),
            ("x-tenant", "declared"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let declared = vec!["x-tenant".to_owned(), "x-http-method-override".to_owned()];
        let set = [
            ("x-portcullis-client-id", Some(HeaderValue::from_static("cl_real"))),
            ("x-forwarded-for", Some(HeaderValue::from_static("203.0.113.9"))),
        ];
        let out = upstream_headers(&h, &declared, "req-1", set);
        assert_eq!(out.get("x-portcullis-client-id").unwrap(), "cl_real");
        assert_eq!(out.get("x-forwarded-for").unwrap(), "203.0.113.9");
        assert_eq!(out.get("x-request-id").unwrap(), "req-1");
        assert_eq!(out.get("accept").unwrap(), "application/json");
        // Trace context is the gateway's to set (see `trace`), never copied from the caller.
        assert!(out.get("traceparent").is_none());
        assert_eq!(out.get("x-tenant").unwrap(), "declared");
        for gone in [
            "authorization",
            "x-api-key",
            "cookie",
            "connection",
            "x-client-id",
            "forwarded",
            "x-http-method-override",
            "x-original-url",
            "x-custom",
        ] {
            assert!(out.get(gone).is_none(), "{gone} must not reach the upstream");
        }
    }
}
