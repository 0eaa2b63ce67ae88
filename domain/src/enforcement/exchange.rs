//! Token exchange (RFC 8693): an agent acting on behalf of another agent. The acting
//! client authenticates as usual and presents the other's access token (the subject
//! token); it gets a token of its own profile that says on whose behalf it acts (`sub`,
//! and `subject` with the subject's profile and credential) and who acts, nested for a
//! chain (`act`, RFC 8693 §4.1, each client actor with its profile and credential).
//!
//! Never broader than every party: the token's scopes are within the subject token's and
//! the actor's own, and on every request each party must still be live (credential,
//! profile, client, owner) and granted the product with the endpoint's scope. Revoking
//! or suspending any party ends the token on the next request.
//!
//! The subject token may also come from a trusted issuer (federation): the identity it
//! names must be linked to a profile here, and that profile is the subject, its grants
//! the subject's scopes. Disabling the issuer or revoking the link ends the tokens
//! exchanged for it, as revoking any party's credential does.
//!
//! The subject's owner may name the clients allowed to act on its behalf (RFC 8693
//! `may_act`; any client by default), and down a chain each holder decides who may take
//! its delegated token further; a profile that requires sender-constrained tokens is
//! acted for by nobody. Another actor is refused the exchange, and a delegated token
//! whose chain no longer has every consent ends on the next request.
//!
//! Refused as subject tokens: sender-constrained ones (whoever holds the copy lacks the
//! key; exchanging it would strip the binding), per-task ones (a task is not delegated),
//! the portal's Test access tokens (they act for a person), the client's own, and chains
//! longer than `MAX_ACTORS`.

use serde::{Deserialize, Serialize};

use super::{AccessClaims, ActorClaim, CredentialEntry, ExternalToken, Inactive, IssuerEntry, ProfileEntry, Snapshot};
use crate::model::SenderConstraint;

/// `grant_type` of a token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The one token type taken and issued: an access token of this server.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Actors in one chain at most (the acting client included).
pub const MAX_ACTORS: usize = 4;

/// On whose behalf a delegated token acts: the client the first subject token was
/// issued to, with the profile and credential it was obtained with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectClaim {
    pub client_id: String,
    pub profile: String,
    pub cid: String,
    /// The subject token's own id: revoking it ends every token exchanged from it.
    pub jti: String,
}

/// What an exchange adds to the token being minted for the acting client.
#[derive(Debug, Clone)]
pub struct Delegation {
    pub subject: SubjectClaim,
    /// The whole chain, the acting client outermost.
    pub act: ActorClaim,
    /// The subject token's scopes: the new token's are within them.
    pub scopes: Vec<String>,
    /// The subject token's expiry: the new token ends no later.
    pub expires_at: i64,
}

/// Why a subject token cannot be exchanged (RFC 8693 §2.2.2: `invalid_request`; the
/// subject token's own failings are `invalid_grant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeRefusal {
    InvalidGrant(String),
}

impl ActorClaim {
    /// The chain, outermost (the acting client) first.
    pub fn chain(&self) -> impl Iterator<Item = &ActorClaim> {
        std::iter::successors(Some(self), |a| a.act.as_deref())
    }
}

impl AccessClaims {
    /// The actor chain of a delegated token, as the audit trail records it: client ids,
    /// the acting client first, separated by spaces.
    pub fn actor_chain(&self) -> Option<String> {
        self.subject.as_ref()?;
        let act = self.act.as_ref()?;
        Some(act.chain().map(|a| a.sub.as_str()).collect::<Vec<_>>().join(" "))
    }
}

