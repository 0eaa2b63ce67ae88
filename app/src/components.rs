//! Pieces shared by several pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use portcullis_domain::model::{CredentialKind, IssuedSecret};
use portcullis_domain::time::format_utc;

use crate::api::{Outcome, SignOut};
use crate::error::AppError;
use crate::{CurrentUser, PageOutcome};

#[component]
pub fn Topbar() -> impl IntoView {
    let user = expect_context::<CurrentUser>();
    let sign_out = ServerAction::<SignOut>::new();
    // Requests waiting for an admin, beside Approvals: counted again on every page.
    let pending = Resource::new(
        || (),
        move |_| async move {
            // Only an admin's page asks: the others make no call at all.
            match user.await {
                Ok(Some(u)) if u.is_admin() => crate::api::pending_grant_count().await,
                _ => Ok(0),
            }
        },
    );
    view! {
        <header class="topbar">
            <a class="brand" href="/"><span class="brand-mark"></span>"Portcullis"</a>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(u)) => {
                            let admin = u.is_admin();
                            let waiting = if admin { pending.await.unwrap_or(0) } else { 0 };
                            let approvals_label =
                                if waiting > 0 { format!("Approvals, {waiting} waiting") } else { "Approvals".to_owned() };
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
                                        <A href="/admin/approvals" attr:aria-label=approvals_label>
                                            "Approvals"
                                            {(waiting > 0).then(|| view! { <span class="count" data-testid="pending-count">{waiting}</span> })}
                                        </A>
                                        <A href="/admin/products">"Products"</A>
                                        <A href="/admin/users">"People"</A>
                                        <A href="/admin/issuers">"Issuers"</A>
                                    })}
                                </nav>
                                <div class="user-menu">
                                    <span class="user-email" title=u.email.clone()>{u.email.clone()}</span>
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

/// What the last form post on this page did: its refusal, which the post came back with
/// (`?__err=`, whichever of the page's forms it was: every form posts, so a page holds at
/// most one), or what it did, said once (see `ssr::said`). The outcomes a page shows in
/// a place of its own (a secret, a test result) are the page's to show.
#[component]
pub fn Notice() -> impl IntoView {
    use leptos::server_fn::error::ServerFnUrlError;
    let outcome = expect_context::<PageOutcome>();
    let refusal = use_context::<leptos::server::ServerActionError>()
        .map(|refused| ServerFnUrlError::<AppError>::decode_err(refused.err()));
    view! {
        {refusal.map(|error| view! { <ErrorBox error/> })}
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match outcome.await {
                    Ok(Some(Outcome::Said(said))) => Some(view! { <div class="alert alert-success" role="status">{said}</div> }),
                    _ => None,
                }
            })}
        </Suspense>
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

/// The sign-in page's address that comes back to the page shown now.
fn sign_in_then_back() -> String {
    let location = leptos_router::hooks::use_location();
    let (path, search) = (location.pathname.get_untracked(), location.search.get_untracked());
    // Not the refusal a post left in the query: coming back signed in, it would say
    // "sign in" again.
    let here = match without_refusal(&search) {
        query if query.is_empty() => path,
        query => format!("{path}?{query}"),
    };
    with_next("/login", Some(&here))
}

/// A page's query (with its `?` or not) without the refusal a form post left there
/// (`__err`, `__path`), which would be said again on every later visit.
pub fn without_refusal(query: &str) -> String {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("__err=") && !pair.starts_with("__path="))
        .collect::<Vec<_>>()
        .join("&")
}

/// `to`, carrying `next` (the page to come back to after signing in or up), if any.
pub fn with_next(to: &str, next: Option<&str>) -> String {
    match next {
        Some(n) => format!("{to}?{}", serde_urlencoded::to_string([("next", n)]).unwrap_or_default()),
        None => to.to_owned(),
    }
}

