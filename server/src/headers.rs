//! Request headers every route reads, read one way: a header as text, the bearer token
//! of `Authorization`, `Host` and `Origin`. The gateway, both MCP surfaces, the
//! management API and the portal's CSRF check all use these, so they cannot disagree on
//! what a header says.

use axum::http::{header, HeaderMap};

/// A header's value, when it is visible ASCII text.
pub fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive, RFC 9110 §11.1).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// How an access token is presented: as a bearer token, or bound to a key the request
/// proves it holds (RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    Bearer,
    Dpop,
}

/// The access token of `Authorization: Bearer …` or `Authorization: DPoP …` (schemes
/// case-insensitive).
pub fn access_token(headers: &HeaderMap) -> Option<(TokenScheme, &str)> {
    let value = header_str(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, token) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((TokenScheme::Bearer, token.trim()))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((TokenScheme::Dpop, token.trim()))
    } else {
        None
    }
}

/// The `Host` the request was sent to (`name` or `name:port`).
pub fn host(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, header::HOST.as_str())
}

/// The web page a request says it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'h> {
    /// No `Origin`: not sent by a web page's script or form.
    Absent,
    /// An http(s) origin's authority (`name` or `name:port`).
    Authority(&'h str),
    /// Something else (`null`, another scheme, unreadable): never one of ours.
    Opaque,
}

pub fn origin(headers: &HeaderMap) -> Origin<'_> {
    let Some(value) = headers.get(header::ORIGIN) else { return Origin::Absent };
    let authority = value.to_str().ok().and_then(|o| o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")));
    match authority {
        Some(a) if !a.is_empty() && !a.contains('/') => Origin::Authority(a),
        _ => Origin::Opaque,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(&headers(&[("authorization", "bEaReR  tok ")])), Some("tok"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer")])), None);
    }

    #[test]
    fn a_token_is_bearer_or_dpop_and_nothing_else() {
        let token = |v: &str| {
            let h = headers(&[("authorization", v)]);
            access_token(&h).map(|(scheme, t)| (scheme, t.to_owned()))
        };
        assert_eq!(token("Bearer a.b.c"), Some((TokenScheme::Bearer, "a.b.c".into())));
        assert_eq!(token("dpop a.b.c"), Some((TokenScheme::Dpop, "a.b.c".into())));
        assert_eq!(token("DPoP  a.b.c "), Some((TokenScheme::Dpop, "a.b.c".into())));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("DPoPx abc"), None);
    }

    #[test]
    fn an_origin_is_an_http_authority_or_never_ours() {
        assert_eq!(origin(&headers(&[])), Origin::Absent);
        assert_eq!(
            origin(&headers(&[("origin", "https://portal.example:3000")])),
            Origin::Authority("portal.example:3000")
        );
        assert_eq!(origin(&headers(&[("origin", "http://127.0.0.1")])), Origin::Authority("127.0.0.1"));
        for opaque in ["null", "chrome-extension://abc", "https://", "https://a.example/path", "portal.example"] {
            assert_eq!(origin(&headers(&[("origin", opaque)])), Origin::Opaque, "{opaque}");
        }
    }
}
