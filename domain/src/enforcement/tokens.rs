//! Access tokens: minting, verifying, and the one rule for whether a token is live.

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::exchange::{Delegation, SubjectClaim};
use super::tasks::{parse_task, TaskDetail};
use super::{
    check_assertion, Assertion, AssertionCheck, AssertionError, CredentialEntry, Enforcement, KeyRing, ProfileEntry,
    Snapshot,
};
use crate::model::{ClientKind, CredentialKind, SenderConstraint};
use crate::time::SECOND;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
/// The range an admin may set a profile's token lifetime to. An hour at most: verified
/// tokens are cached for an hour, and retired signing keys verify for a day.
pub const MIN_TOKEN_TTL_SECS: i64 = 60;
pub const MAX_TOKEN_TTL_SECS: i64 = 3600;

/// The claims of a Portcullis access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    pub profile: String,
    pub env: String,
    pub client_type: String,
    /// The credential the token was obtained with: revoking it ends the token too.
    pub cid: String,
    /// The person the token acts for (RFC 8693 §4.1), when one asked for it: the portal's
    /// Test access, whose requests the audit trail attributes to that person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<ActorClaim>,
    /// What the token is bound to (RFC 7800): only a request proving possession of it
    /// may use the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// On whose behalf a delegated token (RFC 8693 token exchange) acts; `sub` is its
    /// client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectClaim>,
    /// RFC 9396 §9.1: the task the token serves, when it was asked for one: only its
    /// endpoints, at most its number of calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details: Vec<TaskDetail>,
}

impl AccessClaims {
    /// The JWK thumbprint of the DPoP key the token is bound to, if it is bound to one.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }

    /// The task the token serves, if it is a per-task token.
    pub fn task(&self) -> Option<&TaskDetail> {
        self.authorization_details.first()
    }

    /// The hash of the TLS client certificate the token is bound to, if any.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref())
    }
}

/// RFC 7800 `cnf`: the DPoP key (RFC 9449 §6.1), the TLS client certificate (RFC 8705
/// §3.1), or both, that a token's every use must prove possession of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The JWK SHA-256 thumbprint of the client's DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The SHA-256 hash of the client certificate's DER, base64url.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// What a request proved it holds: a DPoP key, a certificate, both or neither.
    pub fn new(jkt: Option<&str>, x5t_s256: Option<&str>) -> Self {
        Self { jkt: jkt.map(str::to_owned), x5t_s256: x5t_s256.map(str::to_owned) }
    }

    /// How the audit trail records the proven key: `dpop:<jkt>`, `x5t#S256:<hash>`, or
    /// both.
    pub fn label(&self) -> String {
        let dpop = self.jkt.as_deref().map(|jkt| format!("dpop:{jkt}"));
        let certificate = self.x5t_s256.as_deref().map(|x5t| format!("x5t#S256:{x5t}"));
        dpop.into_iter().chain(certificate).collect::<Vec<_>>().join(" ")
    }

    fn is_empty(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }

    /// Whether it satisfies a profile's sender constraint.
    pub fn satisfies(&self, constraint: SenderConstraint) -> bool {
        match constraint {
            SenderConstraint::None => true,
            SenderConstraint::Dpop => self.jkt.is_some(),
            SenderConstraint::Mtls => self.x5t_s256.is_some(),
        }
    }
}

/// RFC 8693 §4.1 `act`: who is acting, and (nested) who acted before. In a token from
/// the portal's Test access, the person (a user id); in a delegated token, client ids,
/// each earlier one with the profile and credential it held, so that revoking any of
/// them ends the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorClaim {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The token this actor held when the next one exchanged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<ActorClaim>>,
}

/// Why a presented token is not accepted. The gateway tells these apart in its
/// `error_description`; introspection says only `active: false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnknownKey,
    BadSignature,
    WrongIssuerOrAudience,
    Expired,
    NotYetValid,
    Revoked,
}

/// RFC 6749 §5.2 errors of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequestError {
    InvalidClient,
    /// The profile accepts only tokens bound to what the request did not prove (a DPoP
    /// key, or a TLS client certificate).
    SenderConstraintRequired(SenderConstraint),
    InvalidScope(String),
    /// RFC 9396 §5: the requested task cannot be granted, and why.
    InvalidAuthorizationDetails(String),
    InvalidRequest(String),
    Internal,
}

