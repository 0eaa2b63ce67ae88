//! Pieces shared by several pages.

use leptos::prelude::*;
use leptos_router::components::A;
use portcullis_domain::model::{CredentialKind, IssuedSecret};
use portcullis_domain::time::format_utc;

use crate::error::AppError;
use crate::{CurrentUser, SignOutAction};

#[component]
pub fn Topbar() -> impl IntoView {
    let user = expect_context::<CurrentUser>();
    let SignOutAction(sign_out) = expect_context::<SignOutAction>();
    view! {
        <header class="topbar">
            <a class="brand" href="/"><span class="brand-mark"></span>"Portcullis"</a>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(u)) => {
                            let admin = u.is_admin();
                            let security = u.role != portcullis_domain::model::Role::Developer;
                            view! {
                                <nav class="nav">
                                    <A href="/clients">"Clients"</A>
                                    <A href="/catalog">"Catalog"</A>
                                    <A href="/tokens">"Tokens"</A>
                                    {security.then(|| view! {
                                        <A href="/security">"Security"</A>
                                        <A href="/audit">"Audit"</A>
                                        <A href="/reviews">"Reviews"</A>
                                    })}
                                    {admin.then(|| view! {
                                        <A href="/admin/approvals">"Approvals"</A>
                                        <A href="/admin/products">"Products"</A>
                                        <A href="/admin/users">"People"</A>
                                    })}
                                </nav>
                                <div class="user-menu">
                                    <span class="user-email">{u.email.clone()}</span>
                                    <span class="role-badge">{u.role.as_str()}</span>
                                    <ActionForm action=sign_out>
                                        <button type="submit" class="btn-link">"Sign out"</button>
                                    </ActionForm>
                                </div>
                            }
                                .into_any()
                        }
                        _ => view! {
                            <nav class="nav">
                                <A href="/login">"Sign in"</A>
                                <A href="/signup">"Create account"</A>
                            </nav>
                        }
                            .into_any(),
                    }
                })}
            </Transition>
        </header>
    }
}

/// Shows an error; for "not signed in" it offers the way to sign in.
#[component]
pub fn ErrorBox(error: AppError) -> impl IntoView {
    match error {
        AppError::Unauthenticated => view! {
            <div class="alert alert-info" role="alert">
                "Sign in to continue. " <a href="/login">"Sign in"</a> " or " <a href="/signup">"create an account"</a> "."
            </div>
        }
        .into_any(),
        other => view! { <div class="alert alert-error" role="alert">{other.to_string()}</div> }.into_any(),
    }
}

/// A value with a copy-to-clipboard button (works once the page has hydrated).
#[component]
pub fn CopyValue(label: &'static str, value: String, #[prop(optional)] test_id: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let to_copy = value.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if let Some(window) = web_sys::window() {
                let _ = window.navigator().clipboard().write_text(&to_copy);
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &to_copy;
        copied.set(true);
    };
    view! {
        <div class="secret-row">
            <span class="secret-label">{label}</span>
            <code class="secret-value" data-testid=test_id>{value}</code>
            <button type="button" class="copy" class:copied=copied on:click=copy>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </div>
    }
}

/// A secret that was just issued. It is shown here once and exists nowhere else.
#[component]
pub fn SecretReveal(secret: IssuedSecret) -> impl IntoView {
    let what = match secret.kind {
        CredentialKind::ClientSecret => "client secret",
        CredentialKind::ApiKey => "API key",
    };
    let label = match secret.kind {
        CredentialKind::ClientSecret => "Client secret",
        CredentialKind::ApiKey => "API key",
    };
    view! {
        <section class="secret-box" data-testid="secret-box">
            <p class="secret-warning">
                {format!("Copy this {what} now. It is shown only once: Portcullis keeps only a hash of it.")}
            </p>
            <CopyValue label="Client ID" value=secret.client_id.clone() test_id="client-id"/>
            <CopyValue label="Profile ID" value=secret.profile_id.clone() test_id="profile-id"/>
            <CopyValue label=label value=secret.secret.clone() test_id="secret-value"/>
            <p class="muted">
                {format!("{} profile · expires {}", secret.environment.label(), format_utc(secret.expires_at))}
            </p>
        </section>
    }
}

pub fn method_badge(method: &str) -> impl IntoView {
    let class = format!("method method-{}", method.to_ascii_lowercase());
    view! { <span class=class>{method.to_owned()}</span> }
}

pub fn tag_list(tags: &[String]) -> impl IntoView {
    tags.iter()
        .map(|t| {
            let class = format!("tag tag-{t}");
            view! { <span class=class>{t.clone()}</span> }
        })
        .collect_view()
}

pub fn when(ms: Option<i64>) -> String {
    ms.map(format_utc).unwrap_or_else(|| "—".to_owned())
}
