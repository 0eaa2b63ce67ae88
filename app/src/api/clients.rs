//! The clients pages: a person's clients, registering one, its profiles, credentials
//! and limits, its recent requests and Test access; and the secret a plain form post
//! shows once.

use leptos::prelude::*;
use portcullis_domain::model::{ClientDetail, ClientSummary, IssuedSecret, RegisteredKey, RegisteredSubject};
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::Outcome;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{actor, domain, fail, said, store};

#[server(endpoint = "list_clients")]
pub async fn list_clients() -> Result<Vec<ClientSummary>, AppError> {
    let actor = actor().await?;
    store()?.list_clients(&actor).await.map_err(domain)
}

/// What registering a client answers: the new client's ids and its secret, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub client_id: String,
    pub client_name: String,
    pub secret: IssuedSecret,
}

/// Which act issued a secret to a client's profile, for the words shown with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Issued {
    Rotated,
    ApiKey,
    Profile,
}

#[server(endpoint = "register_client")]
pub async fn register_client(name: String, kind: String, description: String) -> Result<Registration, AppError> {
    use portcullis_domain::clients::NewClient;
    let actor = actor().await?;
    let kind = kind.parse().map_err(domain)?;
    let registered = store()?.register_client(&actor, NewClient { name, kind, description }).await.map_err(domain)?;
    let done = Registration {
        client_id: registered.client.client.id,
        client_name: registered.client.client.name,
        secret: registered.secret,
    };
    let page = format!("/clients/{}", done.client_id);
    crate::ssr::outcome_on(&page, &actor, &Outcome::Registered(done.clone())).await?;
    Ok(done)
}

/// Answers a secret issued to `client_id`'s profile, or sends a plain form post to the
/// client's page to see it there.
#[cfg(feature = "ssr")]
async fn issued(
    actor: &portcullis_domain::access::Actor,
    what: Issued,
    secret: IssuedSecret,
) -> Result<IssuedSecret, AppError> {
    let page = format!("/clients/{}", secret.client_id);
    crate::ssr::outcome_on(&page, actor, &Outcome::Issued(what, secret.clone())).await?;
    Ok(secret)
}

#[server(endpoint = "get_client")]
pub async fn get_client(client_id: String) -> Result<ClientDetail, AppError> {
    let actor = actor().await?;
    store()?.client_detail(&actor, &client_id).await.map_err(domain)
}

#[server(endpoint = "add_profile")]
pub async fn add_profile(client_id: String, environment: String) -> Result<IssuedSecret, AppError> {
    let actor = actor().await?;
    let env: portcullis_domain::model::Environment = environment.parse().map_err(domain)?;
    let secret = store()?.add_profile(&actor, &client_id, env).await.map_err(domain)?;
    issued(&actor, Issued::Profile, secret).await
}

#[server(endpoint = "rotate_secret")]
pub async fn rotate_secret(profile_id: String) -> Result<IssuedSecret, AppError> {
    let actor = actor().await?;
    let secret = store()?.rotate_secret(&actor, &profile_id).await.map_err(domain)?;
    issued(&actor, Issued::Rotated, secret).await
}

#[server(endpoint = "issue_api_key")]
pub async fn issue_api_key(profile_id: String) -> Result<IssuedSecret, AppError> {
    let actor = actor().await?;
    let secret = store()?.issue_api_key(&actor, &profile_id).await.map_err(domain)?;
    issued(&actor, Issued::ApiKey, secret).await
}

/// `jwk` is the public key as pasted; `replace` is `true` when the form's box is ticked.
#[server(endpoint = "register_public_key")]
pub async fn register_public_key(
    profile_id: String,
    jwk: String,
    replace: Option<String>,
) -> Result<RegisteredKey, AppError> {
    let actor = actor().await?;
    let replace = replace.as_deref() == Some("true");
    let key = store()?.register_public_key(&actor, &profile_id, &jwk, replace).await.map_err(domain)?;
    said(&actor, Outcome::KeyRegistered(key.clone())).await?;
    Ok(key)
}

/// `subject` is the certificate subject DN (RFC 4514) or a PEM certificate, as pasted.
#[server(endpoint = "register_certificate_subject")]
pub async fn register_certificate_subject(profile_id: String, subject: String) -> Result<RegisteredSubject, AppError> {
    let actor = actor().await?;
    let registered = store()?.register_certificate_subject(&actor, &profile_id, &subject).await.map_err(domain)?;
    said(&actor, Outcome::SubjectRegistered(registered.clone())).await?;
    Ok(registered)
}

