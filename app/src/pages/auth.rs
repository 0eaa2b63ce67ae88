use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{SignIn, SignUp};
use crate::components::ErrorBox;

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    view! {
        <Title text="Sign in"/>
        <div class="auth-page">
            <section class="auth-card">
                <h1>"Sign in"</h1>
                {move || action.value().get().and_then(Result::err).map(|e| view! { <ErrorBox error=e/> })}
                <ActionForm action=action attr:class="form">
                    <div class="field">
                        <label for="email">"Email"</label>
                        <input id="email" type="email" name="email" autocomplete="username" required/>
                    </div>
                    <div class="field">
                        <label for="password">"Password"</label>
                        <input id="password" type="password" name="password" autocomplete="current-password" required/>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>"Sign in"</button>
                    </div>
                </ActionForm>
                <p class="auth-switch">"New here? "<a href="/signup">"Create an account"</a></p>
            </section>
        </div>
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    view! {
        <Title text="Create an account"/>
        <div class="auth-page">
            <section class="auth-card">
                <h1>"Create your developer account"</h1>
                {move || action.value().get().and_then(Result::err).map(|e| view! { <ErrorBox error=e/> })}
                <ActionForm action=action attr:class="form">
                    <div class="field">
                        <label for="email">"Work email"</label>
                        <input id="email" type="email" name="email" autocomplete="username" required/>
                    </div>
                    <div class="field">
                        <label for="password">"Password"</label>
                        <input id="password" type="password" name="password" autocomplete="new-password" minlength="12" required/>
                        <small class="hint">"At least 12 characters. A passphrase is best."</small>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-primary" disabled=move || action.pending().get()>"Create account"</button>
                    </div>
                </ActionForm>
                <p class="auth-switch">"Already registered? "<a href="/login">"Sign in"</a></p>
            </section>
        </div>
    }
}