/// Sends the browser to `path` with a redirect (302): pages render on the server only.
fn send_to(path: String) -> AnyView {
    #[cfg(feature = "ssr")]
    leptos_axum::redirect(&path);
    #[cfg(not(feature = "ssr"))]
    let _ = path;
    ().into_any()
}

/// Sends a signed-out visitor to sign in, and back here afterwards, before they fill in
/// a form that would only refuse them. It is a redirect (302).
#[component]
pub fn SignInFirst() -> impl IntoView {
    let user = expect_context::<CurrentUser>();
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                matches!(user.await, Ok(None)).then(|| send_to(sign_in_then_back()))
            })}
        </Suspense>
    }
}

/// What a page shows when the thing it is about cannot be shown: signed out, it sends
/// the visitor to sign in and back; "not found, or not yours" and "not allowed" answer
/// with their real status (404, 403), a heading and a way back.
#[component]
pub fn PageError(error: AppError, back_href: &'static str, back_label: &'static str) -> impl IntoView {
    let heading = match &error {
        AppError::Unauthenticated => return send_to(sign_in_then_back()),
        AppError::NotFound => "Not found",
        AppError::Forbidden(_) => "Not allowed",
        _ => return view! { <ErrorBox error=error/> }.into_any(),
    };
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::from_u16(error.status()).unwrap_or(axum::http::StatusCode::NOT_FOUND));
    }
    let said = match &error {
        AppError::NotFound => "There is nothing here, or it belongs to someone else.".to_owned(),
        other => other.to_string(),
    };
    view! {
        <Title text=heading/>
        <div class="empty" data-testid="page-error">
            <h1>{heading}</h1>
            <p role="alert">{said}</p>
            <p><a class="btn btn-secondary" href=back_href>{back_label}</a></p>
        </div>
    }
    .into_any()
}

/// What a Copy button last did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CopyState {
    Ready,
    Copied,
    Failed,
}

/// Copies `text` and says whether it worked. Copying needs JavaScript, so the button
/// appears once the island has hydrated: before that (or without JavaScript) there is no
/// button that does nothing, and the text beside it is there to select.
#[island]
pub fn CopyButton(text: String) -> impl IntoView {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let state = RwSignal::new(CopyState::Ready);
    let text = StoredValue::new(text);
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        write_clipboard(text.get_value(), state);
        #[cfg(not(feature = "hydrate"))]
        let _ = text;
    };
    move || {
        hydrated.get().then(|| {
            view! {
                <button type="button" class="copy" class:copied=move || state.get() == CopyState::Copied
                    class:copy-failed=move || state.get() == CopyState::Failed on:click=copy>
                    {move || match state.get() {
                        CopyState::Ready => "Copy",
                        CopyState::Copied => "Copied",
                        CopyState::Failed => "Copy failed: select the text",
                    }}
                </button>
            }
        })
    }
}

/// Writes to the clipboard, then shows the outcome for a moment. The clipboard API exists
/// only in secure contexts (HTTPS or localhost), and the browser may refuse.
#[cfg(feature = "hydrate")]
fn write_clipboard(text: String, state: RwSignal<CopyState>) {
    let Some(navigator) = web_sys::window().map(|w| w.navigator()) else {
        return;
    };
    let available = web_sys::js_sys::Reflect::get(navigator.as_ref(), &"clipboard".into())
        .map(|c| !c.is_undefined())
        .unwrap_or(false);
    if !available {
        state.set(CopyState::Failed);
        return;
    }
    let written = wasm_bindgen_futures::JsFuture::from(navigator.clipboard().write_text(&text));
    leptos::task::spawn_local(async move {
        let copied = written.await.is_ok();
        // `try_set`: the page may have moved on meanwhile, and then there is nothing to update.
        // A failure stays on the button; "Copied" returns to "Copy" after a moment.
        let _ = state.try_set(if copied { CopyState::Copied } else { CopyState::Failed });
        if copied {
            set_timeout(
                move || {
                    let _ = state.try_set(CopyState::Ready);
                },
                std::time::Duration::from_secs(2),
            );
        }
    });
}

