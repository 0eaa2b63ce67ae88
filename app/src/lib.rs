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

use crate::components::Topbar;
use crate::pages::*;

/// A form posts once: a second press while the first post is on its way would issue a
/// second secret that no page ever shows. The button pressed is disabled once the
/// browser has read the form, and enabled again if the page comes back from the
/// back-forward cache. Plain script, not an island: it must work before the wasm.
const SUBMIT_ONCE: &str = "document.addEventListener('submit',function(e){var b=e.submitter;\
if(b&&!e.defaultPrevented){setTimeout(function(){b.disabled=true;b.dataset.sent='';},0);}});\
addEventListener('pageshow',function(){document.querySelectorAll('[data-sent]').forEach(function(b){\
b.disabled=false;delete b.dataset.sent;});});";

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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
                // Islands: the pages are rendered on the server only, and their forms are
                // plain posts; the wasm carries only the few parts that need JavaScript
                // (`#[island]`), so it stays small.
                <HydrationScripts options islands=true/>
                <script nonce=leptos::nonce::use_nonce()>{SUBMIT_ONCE}</script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

pub type CurrentUser = Resource<Result<Option<portcullis_domain::model::UserView>, error::AppError>>;

/// What the form posted last did, for the page it came back to (see `components::Notice`).
pub type PageOutcome = Resource<Result<Option<api::Outcome>, error::AppError>>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| if page.is_empty() { "Portcullis".to_owned() } else { format!("{page} · Portcullis") }/>
        <Router>
            <Portal/>
        </Router>
        <HydrationMark/>
    }
}

/// Marks the page interactive once its islands have hydrated (this one is the last of
/// them); end-to-end tests wait for it before clicking, as a person would wait for a
/// page to finish loading.
#[island]
fn HydrationMark() -> impl IntoView {
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// Everything inside the router. Pages create their own actions: `<Routes>` is what hands
/// a form's error (`?__err=`, on the page the post came back to) to an action, and only
/// to those created inside it.
#[component]
fn Portal() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    let user: CurrentUser = Resource::new(|| (), |_| api::current_user());
    // Taken (and so removed) once, here: a page and its notice read the one copy. The
    // removal is saved with the session when the answer starts, which is after the whole
    // page rendered only because every route is `SsrMode::Async`: a streamed route would
    // show the outcome again on the next visit.
    let outcome: PageOutcome = Resource::new(move || location.pathname.get(), api::take_outcome);
    provide_context(user);
    provide_context(outcome);

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
