//! Who is calling: the one authentication of `/gw` and `/mcp`, against the policy
//! snapshot (no database query).
//!
//! Credentials come in headers: `Authorization: Bearer <access token>`, `Authorization:
//! DPoP <access token>` with a `DPoP` proof of the key the token is bound to (RFC 9449;
//! a bound token is never accepted as a bearer token), or `X-API-Key`. A token bound to a
//! TLS client certificate (RFC 8705) is accepted only with that certificate.
//! A product may accept an API key as `?api_key=`; every other credential in a URL is
//! refused (RFC 6750 §5.3: URLs end up in logs, proxies and histories). The query is
//! parsed once, with its names decoded, so `api%5Fkey` is `api_key` for refusal,
//! acceptance and stripping alike.

use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;
use portcullis_domain::audit_event::RequestEvent;
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::enforcement::{AccessClaims, Confirmation, TokenError};
use portcullis_domain::enforcement::{CredentialEntry, Inactive, ProfileEntry, Snapshot};
use portcullis_domain::enforcement::{ExternalToken, IssuerEntry};
use portcullis_domain::model::{CredentialKind, SenderConstraint};
use std::borrow::Cow;
use std::sync::Arc;

use super::{Gateway, Refusal};
use crate::dpop::Possession;
use crate::headers::{access_token, header_str, TokenScheme};
use crate::tls::ClientCertificate;

/// What a request shows it holds, for a token bound to something (RFC 7800 `cnf`).
#[derive(Debug, Clone)]
pub struct Held {
    /// Its DPoP key: a proof of its own, or one `/mcp` already checked.
    pub dpop: Possession,
    /// The TLS client certificate of its connection (or of its proxy's `Client-Cert`).
    pub certificate: Option<ClientCertificate>,
}

/// Who called, once authenticated.
pub struct Caller<'s> {
    pub credential: &'s CredentialEntry,
    pub profile: &'s ProfileEntry,
    /// The access token's verified claims, whose scopes may be narrower than the
    /// grants; `None` for an API key, which carries the profile's grants as they are.
    pub(super) token: Option<Arc<AccessClaims>>,
    /// The certificate the request came with, when its token is bound to it.
    pub certificate: Option<ClientCertificate>,
    /// For a delegated token (RFC 8693), the other parties: its subject and earlier
    /// actors, each of which must be granted what the call needs.
    pub parties: Vec<&'s ProfileEntry>,
    /// For a token from a trusted issuer (federation), what it said; its credential is
    /// the identity's link to the profile, and it carries the profile's grants as they are.
    pub external: Option<Arc<ExternalToken>>,
}

impl Caller<'_> {
    /// The DPoP key this request proved it holds: its token is bound to one, and a bound
    /// token authenticates only with a proof of it.
    pub fn proven_key(&self) -> Option<&str> {
        let external = self.external.as_ref().and_then(|e| e.cnf.as_ref()).and_then(|c| c.jkt.as_deref());
        self.token.as_deref().and_then(|t| t.dpop_jkt()).or(external)
    }

    /// Writes who called into a request's row: client, profile, credential, and the
    /// person a Test access token acts for.
    pub fn stamp(&self, event: &mut RequestEvent) {
        event.client_id = Some(AuditText::new(&self.profile.client_id, cap::ID));
        event.profile_id = Some(AuditText::new(&self.profile.id, cap::ID));
        event.client_type = Some(self.profile.client_kind);
        event.credential_id = Some(AuditText::new(&self.credential.id, cap::ID));
        match self.token.as_ref().and_then(|t| t.subject.as_ref().map(|s| (t, s))) {
            Some((token, subject)) => {
                event.subject_id = Some(AuditText::new(&subject.client_id, cap::ID));
                event.actor_chain = token.actor_chain().map(|c| AuditText::new(&c, cap::ENDPOINT));
            }
            // Otherwise `act` names the person a Test access token acts for.
            None => {
                event.actor_user_id =
                    self.token.as_ref().and_then(|t| t.act.as_ref()).map(|a| AuditText::new(&a.sub, cap::ID));
            }
        }
        let binding = self.token.as_ref().and_then(|t| t.cnf.as_ref());
        event.sender_key = binding
            .or(self.external.as_ref().and_then(|e| e.cnf.as_ref()))
            .map(|cnf| AuditText::new(&cnf.label(), cap::ID));
        event.task_id = self.token.as_ref().and_then(|t| t.task()).map(|t| AuditText::new(&t.task_id, cap::ID));
    }
}