/// A value with a copy-to-clipboard button.
#[component]
pub fn CopyValue(label: &'static str, value: String, #[prop(optional)] test_id: &'static str) -> impl IntoView {
    view! {
        <div class="secret-row">
            <span class="secret-label">{label}</span>
            <code class="secret-value" data-testid=test_id>{value.clone()}</code>
            <CopyButton text=value/>
        </div>
    }
}

/// A snippet to paste into a terminal or a configuration file, with a Copy button.
#[component]
pub fn CodeBlock(code: String, #[prop(optional)] test_id: Option<&'static str>) -> impl IntoView {
    view! {
        <div class="code-block">
            <pre class="code" data-testid=test_id>{code.clone()}</pre>
            <CopyButton text=code/>
        </div>
    }
    .into_any()
}

/// A button that asks before it acts. The first click opens a small dialog (an HTML
/// popover, so it needs no JavaScript) saying what will happen; `children` is the form
/// that acts, with its "Confirm …" button. Cancel, Escape or a click outside close it.
#[component]
pub fn Confirm(
    /// Unique on the page.
    id: String,
    /// The button that opens the question.
    label: &'static str,
    /// A question in a few words.
    title: String,
    /// What will happen, and what cannot be undone.
    message: String,
    #[prop(optional)] danger: bool,
    #[prop(optional)] small: bool,
    /// Disables the button that opens the question.
    #[prop(optional, into)]
    disabled: MaybeProp<bool>,
    children: Children,
) -> impl IntoView {
    let class =
        format!("btn {}{}", if danger { "btn-danger" } else { "btn-secondary" }, if small { " btn-small" } else { "" });
    let title_id = format!("{id}-title");
    let (open_target, cancel_target, labelled_by) = (id.clone(), id.clone(), title_id.clone());
    view! {
        <button type="button" class=class popovertarget=open_target disabled=move || disabled.get().unwrap_or(false)>{label}</button>
        <div popover="auto" id=id class="confirm" role="dialog" aria-labelledby=labelled_by>
            <h2 id=title_id>{title}</h2>
            <p>{message}</p>
            <div class="confirm-actions">
                {children()}
                <button type="button" class="btn btn-secondary btn-small" popovertarget=cancel_target popovertargetaction="hide">"Cancel"</button>
            </div>
        </div>
    }
    .into_any()
}

/// A secret that was just issued. It is shown here once and exists nowhere else.
/// `origin` (the URL clients reach Portcullis at) fills in how to send an API key.
#[component]
pub fn SecretReveal(secret: IssuedSecret, #[prop(optional)] origin: Option<String>) -> impl IntoView {
    let what = secret.kind.noun();
    let label = secret.kind.label();
    let how = (secret.kind == CredentialKind::ApiKey).then(|| {
        let origin = origin.unwrap_or_else(|| "$PORTCULLIS_URL".into());
        let curl = format!(
            "# Keep the key out of scripts and history: an environment variable or a secret store\n\
             export PORTCULLIS_API_KEY='{}'\n\n\
             # Send it in the X-API-Key header; it names this client and profile by itself\n\
             curl -H \"X-API-Key: $PORTCULLIS_API_KEY\" {origin}/gw/accounts/accounts",
            secret.secret
        );
        view! {
            <p class="secret-how">"Send it with each request in the " <code>"X-API-Key"</code> " header:"</p>
            <CodeBlock code=curl test_id="api-key-curl"/>
        }
    });
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
            {how}
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

/// A time for a table cell, or "—": the date and the time may go on two lines, but
/// "UTC" stays with its time (a no-break space).
pub fn when(ms: Option<i64>) -> String {
    ms.map(|ms| format_utc(ms).replacen(" UTC", "\u{a0}UTC", 1)).unwrap_or_else(|| "—".to_owned())
}
