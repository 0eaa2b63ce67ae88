//! The Portcullis developer portal: pages, components and server functions.
//! Pages stay thin; the work happens in `portcullis-domain` behind the server functions.

pub mod api;
pub mod components;
pub mod error;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::api::{SignIn, SignOut, SignUp};
use crate::components::Topbar;
use crate::pages::*;

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
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The actions that change who is signed in; the current-user resource follows them.
#[derive(Clone, Copy)]
pub struct AuthActions {
    pub sign_in: ServerAction<SignIn>,
    pub sign_up: ServerAction<SignUp>,
    pub sign_out: ServerAction<SignOut>,
}

pub type CurrentUser = Resource<Result<Option<portcullis_domain::model::UserView>, error::AppError>>;

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let auth =
        AuthActions { sign_in: ServerAction::new(), sign_up: ServerAction::new(), sign_out: ServerAction::new() };
    let user: CurrentUser = Resource::new(
        move || (auth.sign_in.version().get(), auth.sign_up.version().get(), auth.sign_out.version().get()),
        |_| api::current_user(),
    );
    provide_context(auth);
    provide_context(user);
    // Marks the page interactive once hydrated; end-to-end tests wait for it before
    // clicking, as a person would wait for a page to finish loading.
    Effect::new(|_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/portcullis.css"/>
        <Title formatter=|page: String| if page.is_empty() { "Portcullis".to_owned() } else { format!("{page} · Portcullis") }/>
        <Router>
            <Topbar/>
            <main class="page">
                <Routes fallback=|| view! { <NotFoundPage/> }>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/signup") view=SignupPage/>
                    <Route path=path!("/clients") view=ClientsPage/>
                    <Route path=path!("/clients/new") view=NewClientPage/>
                    <Route path=path!("/clients/:id") view=ClientPage/>
                    <Route path=path!("/catalog") view=CatalogPage/>
                    <Route path=path!("/tokens") view=TokensPage/>
                    <Route path=path!("/admin/approvals") view=ApprovalsPage/>
                    <Route path=path!("/admin/products") view=ProductsAdminPage/>
                    <Route path=path!("/admin/users") view=UsersAdminPage/>
                </Routes>
            </main>
            <footer class="footer">"Portcullis · one gateway, one set of credentials, one audit trail for apps and AI agents"</footer>
        </Router>
    }
}
