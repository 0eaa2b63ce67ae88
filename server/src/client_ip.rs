//! Whose address a request comes from. Behind a load balancer every connection comes
//! from the balancer; only a proxy the operator lists in `--trusted-proxies` is believed
//! about the client it forwards for (its `X-Forwarded-For`). The address decided here is
//! the one per-address limits use and audit rows record, on every route.
//!
//! The rule (as nginx's `real_ip_recursive`): walk `X-Forwarded-For` from the right,
//! skipping trusted proxies; the first address that is not one is the client. A caller
//! that is not a trusted proxy is the client, whatever it claims.

use axum::http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a connection from `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            // An unreadable entry ends the walk: what lies left of it is not vouched for.
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// What the gateway tells every upstream about itself: the scheme and host people reach
/// it at, in the forms `Forwarded` and `X-Forwarded-*` use. Made once, at start.
#[derive(Debug, Clone)]
pub struct PublicOrigin {
    forwarded_suffix: String,
    proto: HeaderValue,
    host: HeaderValue,
}

impl PublicOrigin {
    pub fn new(proto: &str, host: &str) -> Self {
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
        Self { forwarded_suffix: format!(";proto={proto};host=\"{host}\""), proto: value(proto), host: value(host) }
    }

    /// The headers that tell an upstream where a request came from (RFC 7239 and the
    /// de-facto `X-Forwarded-*`), set by the gateway alone.
    pub fn forwarded_headers(&self, client: IpAddr) -> [(&'static str, Option<HeaderValue>); 4] {
        let node = match client {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        [
            ("forwarded", HeaderValue::from_str(&format!("for={node}{}", self.forwarded_suffix)).ok()),
            ("x-forwarded-for", HeaderValue::from_str(&client.to_string()).ok()),
            ("x-forwarded-proto", Some(self.proto.clone())),
            ("x-forwarded-host", Some(self.host.clone())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_about_its_own_hop() {
        let lb: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = TrustedProxies::new(vec!["10.0.0.0/24".parse().unwrap()]);
        assert_eq!(trusted.client(lb, &xff("203.0.113.9")).to_string(), "203.0.113.9");
        // A client that forges the header is named by what the proxy appended.
        assert_eq!(trusted.client(lb, &xff("198.51.100.1, 203.0.113.9")).to_string(), "203.0.113.9");
        // Two trusted hops are skipped.
        assert_eq!(trusted.client(lb, &xff("203.0.113.9, 10.0.0.7")).to_string(), "203.0.113.9");
        assert_eq!(trusted.client(lb, &xff("not-an-ip, 10.0.0.7")).to_string(), "10.0.0.7");
        // Anyone else is the client, whatever it claims.
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(trusted.client(stranger, &xff("203.0.113.9")), stranger);
        assert_eq!(TrustedProxies::default().client(lb, &xff("203.0.113.9")), lb);
    }
}