/// Query parameters that would carry a credential.
const CREDENTIAL_PARAMS: [&str; 4] = ["access_token", "api_key", "apikey", "client_secret"];

/// The query parameter a product may accept an API key in, when it opts in.
const QUERY_KEY_PARAM: &str = "api_key";

fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// A query string, split once into its parameters, names decoded.
pub struct Query<'q> {
    /// (decoded name, the parameter as the caller wrote it)
    params: Vec<(Cow<'q, str>, &'q str)>,
}

impl<'q> Query<'q> {
    pub fn parse(raw: Option<&'q str>) -> Self {
        let params = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| (decode(p.split('=').next().unwrap_or("")), p))
            .collect();
        Self { params }
    }

    /// Whether the query carries a credential; `api_key` is allowed where the product
    /// accepts keys in the URL.
    fn credential(&self, query_key_allowed: bool) -> bool {
        self.params.iter().any(|(name, _)| {
            CREDENTIAL_PARAMS.iter().any(|c| name.eq_ignore_ascii_case(c))
                && !(query_key_allowed && name == QUERY_KEY_PARAM)
        })
    }

    /// The API key of the first `api_key` parameter.
    fn key(&self) -> Option<String> {
        let (_, raw) = self.params.iter().find(|(name, _)| name == QUERY_KEY_PARAM)?;
        Some(decode(raw.split_once('=').map_or("", |(_, v)| v)).into_owned())
    }

    /// The query the upstream gets: as the caller wrote it, without `api_key`
    /// parameters (a key never travels upstream). `None` when nothing is left.
    pub fn upstream(&self) -> Option<String> {
        let kept: Vec<&str> =
            self.params.iter().filter(|(name, _)| name != QUERY_KEY_PARAM).map(|(_, raw)| *raw).collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }
}