#[server(endpoint = "revoke_credential")]
pub async fn revoke_credential(credential_id: String) -> Result<(), AppError> {
    let actor = actor().await?;
    store()?.revoke_credential(&actor, &credential_id).await.map_err(domain)?;
    said(
        &actor,
        Outcome::Said("Credential revoked. The gateway and the token endpoint refuse it from the next request.".into()),
    )
    .await
}

/// `suspended` is `true` or `false`; the reason is kept in the audit trail.
#[server(endpoint = "set_client_suspended")]
pub async fn set_client_suspended(client_id: String, suspended: String, reason: String) -> Result<(), AppError> {
    use portcullis_domain::access::Authority;
    let actor = actor().await?;
    let suspended = suspended == "true";
    store()?.set_client_suspended(Authority::Admin(&actor), &client_id, suspended, &reason).await.map_err(domain)?;
    let now = if suspended {
        "Client suspended. The gateway and the token endpoint refuse it from the next request."
    } else {
        "Client resumed. Its credentials work again from the next request."
    };
    said(&actor, Outcome::Said(now.into())).await
}

#[server(endpoint = "set_rate_limit")]
pub async fn set_rate_limit(profile_id: String, rate_per_minute: String, burst: String) -> Result<(), AppError> {
    let actor = actor().await?;
    let number = |v: &str, what: &str| {
        v.trim().parse::<i64>().map_err(|_| fail(AppError::Invalid(format!("The {what} is a whole number."))))
    };
    let (rate, burst) = (number(&rate_per_minute, "rate")?, number(&burst, "burst")?);
    store()?.set_rate_limit(&actor, &profile_id, rate, burst).await.map_err(domain)?;
    said(&actor, Outcome::Said("Rate limit saved.".into())).await
}

#[server(endpoint = "set_token_lifetime")]
pub async fn set_token_lifetime(profile_id: String, seconds: String) -> Result<(), AppError> {
    let actor = actor().await?;
    let seconds = seconds
        .trim()
        .parse::<i64>()
        .map_err(|_| fail(AppError::Invalid("The token lifetime is a whole number of seconds.".into())))?;
    store()?.set_token_lifetime(&actor, &profile_id, seconds).await.map_err(domain)?;
    said(&actor, Outcome::Said("Token lifetime saved; new tokens get it.".into())).await
}

#[server(endpoint = "set_sender_constraint")]
pub async fn set_sender_constraint(profile_id: String, sender_constraint: String) -> Result<(), AppError> {
    let actor = actor().await?;
    let constraint = sender_constraint
        .parse::<portcullis_domain::model::SenderConstraint>()
        .map_err(|_| fail(AppError::Invalid("Choose none or DPoP.".into())))?;
    store()?.set_sender_constraint(&actor, &profile_id, constraint).await.map_err(domain)?;
    said(&actor, Outcome::Said("Sender constraint saved; the gateway applies it from the next request.".into())).await
}

/// Who may act on behalf of the profile's client (token exchange): `mode` `any`, or
/// `listed` with the client ids in `actors` (spaces or commas between them; none: nobody).
#[server(endpoint = "set_may_act")]
pub async fn set_may_act(profile_id: String, mode: String, actors: Option<String>) -> Result<(), AppError> {
    let actor = actor().await?;
    let listed = match mode.as_str() {
        "any" => None,
        "listed" => Some(
            actors
                .unwrap_or_default()
                .split([' ', ',', '\n', '\r'])
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => return Err(fail(AppError::Invalid("Choose any client or the clients listed.".into()))),
    };
    store()?.set_may_act(&actor, &profile_id, listed).await.map_err(domain)?;
    said(&actor, Outcome::Said("Saved who may act on this agent's behalf; it applies from the next exchange.".into()))
        .await
}

#[server(endpoint = "recent_requests")]
pub async fn recent_requests(client_id: String) -> Result<Vec<portcullis_domain::model::RequestView>, AppError> {
    let actor = actor().await?;
    store()?.recent_requests(&actor, &client_id, 25).await.map_err(domain)
}

#[server(endpoint = "test_access")]
pub async fn test_access(
    profile_id: String,
    method: String,
    path: String,
) -> Result<portcullis_domain::model::TestAccessResult, AppError> {
    let actor = actor().await?;
    let result =
        crate::ssr::test_access(&crate::ssr::state()?, &actor, &profile_id, &method, &path).await.map_err(domain);
    let anchor = format!("test-{profile_id}");
    let tested = super::Tested { profile_id, method, path, result: result.clone() };
    crate::ssr::said_at(&actor, Outcome::Tested(tested), Some(&anchor)).await?;
    result
}

/// The URL clients reach this Portcullis at (its token issuer), for examples.
#[server(endpoint = "public_url")]
pub async fn public_url() -> Result<String, AppError> {
    Ok(crate::ssr::state()?.tokens.issuer)
}
