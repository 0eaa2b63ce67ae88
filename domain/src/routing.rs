//! Matching a gateway request path to a product's endpoint.
//!
//! The gateway authorizes an endpoint, so the path it forwards must be exactly the one
//! it authorized. This module therefore parses the caller's path into decoded segments,
//! refuses every form that could mean something else to an upstream (`..`, `.`, empty
//! segments from `//`, encoded `/` or `\`, control characters, `;` path parameters that
//! Java and other stacks strip or act on — `..;/` — and `%` left after decoding, which a
//! second decoder would turn into any of these), matches the segments
//! case-sensitively against the endpoint templates, and rebuilds the path the upstream
//! gets from the segments, canonically encoded. A single trailing slash is dropped.
//!
//! The templates it matches against were checked when they were published:
//! [`http_method`] and [`path_template`] validate an endpoint's method and path
//! template, whether an admin typed it or an OpenAPI import read it.

use std::fmt;

use crate::DomainError;

/// Why a path cannot be routed. Every variant is a 404 for the caller: there is no
/// endpoint at a path we refuse to interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Empty,
    EmptySegment,
    DotSegment,
    EncodedSeparator,
    BadEncoding,
    ControlCharacter,
    /// `;` (RFC 3986 §3.3 path parameters), plain or encoded.
    PathParameter,
    /// A `%` that survives decoding: double encoding, such as `%252e%252e`.
    DoubleEncoding,
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Empty => "the path is empty",
            PathError::EmptySegment => "the path has an empty segment (//)",
            PathError::DotSegment => "the path has a . or .. segment",
            PathError::EncodedSeparator => "the path has an encoded / or \\",
            PathError::BadEncoding => "the path has invalid percent-encoding",
            PathError::ControlCharacter => "the path has a control character",
            PathError::PathParameter => "the path has a ; parameter",
            PathError::DoubleEncoding => "the path is encoded twice",
            PathError::TooLong => "the path is too long",
        })
    }
}

const MAX_PATH: usize = 2048;

/// A path split into decoded segments, safe to match and to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    segments: Vec<String>,
}

impl CanonicalPath {
    /// Parses the path after `/gw/{product}` (with or without its leading `/`).
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        if raw.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(PathError::Empty);
        }
        let mut segments = Vec::new();
        for raw_segment in trimmed.split('/') {
            if raw_segment.is_empty() {
                return Err(PathError::EmptySegment);
            }
            let decoded = percent_decode(raw_segment)?;
            if decoded.contains('/') || decoded.contains('\\') {
                return Err(PathError::EncodedSeparator);
            }
            if decoded == "." || decoded == ".." {
                return Err(PathError::DotSegment);
            }
            if decoded.chars().any(char::is_control) {
                return Err(PathError::ControlCharacter);
            }
            if decoded.contains(';') {
                return Err(PathError::PathParameter);
            }
            if decoded.contains('%') {
                return Err(PathError::DoubleEncoding);
            }
            segments.push(decoded);
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path to send upstream: `/` + segments, each percent-encoded canonically.
    pub fn to_upstream(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        out
    }
}

/// Decodes a segment strictly: every `%` must start a two-digit escape (the decoder
/// would pass a stray one through) and the result must be UTF-8.
fn percent_decode(segment: &str) -> Result<String, PathError> {
    let escapes_whole = segment
        .split('%')
        .skip(1)
        .all(|after| after.as_bytes().get(..2).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_whole {
        return Err(PathError::BadEncoding);
    }
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| PathError::BadEncoding)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Param,
}

/// An endpoint's path template, compiled for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles a stored template such as `/accounts/{id}` (already validated when it was
    /// published).
    pub fn compile(template: &str) -> Self {
        let parts = template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| if s.starts_with('{') && s.ends_with('}') { Part::Param } else { Part::Literal(s.to_owned()) })
            .collect();
        Self { parts }
    }

    /// `Some(score)` when the path fits: the number of literal segments, so that
    /// `/accounts/search` wins over `/accounts/{id}` for the path `/accounts/search`.
    pub fn score(&self, path: &CanonicalPath) -> Option<usize> {
        if self.parts.len() != path.segments.len() {
            return None;
        }
        let mut literals = 0;
        for (part, seg) in self.parts.iter().zip(&path.segments) {
            match part {
                Part::Literal(l) if l == seg => literals += 1,
                Part::Literal(_) => return None,
                Part::Param => {}
            }
        }
        Some(literals)
    }
}

