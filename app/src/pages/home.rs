use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text=""/>
        <div class="hero">
            <h1>"Give AI agents your APIs without a second security perimeter"</h1>
            <p class="lead">
                "Agents are clients like any app: the same credentials, the same enforcement, "
                "the same audit trail. Register your agent as a client, request the products it needs, and "
                "watch every call it makes."
            </p>
            <div class="actions">
                <a class="btn btn-primary" href="/clients/new">"Register a client"</a>
                <a class="btn btn-secondary" href="/catalog">"Browse the catalog"</a>
            </div>
        </div>
        <ul class="feature-list">
            <li><strong>"Self-service onboarding"</strong>" Register agents, apps and services, and receive client credentials shown once."</li>
            <li><strong>"Least privilege"</strong>" Sandbox access at once; production access after an admin approves it, with a reason and an expiry."</li>
            <li><strong>"Rotate and revoke"</strong>" Rotate a secret with a grace period, revoke a credential with immediate effect."</li>
        </ul>
    }
}

#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <div class="empty">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. "<a href="/">"Go to the start page"</a>"."</p>
        </div>
    }
}
