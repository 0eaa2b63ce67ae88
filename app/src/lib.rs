//! The Portcullis developer portal: pages, components and server functions.
//! Pages stay thin; the work happens in `portcullis-domain` behind the server functions.

pub mod api;
pub mod charts;
pub mod components;
pub mod error;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

use crate::api::SignOut;
use crate::components::Topbar;
use crate::pages::*;

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    ssr::content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.ico"/>
                <AutoReload options=options.clone()/>
                // The build names the stylesheet, script and wasm after their content
                // (`hash-files`), so each of these links names one build's files, which
                // the server lets browsers cache for good.
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Signing out; the current-user resource follows it (and every navigation).
#[derive(Clone, Copy)]
pub struct SignOutAction(pub ServerAction<SignOut>);

/// Becomes true once the page has hydrated: what needs JavaScript to do anything (a Copy
/// button) appears only then. Forms never wait for it: posted without JavaScript, one
/// that issues a secret has it shown once on the page it leads to (`ssr::reveal_on`).
#[derive(Clone, Copy)]
pub struct Hydrated(pub RwSignal<bool>);

/// Bumped after each grant decision, so that the count of waiting requests beside
/// Approvals follows.
#[derive(Clone, Copy)]
pub struct GrantsDecided(pub RwSignal<u32>);

pub type CurrentUser = Resource<Result<Option<portcullis_domain::model::UserView>, error::AppError>>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let hydrated = RwSignal::new(false);
    provide_context(Hydrated(hydrated));
    // Marks the page interactive once hydrated; end-to-end tests wait for it before
    // clicking, as a person would wait for a page to finish loading.
    Effect::new(move |_| {
        hydrated.set(true);
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Title formatter=|page: String| if page.is_empty() { "Portcullis".to_owned() } else { format!("{page} · Portcullis") }/>
        <Router>
            <Portal/>
        </Router>
    }
}

/// Everything inside the router. Pages create their own actions: `<Routes>` is what hands
/// a no-JavaScript form's error (`?__err=`) to an action, and only to those created
/// inside it.
#[component]
fn Portal() -> impl IntoView {
    let sign_out = ServerAction::<SignOut>::new();
    let location = leptos_router::hooks::use_location();
    // Signing in or up ends in a redirect, so following the path catches both.
    let user: CurrentUser =
        Resource::new(move || (location.pathname.get(), sign_out.version().get()), |_| api::current_user());
    provide_context(SignOutAction(sign_out));
    provide_context(GrantsDecided(RwSignal::new(0)));
    provide_context(user);

    view! {
            <Topbar/>
            <main class="page">
                // Async SSR: every page arrives complete, so it reads (and its forms post)
                // before the wasm loads or without it; streaming would leave fallbacks.
                <Routes fallback=|| view! { <NotFoundPage/> }>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/signup") view=SignupPage ssr=SsrMode::Async/>
                    <Route path=path!("/clients") view=ClientsPage ssr=SsrMode::Async/>
                    <Route path=path!("/clients/new") view=NewClientPage ssr=SsrMode::Async/>
                    <Route path=path!("/clients/:id") view=ClientPage ssr=SsrMode::Async/>
                    <Route path=path!("/catalog") view=CatalogPage ssr=SsrMode::Async/>
                    <Route path=path!("/tokens") view=TokensPage ssr=SsrMode::Async/>
                    <Route path=path!("/clients/:id/activity") view=ClientActivityPage ssr=SsrMode::Async/>
                    <Route path=path!("/security") view=SecurityDashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("/reviews") view=ReviewsPage ssr=SsrMode::Async/>
                    <Route path=path!("/audit") view=AuditSearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/audit/events/:id") view=AuditEventPage ssr=SsrMode::Async/>
                    <Route path=path!("/audit/requests/:id") view=AuditEventPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/approvals") view=ApprovalsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/products") view=ProductsAdminPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users") view=UsersAdminPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/issuers") view=IssuersAdminPage ssr=SsrMode::Async/>
                </Routes>
            </main>
            <footer class="footer">"Portcullis · one gateway, one set of credentials, one audit trail for apps and AI agents"</footer>
    }
}