/// An HTTP method, upper-cased; only the methods an API operation can have.
pub fn http_method(raw: &str) -> crate::error::Result<String> {
    let m = raw.trim().to_ascii_uppercase();
    match m.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => Ok(m),
        _ => Err(DomainError::Invalid(format!("`{raw}` is not an HTTP method."))),
    }
}

/// `/accounts/{id}`: starts with `/`, segments of URL-safe characters or `{name}`.
pub fn path_template(raw: &str) -> crate::error::Result<String> {
    let p = raw.trim();
    let bad = || DomainError::Invalid(format!("`{p}` is not a path template like /accounts/{{id}}."));
    if !p.starts_with('/') || p.contains("//") || p.len() > 512 {
        return Err(bad());
    }
    for seg in p.split('/').skip(1) {
        let param = seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2;
        let literal =
            seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) && seg != "." && seg != "..";
        if !(param || literal) {
            return Err(bad());
        }
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> Result<CanonicalPath, PathError> {
        CanonicalPath::parse(raw)
    }

    #[test]
    fn canonical_paths_round_trip() {
        assert_eq!(p("/accounts/acc-1").unwrap().to_upstream(), "/accounts/acc-1");
        assert_eq!(p("accounts/acc-1/").unwrap().to_upstream(), "/accounts/acc-1", "one trailing slash is dropped");
        assert_eq!(p("/accounts/a%20b").unwrap().to_upstream(), "/accounts/a%20b");
        assert_eq!(p("/accounts/%61cc").unwrap().to_upstream(), "/accounts/acc", "needless escapes are normalised");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(p("/accounts//acc-1"), Err(PathError::EmptySegment));
        assert_eq!(p("/accounts/acc-1//"), Err(PathError::EmptySegment));
        assert_eq!(p("/accounts/../payments"), Err(PathError::DotSegment));
        assert_eq!(p("/accounts/%2e%2e/payments"), Err(PathError::DotSegment));
        assert_eq!(p("/accounts/%2E"), Err(PathError::DotSegment));
        assert_eq!(p("/accounts/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(p("/accounts/a%5Cb"), Err(PathError::EncodedSeparator));
        assert_eq!(p("/accounts/%zz"), Err(PathError::BadEncoding));
        assert_eq!(p("/accounts/%"), Err(PathError::BadEncoding));
        assert_eq!(p("/accounts/%ff"), Err(PathError::BadEncoding));
        assert_eq!(p("/accounts/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(p("/accounts/..;/admin"), Err(PathError::PathParameter));
        assert_eq!(p("/accounts/.;x=1"), Err(PathError::PathParameter));
        assert_eq!(p("/accounts;jsessionid=1/acc-1"), Err(PathError::PathParameter));
        assert_eq!(p("/accounts/acc-1%3Bx=1"), Err(PathError::PathParameter));
        assert_eq!(p("/accounts/%252e%252e/admin"), Err(PathError::DoubleEncoding));
        assert_eq!(p("/accounts/%25"), Err(PathError::DoubleEncoding));
        assert_eq!(p("/"), Err(PathError::Empty));
        assert_eq!(p(&"a/".repeat(2000)), Err(PathError::TooLong));
    }

    #[test]
    fn templates_match_case_sensitively_and_prefer_literals() {
        let by_id = Template::compile("/accounts/{id}");
        let search = Template::compile("/accounts/search");
        let path = p("/accounts/search").unwrap();
        assert_eq!(by_id.score(&path), Some(1));
        assert_eq!(search.score(&path), Some(2));
        assert_eq!(search.score(&p("/Accounts/search").unwrap()), None);
        assert_eq!(by_id.score(&p("/accounts").unwrap()), None);
        assert_eq!(by_id.score(&p("/accounts/1/balance").unwrap()), None);
    }
}