/// Checks a subject token (verified and live) and what the acting client may make of
/// it: the delegation its new token carries.
pub fn delegate(subject: &AccessClaims, actor: &ProfileEntry) -> Result<Delegation, ExchangeRefusal> {
    let refuse = |why: &str| Err(ExchangeRefusal::InvalidGrant(why.to_owned()));
    if subject.cnf.is_some() {
        return refuse(
            "a sender-constrained subject token cannot be exchanged: only its key's or certificate's holder may use it",
        );
    }
    if subject.task().is_some() {
        return refuse("a per-task token cannot be exchanged");
    }
    if subject.client_id == actor.client_id {
        return refuse("the subject token is this client's own");
    }
    let (origin, previous) = match &subject.subject {
        // Already delegated: the chain grows, the first subject stays.
        Some(origin) => (origin.clone(), subject.act.clone()),
        // A person acting through a client (the portal's Test access) is not delegated on.
        None if subject.act.is_some() => return refuse("a token acting for a person cannot be exchanged"),
        None => (
            SubjectClaim {
                client_id: subject.client_id.clone(),
                profile: subject.profile.clone(),
                cid: subject.cid.clone(),
                jti: subject.jti.clone(),
            },
            None,
        ),
    };
    if origin.client_id == actor.client_id {
        return refuse("this client is the subject of the chain it would extend");
    }
    // The previous holder becomes an actor in the chain, with what keeps it accountable.
    let previous = previous.map(|mut p| {
        p.profile = Some(subject.profile.clone());
        p.cid = Some(subject.cid.clone());
        p.jti = Some(subject.jti.clone());
        Box::new(p)
    });
    let act = ActorClaim { sub: actor.client_id.clone(), profile: None, cid: None, jti: None, act: previous };
    if act.chain().count() > MAX_ACTORS {
        return refuse("the actor chain would be longer than 4");
    }
    if act.chain().any(|a| a.sub == origin.client_id) || has_repeats(&act) {
        return refuse("a client may appear once in a chain");
    }
    Ok(Delegation {
        subject: origin,
        act,
        scopes: subject.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        expires_at: subject.exp,
    })
}

/// Whether `party` lets `actor` act on its behalf: its owner allows that client (RFC
/// 8693 `may_act`), and it does not require sender-constrained tokens — acting for it
/// would make its authority usable without its key or certificate.
fn lets_act(party: &ProfileEntry, actor: &str) -> bool {
    party.sender_constraint == SenderConstraint::None && party.allows_actor(actor)
}

/// Whether the subject lets every actor of the chain act on its behalf.
fn consented(subject: &ProfileEntry, act: &ActorClaim) -> bool {
    act.chain().all(|a| lets_act(subject, &a.sub))
}

/// Why `party` (`whose`, as the caller should read it) does not let `actor` act on its
/// behalf, if it does not: the one wording of both reasons.
fn refused_by(party: &ProfileEntry, whose: &str, actor: &str) -> Option<ExchangeRefusal> {
    let why = if party.sender_constraint != SenderConstraint::None {
        format!("{whose} accepts only sender-constrained tokens: no client may act on its behalf")
    } else if !party.allows_actor(actor) {
        format!("{whose} has not allowed {actor} to act on its behalf")
    } else {
        return None;
    };
    Some(ExchangeRefusal::InvalidGrant(why))
}

/// A delegation every party consents to, as the snapshot has them: the subject to every
/// actor, and `holder` — who held the subject token, when it was itself delegated — to
/// the new actor. The refusal names only the acting client, which the caller is.
fn with_consent(
    snap: &Snapshot,
    delegation: Delegation,
    holder: Option<&ProfileEntry>,
) -> Result<Delegation, ExchangeRefusal> {
    let Some(subject) = snap.profiles.get(&delegation.subject.profile) else {
        return Err(ExchangeRefusal::InvalidGrant("the subject token is revoked or its client stopped".into()));
    };
    let refusal = delegation
        .act
        .chain()
        .find_map(|a| refused_by(subject, "the subject", &a.sub))
        .or_else(|| holder.and_then(|h| refused_by(h, "the holder of the subject token", &delegation.act.sub)));
    match refusal {
        Some(refusal) => Err(refusal),
        None => Ok(delegation),
    }
}

fn has_repeats(act: &ActorClaim) -> bool {
    let ids: Vec<&str> = act.chain().map(|a| a.sub.as_str()).collect();
    ids.iter().enumerate().any(|(i, id)| ids.iter().skip(i + 1).any(|o| o == id))
}

impl Snapshot {
    /// The other parties of a delegated token: its subject and every earlier actor, each
    /// live now (credential, profile, client, owner). Empty for any other token.
    pub fn parties(&self, claims: &AccessClaims, now: i64) -> Result<Vec<&ProfileEntry>, Inactive> {
        let Some(subject) = &claims.subject else { return Ok(Vec::new()) };
        if self.revoked_tokens.contains(&subject.jti) {
            return Err(Inactive::Revoked);
        }
        let origin = self.party(&subject.client_id, &subject.profile, &subject.cid, now)?;
        // Consent as it stands now: the subject's for every actor, each earlier actor's
        // for the one acting for it next. Withdrawn, it ends the token.
        if !claims.act.as_ref().is_some_and(|act| consented(origin, act)) {
            return Err(Inactive::Revoked);
        }
        let mut parties = vec![origin];
        let chain: Vec<&ActorClaim> = claims.act.iter().flat_map(|a| a.chain()).collect();
        for pair in chain.windows(2) {
            let [outer, actor] = pair else { continue };
            let (Some(profile), Some(cid), Some(jti)) = (&actor.profile, &actor.cid, &actor.jti) else {
                return Err(Inactive::Revoked);
            };
            if self.revoked_tokens.contains(jti) {
                return Err(Inactive::Revoked);
            }
            let entry = self.party(&actor.sub, profile, cid, now)?;
            if !lets_act(entry, &outer.sub) {
                return Err(Inactive::Revoked);
            }
            parties.push(entry);
        }
        Ok(parties)
    }

