//! DPoP (RFC 9449) at the token endpoint, the gateway and `/mcp`: reading the proof a
//! request carries, checking it (the rules are the domain's, `enforcement::check_proof`)
//! and making sure it is used once across every replica.
//!
//! The one-use check remembers a proof in this process and, with `--redis-url`, in
//! Redis (`SET NX`, for as long as the proof could be accepted), so a proof used on one
//! replica is refused on every other. If Redis cannot answer in time, each replica
//! still refuses what it has seen itself, as the shared rate limits do; a proof is only
//! remembered once its key is proven to be the token's (or, at the token endpoint, once
//! the client authenticated), so nobody can fill that memory anonymously.

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use portcullis_domain::enforcement::{
    Enforcement, Proof, ProofCheck, ProofError, DPOP_ALGS, PROOF_LEEWAY_SECS, PROOF_MAX_AGE_SECS,
};
use std::time::Duration;

use crate::shared_limits::SharedLimits;

/// The header a proof travels in, and the one a server nonce is given in.
pub const DPOP: &str = "dpop";
pub const DPOP_NONCE: &str = "dpop-nonce";

/// How a request proves possession of the key its DPoP-bound token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Possession {
    /// With its own `DPoP` header, made for this method and the URL of this request's
    /// path: a call to `/gw`, or the HTTP request to `/mcp`. (The request's own method
    /// and URI, shared, not copied: bearer calls never read them.)
    Proof { method: Method, uri: Uri },
    /// Already proven, with this key, by the route handing the call over: an MCP tool
    /// call, whose proof was made for its POST to `/mcp` and checked there.
    Proven { jkt: Option<String> },
}

#[derive(Clone)]
pub struct Proofs {
    state: Enforcement,
    shared: Option<SharedLimits>,
    /// The public URL requests reach us at, which a proof's `htu` names.
    public_url: String,
}

impl Proofs {
    pub fn new(state: Enforcement, shared: Option<SharedLimits>, public_url: &str) -> Self {
        Self { state, shared, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// The URL a request for `path` reached, as its proof must name it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// The proof a request carries: `None` without one, refused when there are several.
    pub fn presented(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
        let mut proofs = headers.get_all(DPOP).iter();
        let first = proofs.next();
        if proofs.next().is_some() {
            return Err(ProofError::Several);
        }
        first.map(|v| v.to_str().map_err(|_| ProofError::Malformed)).transpose()
    }

    /// Checks the request's proof against what it must be made for, then that it is its
    /// first use. For the token endpoint, where the client's authentication happens
    /// between the two, use `check` and `first_use` apart.
    pub fn check(&self, proof: &str, check: &ProofCheck<'_>) -> Result<Proof, ProofError> {
        self.state.check_proof(proof, check)
    }

    /// Whether this proof is used for the first time, here and (with Redis) anywhere.
    pub async fn first_use(&self, proof: &Proof) -> bool {
        let remembered = Duration::from_secs((PROOF_MAX_AGE_SECS + PROOF_LEEWAY_SECS + 5).unsigned_abs());
        let first_here = self.state.first_use_local(proof);
        SharedLimits::first_everywhere(self.shared.as_ref(), first_here, &proof.replay_key, remembered).await
    }

    /// That a request holds the key `bound` (the token's `cnf.jkt`), as `possession`
    /// says it shows it; `access_token` is the token its proof must name.
    pub async fn prove(
        &self,
        headers: &HeaderMap,
        possession: &Possession,
        access_token: &str,
        bound: Option<&str>,
    ) -> Result<(), ProofError> {
        match possession {
            Possession::Proven { jkt } => match (jkt.as_deref(), bound) {
                (Some(proven), Some(bound)) if proven == bound => Ok(()),
                _ => Err(ProofError::KeyMismatch),
            },
            Possession::Proof { method, uri } => {
                let text = Self::presented(headers)?.ok_or(ProofError::Missing)?;
                let url = self.url(uri.path());
                let check = ProofCheck {
                    method: method.as_str(),
                    url: &url,
                    access_token: Some(access_token),
                    nonce_required: false,
                };
                let proof = self.check(text, &check)?;
                if bound != Some(proof.jkt.as_str()) {
                    return Err(ProofError::KeyMismatch);
                }
                if !self.first_use(&proof).await {
                    return Err(ProofError::Replayed);
                }
                Ok(())
            }
        }
    }

    /// A fresh server nonce, for a `DPoP-Nonce` header.
    pub fn nonce(&self) -> HeaderValue {
        HeaderValue::from_str(&self.state.nonces().issue(self.state.now()))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The `DPoP` challenge of a 401 (RFC 9449 §7.1), with the algorithms accepted.
pub fn challenge(error: &str, description: &str) -> String {
    format!(
        r#"DPoP realm="portcullis", error="{error}", error_description="{description}", algs="{}""#,
        DPOP_ALGS.join(" ")
    )
}