/// What a token request asks for beyond the client's own profile.
#[derive(Debug, Clone, Default)]
pub struct TokenAsk<'a> {
    /// `scope`: a subset of what the profile's grants allow; all of it when absent.
    pub scope: Option<&'a str>,
    /// The person the token acts for (the portal's Test access).
    pub acting_user: Option<&'a str>,
    /// What the request proved it holds (a DPoP key, a TLS client certificate).
    pub binding: Confirmation,
    /// RFC 9396 `authorization_details`: one `portcullis_task`.
    pub authorization_details: Option<&'a str>,
    /// RFC 8693: the token acts on behalf of another client's subject token.
    pub delegation: Option<Delegation>,
}

pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: i64,
    pub scope: String,
    pub claims: AccessClaims,
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken").field("claims", &self.claims).finish_non_exhaustive()
    }
}

/// Where tokens come from and whom they are for.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
}

/// Access tokens whose signature, issuer and audience were verified, by the SHA-256 of
/// their text, with the `kid` of the key that signed them.
///
/// A client uses one token for its whole lifetime, and checking an Ed25519 signature was
/// a quarter of a gateway request's CPU time (measured, bench/RESULTS.md); so it is done
/// once per token. Only what the signature proves is kept: expiry, revocation and the
/// credential's liveness are still checked on every request, a token whose key has left
/// the ring is verified again (and fails), and a tampered token has another hash.
#[derive(Clone)]
pub struct VerifiedTokens(moka::sync::Cache<[u8; 32], Arc<(String, Arc<AccessClaims>)>>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        // A token lives at most an hour; retired keys verify for 24.
        Self(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
        )
    }
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").field("entries", &self.0.entry_count()).finish()
    }
}

impl Enforcement {
    /// The client credentials grant, for a client that authenticated (with
    /// `authenticate_client` or `authenticate_client_assertion`): a token for the profile
    /// its credential belongs to, with the requested scopes (a subset of what the
    /// profile's grants allow) or all of them, bound to `dpop_jkt` when the request
    /// carried a DPoP proof.
    pub fn issue_access_token(
        &self,
        settings: &TokenSettings,
        credential: &CredentialEntry,
        profile: &ProfileEntry,
        ask: &TokenAsk<'_>,
    ) -> Result<IssuedAccessToken, TokenRequestError> {
        self.mint(settings, credential, profile, ask)
    }