impl Gateway {
    /// Who the request's credential belongs to, checked against the snapshot: the same
    /// answer for `/gw` and for `/mcp` (which never accepts a key in the URL). A bound
    /// token must come with what it is bound to: a proof of its DPoP key, its certificate.
    pub async fn authenticate<'s>(
        &self,
        snap: &'s Snapshot,
        headers: &HeaderMap,
        query: &Query<'_>,
        query_key_allowed: bool,
        held: &Held,
        now: i64,
    ) -> Result<Caller<'s>, Refusal> {
        if query.credential(query_key_allowed) {
            return Err(Refusal::CredentialInQuery);
        }
        let in_query = if query_key_allowed { query.key() } else { None };
        let api_key = header_str(headers, "x-api-key").or(in_query.as_deref());
        let mut parties = Vec::new();
        let (credential, profile, token) = match (api_key, access_token(headers)) {
            (Some(key), _) => {
                // Lookup by keyed hash: what is compared is a hash, which leaks nothing usable.
                let (credential, rekey) = self
                    .state
                    .hasher()
                    .find(key.trim(), |hash| snap.credentials.get(hash))
                    .ok_or(Refusal::UnknownCredential)?;
                if credential.kind != CredentialKind::ApiKey {
                    // A client secret is for the token endpoint, never a bearer of its own.
                    return Err(Refusal::UnknownCredential);
                }
                if now >= credential.expires_at {
                    return Err(Refusal::ExpiredCredential);
                }
                let profile = snap.profiles.get(&credential.profile_id).ok_or(Refusal::UnknownCredential)?;
                if let Some(rekey) = rekey {
                    // Made with the previous server secret: re-keyed off the request path.
                    self.state.request_rekey(&credential.id, rekey);
                }
                (credential, profile, None)
            }
            (None, Some((scheme, token))) => {
                let claims = match self.state.verify_access_token(&self.tokens, token) {
                    Ok(claims) => claims,
                    // Not one of ours: perhaps one of a trusted issuer's (federation).
                    Err(ours) => {
                        let issuer = snap.trusted_issuer_of(token).ok_or(Refusal::InvalidToken(ours))?;
                        return self.federated(snap, issuer, headers, held, scheme, token, now).await;
                    }
                };
                // A token lives no longer than the credential it was obtained with, and
                // not while its client is stopped: the one rule introspection uses too.
                let (credential, profile) = snap.token_holder(&claims, now).map_err(|inactive| match inactive {
                    Inactive::Revoked => Refusal::InvalidToken(TokenError::Revoked),
                    Inactive::Stopped(stopped) => Refusal::stopped(stopped),
                })?;
                self.check_binding(headers, held, scheme, token, claims.cnf.as_ref()).await?;
                // Live, every one of them: `token_holder` checked.
                parties = snap.parties(&claims, now).map_err(|_| Refusal::InvalidToken(TokenError::Revoked))?;
                (credential, profile, Some(claims))
            }
            (None, None) => return Err(Refusal::MissingCredential),
        };
        let binding = token.as_ref().and_then(|t| t.cnf.as_ref());
        let mut caller = Caller { credential, profile, token: None, certificate: None, parties, external: None };
        self.admit(&mut caller, headers, held, binding)?;
        caller.token = token;
        Ok(caller)
    }

    /// What every credential must pass once its holder is known: the profile's sender
    /// constraint, the identity headers, a client not stopped. Keeps the certificate of a
    /// certificate-bound call.
    fn admit(
        &self,
        caller: &mut Caller<'_>,
        headers: &HeaderMap,
        held: &Held,
        binding: Option<&Confirmation>,
    ) -> Result<(), Refusal> {
        let profile = caller.profile;
        let constraint = profile.sender_constraint;
        if !binding.map_or(constraint == SenderConstraint::None, |cnf| cnf.satisfies(constraint)) {
            return Err(Refusal::ProfileRequiresBinding(constraint));
        }
        let claims_ok = header_str(headers, "x-client-id").is_none_or(|c| c == profile.client_id)
            && header_str(headers, "x-profile-id").is_none_or(|p| p == profile.id);
        if !claims_ok {
            return Err(Refusal::IdentityMismatch);
        }
        if let Some(stopped) = profile.stopped() {
            return Err(Refusal::stopped(stopped));
        }
        if binding.is_some_and(|cnf| cnf.x5t_s256.is_some()) {
            caller.certificate = held.certificate.clone();
        }
        Ok(())
    }

    /// A bound token must come with what it is bound to.
    async fn check_binding(
        &self,
        headers: &HeaderMap,
        held: &Held,
        scheme: TokenScheme,
        token: &str,
        cnf: Option<&Confirmation>,
    ) -> Result<(), Refusal> {
        let jkt = cnf.and_then(|c| c.jkt.as_deref());
        match scheme {
            // Whoever copied a bound token still lacks the key: RFC 9449 §7.2.
            TokenScheme::Bearer if jkt.is_some() => return Err(Refusal::BoundTokenAsBearer),
            TokenScheme::Bearer => {}
            TokenScheme::Dpop => {
                self.proofs.prove(headers, &held.dpop, token, jkt).await.map_err(Refusal::InvalidProof)?;
            }
        }
        // Whoever copied a certificate-bound token still lacks the certificate's key,
        // which the TLS handshake proved this caller holds (RFC 8705 §3).
        if let Some(bound) = cnf.and_then(|c| c.x5t_s256.as_deref()) {
            match &held.certificate {
                Some(c) if c.thumbprint() == bound => {}
                Some(_) => return Err(Refusal::CertificateMismatch),
                None => return Err(Refusal::CertificateRequired),
            }
        }
        Ok(())
    }

    /// A token from a trusted issuer: verified with the issuer's keys (fetched again,
    /// at a bounded rate, when it names one the cache lacks), then taken as the profile
    /// its identity is linked to, with that profile's grants as they are.
    #[allow(clippy::too_many_arguments)]
    async fn federated<'s>(
        &self,
        snap: &'s Snapshot,
        issuer: &'s IssuerEntry,
        headers: &HeaderMap,
        held: &Held,
        scheme: TokenScheme,
        token: &str,
        now: i64,
    ) -> Result<Caller<'s>, Refusal> {
        let verified = self.issuer_keys.verify(token, issuer, now).await.map_err(Refusal::ExternalToken)?;
        let credential = issuer.identities.get(&verified.subject).ok_or(Refusal::IdentityNotLinked)?;
        if now >= credential.expires_at {
            return Err(Refusal::ExpiredCredential);
        }
        let profile = snap.profiles.get(&credential.profile_id).ok_or(Refusal::IdentityNotLinked)?;
        self.check_binding(headers, held, scheme, token, verified.cnf.as_ref()).await?;
        let mut caller =
            Caller { credential, profile, token: None, certificate: None, parties: Vec::new(), external: None };
        self.admit(&mut caller, headers, held, verified.cnf.as_ref())?;
        caller.external = Some(verified);
        Ok(caller)
    }
}

