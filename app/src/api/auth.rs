//! Signing in, signing up and out, and who is signed in.

use leptos::prelude::*;
use portcullis_domain::model::UserView;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{domain, fail};

#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    crate::ssr::current_user().await
}

/// Where to go after signing in or up: `next` when it is a path on this site, else the
/// client list. Anything that could leave the site (`//host`, `/\\host`, a scheme) or
/// smuggle a header is refused.
pub fn after_sign_in(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_owned()
        }
        _ => "/clients".to_owned(),
    }
}

#[server(endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::ssr::record_door;
    use portcullis_domain::audit::DoorEvent;
    let state = crate::ssr::state()?;
    let ip = crate::ssr::client_ip().await;
    if let Err(throttled) = state.throttle.check(&email, ip) {
        if state.throttle.first_throttled(ip) {
            record_door(DoorEvent::SignInThrottled { email: &email }, ip).await;
        }
        return Err(fail(throttled));
    }
    let user = state.store.authenticate(&email, password).await.map_err(domain)?;
    let Some(user) = user else {
        record_door(DoorEvent::SignInFailed { email: &email }, ip).await;
        return Err(fail(AppError::Invalid("That email and password do not match an account.".into())));
    };
    record_door(DoorEvent::SignedIn(&user), ip).await;
    crate::ssr::sign_in_session(&user).await?;
    leptos_axum::redirect(&after_sign_in(next.as_deref()));
    Ok(())
}

#[server(endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use portcullis_domain::model::Role;
    let state = crate::ssr::state()?;
    state.throttle.check(&email, crate::ssr::client_ip().await).map_err(fail)?;
    let user = state
        .store
        .create_user(&email, password, Role::Developer, None, portcullis_domain::access::Channel::Portal)
        .await
        .map_err(domain)?;
    crate::ssr::sign_in_session(&user).await?;
    leptos_axum::redirect(&after_sign_in(next.as_deref()));
    Ok(())
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    if let Some(user) = crate::ssr::current_user().await? {
        let ip = crate::ssr::client_ip().await;
        crate::ssr::record_door(portcullis_domain::audit::DoorEvent::SignedOut(&user), ip).await;
    }
    crate::ssr::sign_out_session().await?;
    leptos_axum::redirect("/");
    Ok(())
}
