//! Cross-site request forgery protection for everything a browser session can change.
//!
//! A state-changing request is refused when the browser says it came from another site:
//! `Sec-Fetch-Site: cross-site`/`same-site`, or an `Origin` whose host is not ours. A
//! request with neither header does not come from a modern browser, so it cannot carry a
//! victim's cookies; it passes (the management API's token clients are such requests).

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::headers::{host, origin, Origin};

pub async fn verify_origin(req: Request<Body>, next: Next) -> Response {
    if is_safe(req.method()) || same_origin(&req) {
        return next.run(req).await;
    }
    tracing::warn!(method = %req.method(), path = %req.uri().path(), "cross-origin state change refused");
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/problem+json")],
        r#"{"type":"about:blank","title":"Cross-origin request refused","status":403,"detail":"This request came from another site. Submit the form from the Portcullis portal itself."}"#,
    )
        .into_response()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn same_origin(req: &Request<Body>) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match origin(headers) {
        Origin::Absent => true,
        Origin::Authority(authority) => host(headers).is_some_and(|h| authority.eq_ignore_ascii_case(h)),
        Origin::Opaque => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<Body> {
        let mut b = Request::builder().method(method).uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn origins() {
        let host = ("host", "portal.example:3000");
        assert!(same_origin(&req(Method::POST, &[host, ("origin", "http://portal.example:3000")])));
        assert!(same_origin(&req(Method::POST, &[host])));
        assert!(!same_origin(&req(Method::POST, &[host, ("origin", "http://evil.example")])));
        assert!(!same_origin(&req(Method::POST, &[host, ("origin", "null")])));
        assert!(!same_origin(&req(Method::POST, &[host, ("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&req(
            Method::POST,
            &[host, ("sec-fetch-site", "same-site"), ("origin", "http://portal.example:3000")]
        )));
        assert!(same_origin(&req(
            Method::POST,
            &[host, ("sec-fetch-site", "same-origin"), ("origin", "http://portal.example:3000")]
        )));
    }
}
