//! The portal page's Content Security Policy: scripts only from this origin or inline
//! with this response's nonce (the hydration script Leptos writes carries it),
//! WebAssembly compiled, no framing, no plugins, forms posted only here. Inline style
//! attributes are allowed: they cannot run code.
//!
//! The nonce is made here, before the page renders, and handed to Leptos (see
//! `application`'s portal context), so the header is set by the same code that made
//! the value the page carries. It used to be set from inside the render through
//! Leptos' `ResponseOptions`, and a page then sometimes arrived with the default
//! `default-src 'none'` instead (seen under HTTP/2 when the browser abandoned the
//! previous page's wasm download): its stylesheet and wasm were refused, and it never
//! became interactive.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use rand::RngCore;

/// This request's script nonce: 128 random bits, base64url.
#[derive(Clone, Debug)]
pub struct PageNonce(pub String);

impl PageNonce {
    fn fresh() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// The policy of a page whose inline scripts carry `nonce`.
pub fn policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Gives the request a nonce and an HTML answer its policy. Anything else (JSON, files,
/// redirects) keeps what it set, or the server's `default-src 'none'`.
pub async fn content_security_policy(mut req: Request, next: Next) -> Response {
    let nonce = PageNonce::fresh();
    req.extensions_mut().insert(nonce.clone());
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html && !res.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(value) = HeaderValue::from_str(&policy(&nonce.0)) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    res
}