    /// Signs a token for `profile`, obtained with `credential`, as `ask` says: its scopes,
    /// the person it acts for, what it is bound to, the task it serves.
    pub(crate) fn mint(
        &self,
        settings: &TokenSettings,
        credential: &CredentialEntry,
        profile: &ProfileEntry,
        ask: &TokenAsk<'_>,
    ) -> Result<IssuedAccessToken, TokenRequestError> {
        let TokenAsk { scope: requested_scope, acting_user, binding, authorization_details, delegation } = ask;
        if !binding.satisfies(profile.sender_constraint) {
            return Err(TokenRequestError::SenderConstraintRequired(profile.sender_constraint));
        }
        let now = self.now();
        let mut allowed = profile.live_scopes(now);
        if let Some(delegation) = delegation {
            // Within the subject token's scopes too: never broader than either party.
            allowed.retain(|s| delegation.scopes.iter().any(|d| d == s));
            if allowed.is_empty() {
                return Err(TokenRequestError::InvalidScope(
                    "the subject token and this client have no scope in common".into(),
                ));
            }
        }
        let requested: Option<Vec<&str>> = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(requested) => {
                let mut wanted: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(extra) = wanted.iter().find(|s| !allowed.contains(s)) {
                    return Err(TokenRequestError::InvalidScope(format!(
                        "the scope `{extra}` is not granted to this profile"
                    )));
                }
                wanted.sort_unstable();
                wanted.dedup();
                Some(wanted)
            }
        };
        let ttl = profile.token_ttl_secs.clamp(MIN_TOKEN_TTL_SECS, MAX_TOKEN_TTL_SECS);
        // A task token: its endpoints must be granted and within the requested scopes;
        // without a `scope`, it gets exactly the scopes its endpoints need.
        let (task, scope) = match authorization_details {
            None => (None, requested.as_deref().unwrap_or(&allowed).join(" ")),
            Some(text) => {
                let within = requested.as_deref().unwrap_or(&allowed);
                let snap = self.snapshot().current();
                let (task, needed) = parse_task(text, &snap, profile, within, ttl, now)
                    .map_err(TokenRequestError::InvalidAuthorizationDetails)?;
                let scope = match &requested {
                    Some(wanted) => wanted.join(" "),
                    None => needed.join(" "),
                };
                (Some(task), scope)
            }
        };
        let ttl = task.as_ref().and_then(|t| t.expires_in).unwrap_or(ttl);
        let iat = now / SECOND;
        // A delegated token ends no later than the token it was exchanged for.
        let ttl = delegation.as_ref().map_or(ttl, |d| ttl.min(d.expires_at - iat));
        if ttl <= 0 {
            return Err(TokenRequestError::InvalidRequest("the subject token has expired".into()));
        }
        let claims = AccessClaims {
            iss: settings.issuer.clone(),
            sub: delegation.as_ref().map_or_else(|| profile.client_id.clone(), |d| d.subject.client_id.clone()),
            aud: settings.audience.clone(),
            exp: iat + ttl,
            iat,
            nbf: iat,
            jti: uuid::Uuid::now_v7().simple().to_string(),
            scope: scope.clone(),
            client_id: profile.client_id.clone(),
            profile: profile.id.clone(),
            env: profile.environment.as_str().to_owned(),
            client_type: match profile.client_kind {
                ClientKind::AiAgent => "ai-agent",
                ClientKind::Application => "application",
                ClientKind::Service => "service",
            }
            .to_owned(),
            cid: credential.id.clone(),
            act: match delegation {
                Some(d) => Some(d.act.clone()),
                None => acting_user.map(|sub| ActorClaim {
                    sub: sub.to_owned(),
                    profile: None,
                    cid: None,
                    jti: None,
                    act: None,
                }),
            },
            subject: delegation.as_ref().map(|d| d.subject.clone()),
            cnf: (!binding.is_empty()).then(|| binding.clone()),
            authorization_details: task.into_iter().collect(),
        };
        let ring = self.keys().current();
        let signer = ring.signer(self.now()).ok_or(TokenRequestError::Internal)?;
        let mut header = Header::new(signer.alg.algorithm());
        header.typ = Some("at+jwt".into());
        header.kid = Some(signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &signer.key).map_err(|e| {
            tracing::error!(error = %e, "signing an access token failed");
            TokenRequestError::Internal
        })?;
        Ok(IssuedAccessToken { token, expires_in: ttl, scope, claims })
    }

    /// Authenticates a client by its secret. Unknown client, wrong secret, expired or
    /// revoked secret: one answer, one cost (a keyed hash and a map lookup either way).
    pub fn authenticate_client<'s>(
        &self,
        snap: &'s Snapshot,
        client_id: &str,
        client_secret: &str,
    ) -> Result<(&'s CredentialEntry, &'s ProfileEntry), TokenRequestError> {
        let now = self.now();
        let (credential, rekey) = self
            .hasher()
            .find(client_secret, |hash| snap.credentials.get(hash))
            .filter(|(c, _)| c.kind == CredentialKind::ClientSecret && now < c.expires_at)
            .ok_or(TokenRequestError::InvalidClient)?;
        let profile = snap
            .profiles
            .get(&credential.profile_id)
            .filter(|p| p.client_id == client_id && p.stopped().is_none())
            .ok_or(TokenRequestError::InvalidClient)?;
        if let Some(rekey) = rekey {
            self.request_rekey(&credential.id, rekey);
        }
        Ok((credential, profile))
    }

    /// Authenticates a client by a signed assertion (private_key_jwt, RFC 7523) made
    /// with one of its registered keys that is live, for a profile that may act now. The
    /// assertion's one use is the caller's check (`first_assertion_use_local`, then the
    /// shared one).
    pub fn authenticate_client_assertion<'s>(
        &self,
        snap: &'s Snapshot,
        client_id: &str,
        assertion: &str,
        audiences: &[String],
    ) -> Result<(&'s CredentialEntry, &'s ProfileEntry, Assertion), AssertionError> {
        let now = self.now();
        let keys = snap.client_keys.get(client_id).map_or(&[][..], Vec::as_slice);
        let (key, checked) = check_assertion(assertion, &AssertionCheck { client_id, audiences }, keys, now)?;
        if now >= key.credential.expires_at {
            return Err(AssertionError::NotVerified);
        }
        let profile = snap
            .profiles
            .get(&key.credential.profile_id)
            .filter(|p| p.client_id == client_id && p.stopped().is_none())
            .ok_or(AssertionError::NotVerified)?;
        Ok((&key.credential, profile, checked))
    }

    /// Authenticates a client by the TLS client certificate of its request (RFC 8705
    /// §2): the handshake proved the caller holds the certificate's key. Either that key
    /// (by its RFC 7638 thumbprint) is one the client registered
    /// (`self_signed_tls_client_auth`), or the certificate was issued by an authority the
    /// listener trusts and its subject is one the client registered (`tls_client_auth`;
    /// `trusted_subject` is `None` for any other certificate). The credential is live,
    /// for a profile that may act now.
    pub fn authenticate_client_certificate<'s>(
        &self,
        snap: &'s Snapshot,
        client_id: &str,
        key_thumbprint: Option<&str>,
        trusted_subject: Option<&str>,
    ) -> Result<(&'s CredentialEntry, &'s ProfileEntry), TokenRequestError> {
        let now = self.now();
        let by_key = key_thumbprint
            .and_then(|t| snap.client_keys.get(client_id)?.iter().find(|k| k.thumbprint == t))
            .map(|k| &k.credential);
        // One live subject credential, or none: two (one subject on two of the client's
        // profiles, registered in a race) would leave the environment to chance.
        let by_subject = || {
            let subject = trusted_subject?;
            let mut live =
                snap.client_subjects.get(client_id)?.iter().filter(|(s, c)| s == subject && now < c.expires_at);
            match (live.next(), live.next()) {
                (Some((_, credential)), None) => Some(credential),
                _ => None,
            }
        };
        let credential =
            by_key.filter(|c| now < c.expires_at).or_else(by_subject).ok_or(TokenRequestError::InvalidClient)?;
        let profile = snap
            .profiles
            .get(&credential.profile_id)
            .filter(|p| p.client_id == client_id && p.stopped().is_none())
            .ok_or(TokenRequestError::InvalidClient)?;
        Ok((credential, profile))
    }

    /// The claims of a token that is active right now: it verifies, it is not revoked,
    /// and the credential it was obtained with is still live (RFC 7662's "active").
    pub fn active_token(&self, settings: &TokenSettings, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        let claims = self.verify_access_token(settings, token)?;
        match self.snapshot().current().token_holder(&claims, self.now()) {
            Ok(_) => Ok(claims),
            Err(_) => Err(TokenError::Revoked),
        }
    }

    /// Verifies a presented access token against the key ring and the clock. That its
    /// credential is still live is the caller's check (against the policy snapshot).
    pub fn verify_access_token(&self, settings: &TokenSettings, token: &str) -> Result<Arc<AccessClaims>, TokenError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let ring = self.keys().current();
        let claims = match self.verified.0.get(&digest) {
            Some(hit) if ring.verifiers.contains_key(&hit.0) => hit.1.clone(),
            _ => {
                let (kid, claims) = verify_signature(&ring, settings, token)?;
                let claims = Arc::new(claims);
                self.verified.0.insert(digest, Arc::new((kid, claims.clone())));
                claims
            }
        };
        let now = self.now() / SECOND;
        // A task token's lifetime may be a few seconds: it ends when it says. (Replicas
        // keep NTP time; the leeway is for the clocks of others.)
        let leeway = if claims.task().is_some() { 0 } else { LEEWAY_SECS };
        if now >= claims.exp + leeway {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY_SECS < claims.nbf || now + LEEWAY_SECS < claims.iat {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// What the signature proves: the header is ours (a known `kid` and exactly that key's
/// algorithm, no key of its own), the signature holds, and the issuer and audience are this gateway's. Time is
/// checked by the caller, against the store's clock, which tests control.
fn verify_signature(
    ring: &KeyRing,
    settings: &TokenSettings,
    token: &str,
) -> Result<(String, AccessClaims), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    // RFC 9068 §4: an access token says it is one, so an ID token or another JWT signed
    // with the same key can never pass for one.
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(TokenError::Malformed);
    }
    if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some() {
        return Err(TokenError::Malformed);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let (alg, key) = ring.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
    // RFC 8725 §3.1: the key decides the algorithm, never the token.
    if header.alg != alg.algorithm() {
        return Err(TokenError::Malformed);
    }
    let mut validation = Validation::new(alg.algorithm());
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongIssuerOrAudience,
            _ => TokenError::Malformed,
        }
    })?;
    Ok((kid, data.claims))
}
