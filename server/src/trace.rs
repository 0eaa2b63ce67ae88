//! W3C Trace Context (`traceparent`, `tracestate`): every request belongs to a trace —
//! the caller's when it sends a valid `traceparent`, a new one otherwise. The trace id is
//! recorded in the request's audit row, and the upstream is told the trace with the
//! gateway as the parent, so an operator can follow one call from the agent through
//! Portcullis into the upstream's own logs.

use axum::http::{HeaderMap, HeaderValue};
use rand::RngCore;

/// The trace a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 lowercase hex digits, never all zero.
    pub trace_id: String,
    /// The caller's trace flags (`01`: sampled), or `00` for a trace started here.
    flags: String,
    /// The caller's `tracestate`, kept only with a valid `traceparent` (the spec drops
    /// it otherwise).
    state: Option<HeaderValue>,
}

impl Trace {
    /// The caller's trace, or a new one when it sent none or an invalid one.
    pub fn of(headers: &HeaderMap) -> Self {
        Self::callers(headers).unwrap_or_else(|| Self::started(hex::encode(random::<16>())))
    }

    /// The trace a request's row recorded: the caller's if that is the one, else the
    /// one started for it.
    pub fn recorded(headers: &HeaderMap, trace_id: &str) -> Self {
        Self::callers(headers).filter(|t| t.trace_id == trace_id).unwrap_or_else(|| Self::started(trace_id.into()))
    }

    fn callers(headers: &HeaderMap) -> Option<Self> {
        let (trace_id, flags) = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse)?;
        Some(Self {
            trace_id: trace_id.to_owned(),
            flags: flags.to_owned(),
            state: headers.get("tracestate").filter(|v| v.len() <= 512).cloned(),
        })
    }

    fn started(trace_id: String) -> Self {
        Self { trace_id, flags: "00".into(), state: None }
    }

    /// The headers for the upstream call: the same trace, a fresh parent id (the
    /// gateway's own span), the caller's flags and state.
    pub fn upstream_headers(&self) -> [(&'static str, Option<HeaderValue>); 2] {
        let parent = format!("00-{}-{}-{}", self.trace_id, hex::encode(random::<8>()), self.flags);
        [("traceparent", HeaderValue::from_str(&parent).ok()), ("tracestate", self.state.clone())]
    }
}

/// `version-traceid-parentid-flags` of version 00 (or a later version's first four
/// fields, as the spec asks); `None` for anything malformed or all-zero.
fn parse(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = lower_hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && lower_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && lower_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2);
    valid.then_some((trace_id, flags))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    while bytes.iter().all(|b| *b == 0) {
        rand::thread_rng().fill_bytes(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_parents_are_kept_and_anything_else_starts_a_new_trace() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(parse(ok), Some(("0af7651916cd43dd8448eb211c80319c", "01")));
        // A later version may add fields; version 00 may not.
        assert!(parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra").is_some());
        for bad in [
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c8031\u{0}c-b7ad6b7169203331-01",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