impl Gateway {
    /// The client a refused request's credential belongs to, when the credential says so
    /// unforgeably: an API key or client secret of ours, revoked or expired; an access
    /// token whose signature verifies but whose credential was revoked. Such a request is
    /// an attempt *naming* that client — recorded apart from its own traffic, so nobody
    /// can put requests into another client's record. Only for refusals: it costs a hash
    /// or a verification again. A trusted issuer's token names the client its identity
    /// is linked to when its signature was proven already (remembered, not fetched for).
    pub fn named_client<'s>(
        &self,
        snap: &'s Snapshot,
        headers: &HeaderMap,
        query: &Query<'_>,
        query_key_allowed: bool,
    ) -> Option<&'s str> {
        let in_query = if query_key_allowed { query.key() } else { None };
        if let Some(key) = header_str(headers, "x-api-key").or(in_query.as_deref()) {
            let (found, _) = self.state.hasher().find(key.trim(), |hash| {
                snap.credentials
                    .get(hash)
                    .and_then(|c| snap.profiles.get(&c.profile_id))
                    .map(|p| p.client_id.as_str())
                    .or_else(|| snap.revoked_credentials.get(hash).map(String::as_str))
            })?;
            return Some(found);
        }
        let (_, token) = access_token(headers)?;
        let Ok(claims) = self.state.verify_access_token(&self.tokens, token) else {
            let issuer = snap.trusted_issuer_of(token)?;
            let verified = self.issuer_keys.remembered(token, issuer, self.state.now())?;
            let credential = issuer.identities.get(&verified.subject)?;
            return snap.profiles.get(&credential.profile_id).map(|p| p.client_id.as_str());
        };
        snap.profiles.get(&claims.profile).filter(|p| p.client_id == claims.client_id).map(|p| p.client_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_credential_names_are_credential_names() {
        for q in ["api%5Fkey=x", "access%5Ftoken=x", "API_KEY=x", "client%5fsecret=y", "a=1&api%5Fkey=x"] {
            assert!(Query::parse(Some(q)).credential(false), "{q} carries a credential");
        }
        assert!(!Query::parse(Some("api%5Fkey=x")).credential(true), "an accepted key, however spelt");
        assert!(!Query::parse(Some("page=2&q=api_key")).credential(false), "a value is not a name");
    }

    #[test]
    fn an_accepted_key_is_read_decoded_and_never_forwarded() {
        let q = Query::parse(Some("page=2&api%5Fkey=pck_a%2Bb&sort=-id"));
        assert_eq!(q.key().as_deref(), Some("pck_a+b"));
        assert_eq!(q.upstream().as_deref(), Some("page=2&sort=-id"));
        assert_eq!(Query::parse(Some("api_key=x")).upstream(), None);
        assert_eq!(Query::parse(Some("a=b+c&d=%20")).upstream().as_deref(), Some("a=b+c&d=%20"), "kept as written");
    }
}
