use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{SignIn, SignUp};
use crate::components::{with_next, Notice};

/// The page to come back to after signing in or up (`?next=`), carried by both forms and
/// by the link between them.
fn next_page() -> Option<String> {
    use_query_map().read_untracked().get("next").filter(|n| crate::api::after_sign_in(Some(n)) == *n)
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let next = next_page();
    let signup = with_next("/signup", next.as_deref());
    view! {
        <Title text="Sign in"/>
        <div class="auth-page">
            <section class="auth-card">
                <h1>"Sign in"</h1>
                <Notice/>
                {next.is_some().then(|| view! { <p class="alert alert-info" role="status">"Sign in to continue; you will come back to the page you asked for."</p> })}
                <ActionForm action=action attr:class="form">
                    {next.clone().map(|n| view! { <input type="hidden" name="next" value=n/> })}
                    <div class="field">
                        <label for="email">"Email"</label>
                        <input id="email" type="email" name="email" autocomplete="username" required/>
                    </div>
                    <div class="field">
                        <label for="password">"Password"</label>
                        <input id="password" type="password" name="password" autocomplete="current-password" required/>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary">"Sign in"</button>
                    </div>
                </ActionForm>
                <p class="auth-switch">"New here? "<a href=signup>"Create an account"</a></p>
            </section>
        </div>
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let next = next_page();
    let login = with_next("/login", next.as_deref());
    view! {
        <Title text="Create an account"/>
        <div class="auth-page">
            <section class="auth-card">
                <h1>"Create your developer account"</h1>
                <Notice/>
                <ActionForm action=action attr:class="form">
                    {next.clone().map(|n| view! { <input type="hidden" name="next" value=n/> })}
                    <div class="field">
                        <label for="email">"Work email"</label>
                        <input id="email" type="email" name="email" autocomplete="username" required/>
                    </div>
                    <div class="field">
                        <label for="password">"Password"</label>
                        <input id="password" type="password" name="password" autocomplete="new-password" minlength="12" required/>
                        <small class="hint">"At least 12 characters, and not one attackers try first (common or leaked passwords, keyboard patterns). A few unrelated words work well."</small>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary">"Create account"</button>
                    </div>
                </ActionForm>
                <p class="auth-switch">"Already registered? "<a href=login>"Sign in"</a></p>
            </section>
        </div>
    }
}