    fn party(&self, client_id: &str, profile: &str, cid: &str, now: i64) -> Result<&ProfileEntry, Inactive> {
        let live = |c: &&CredentialEntry| now < c.expires_at && c.profile_id == profile;
        self.credentials_by_id.get(cid).filter(live).ok_or(Inactive::Revoked)?;
        let entry = self.profiles.get(profile).filter(|p| p.client_id == client_id).ok_or(Inactive::Revoked)?;
        match entry.stopped() {
            Some(stopped) => Err(Inactive::Stopped(stopped)),
            None => Ok(entry),
        }
    }
}

impl super::Enforcement {
    /// The delegation a token exchange makes for `actor` from `subject_token`: the
    /// subject token must verify, be live with every party it names, and be of a kind
    /// that may be exchanged.
    pub fn exchange_subject(
        &self,
        settings: &super::TokenSettings,
        snap: &Snapshot,
        subject_token: &str,
        actor: &ProfileEntry,
    ) -> Result<Delegation, ExchangeRefusal> {
        let invalid = |why: &str| ExchangeRefusal::InvalidGrant(why.to_owned());
        let claims = self.verify_access_token(settings, subject_token).map_err(|e| match e {
            super::TokenError::Expired => invalid("the subject token has expired"),
            _ => invalid("the subject token is not an access token of this server"),
        })?;
        let (_, holder) = snap
            .token_holder(&claims, self.now())
            .map_err(|_| invalid("the subject token is revoked or its client stopped"))?;
        // A delegated subject token is its holder's: the holder consents to the next actor.
        let holder = claims.subject.is_some().then_some(holder);
        with_consent(snap, delegate(&claims, actor)?, holder)
    }

    /// The delegation a token exchange makes for `actor` from a trusted issuer's token,
    /// already verified with that issuer's keys: the identity it names must be linked
    /// to a live profile of another client, which becomes the subject.
    pub fn exchange_external(
        &self,
        snap: &Snapshot,
        issuer: &IssuerEntry,
        token: &ExternalToken,
        actor: &ProfileEntry,
    ) -> Result<Delegation, ExchangeRefusal> {
        let invalid = |why: &str| ExchangeRefusal::InvalidGrant(why.to_owned());
        if token.cnf.is_some() {
            return Err(invalid(
                "a sender-constrained subject token cannot be exchanged: only its key's or certificate's holder may use it",
            ));
        }
        let not_linked = || invalid("the subject token names an identity that is not linked to a client here");
        let credential = issuer.identities.get(&token.subject).ok_or_else(not_linked)?;
        let profile = snap.profiles.get(&credential.profile_id).ok_or_else(not_linked)?;
        // Consent first: a client the subject does not allow learns nothing more of it.
        if let Some(refusal) = refused_by(profile, "the subject", &actor.client_id) {
            return Err(refusal);
        }
        let now = self.now();
        let subject = snap
            .party(&profile.client_id, &profile.id, &credential.id, now)
            .map_err(|_| invalid("the subject token's linked identity is revoked or its client stopped"))?;
        if subject.client_id == actor.client_id {
            return Err(invalid("the subject token is this client's own"));
        }
        let delegation = Delegation {
            subject: SubjectClaim {
                client_id: subject.client_id.clone(),
                profile: subject.id.clone(),
                cid: credential.id.clone(),
                // Never one of ours: nothing of this server revokes it but the link.
                jti: format!("{}:{}", issuer.id, token.id),
            },
            act: ActorClaim { sub: actor.client_id.clone(), profile: None, cid: None, jti: None, act: None },
            scopes: subject.live_scopes(now).into_iter().map(str::to_owned).collect(),
            expires_at: token.expires_at,
        };
        with_consent(snap, delegation, None)
    }
}
