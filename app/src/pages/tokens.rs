use leptos::prelude::*;
use leptos_meta::Title;
use portcullis_domain::time::format_utc;

use crate::api::{CreateToken, Outcome, RevokeToken};
use crate::components::{when, CodeBlock, Confirm, CopyValue, Notice, PageError};
use crate::PageOutcome;
use portcullis_domain::model::IssuedToken;
use portcullis_domain::scopes::{Area, Scopes};

/// What a token may do, in words: a summary where one fits, else its scope names.
fn scope_words(scopes: Scopes) -> String {
    scopes.summary().map(str::to_owned).unwrap_or_else(|| scopes.names().join(", "))
}

/// An MCP client's configuration for the Management MCP with this token.
fn manage_mcp_config(token: &str) -> String {
    let config = serde_json::json!({
        "mcpServers": {
            "portcullis-manage": {
                "type": "http",
                "url": "$PORTCULLIS_URL/mcp/manage",
                "headers": { "Authorization": format!("Bearer {token}") }
            }
        }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// A token just created, shown once.
fn token_reveal(t: IssuedToken) -> AnyView {
    view! {
        <section class="secret-box" data-testid="secret-box">
            <p class="secret-warning">"Copy this token now. It is shown only once: Portcullis keeps only a hash of it."</p>
            <CopyValue label="Token" value=t.token.clone() test_id="secret-value"/>
            <p class="muted" data-testid="token-scopes">{format!("{} · {} · expires {}", t.name, scope_words(t.scopes), format_utc(t.expires_at))}</p>
            <CodeBlock code=format!("curl -H 'Authorization: Bearer {}' {}/api/v1/clients", t.token, "$PORTCULLIS_URL")/>
            <p class="muted">"Or give it to your own agent as the Management MCP (an MCP client's configuration):"</p>
            <CodeBlock code=manage_mcp_config(&t.token)/>
        </section>
    }
    .into_any()
}

/// Personal access tokens for the management API.
#[component]
pub fn TokensPage() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let outcome = expect_context::<PageOutcome>();
    let tokens = Resource::new(|| (), |_| crate::api::list_tokens());
    view! {
        <Title text="Access tokens"/>
        <div class="page-header">
            <div>
                <h1>"Personal access tokens"</h1>
                <p class="subtitle">
                    "Tokens let your scripts call the management API ("<code>"/api/v1"</code>") as you, never beyond your role, and only in the areas you choose. "
                    <a href="/api/v1/openapi.json">"OpenAPI document"</a>
                </p>
            </div>
        </div>
        // The token the form just created.
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match outcome.await {
                    Ok(Some(Outcome::Token(t))) => Some(token_reveal(t)),
                    _ => None,
                }
            })}
        </Suspense>
        <Notice/>
        <section class="card">
            <h2>"Create a token"</h2>
            <ActionForm action=create attr:class="form">
                <div class="row">
                    <div class="field">
                        <label for="token-name">"Name"</label>
                        <input id="token-name" name="name" required maxlength="80" placeholder="e.g. CI pipeline"/>
                    </div>
                    <div class="field">
                        <label for="token-days">"Lifetime (days)"</label>
                        <input id="token-days" name="days" type="number" min="1" max="366" value="90"/>
                    </div>
                </div>
                <fieldset class="scope-choice">
                    <legend>"What it may do"</legend>
                    <p class="muted">"Give a script only what it needs. A token never goes beyond your role: a developer's token with People cannot disable anyone."</p>
                    {Area::ALL.into_iter().map(|area| {
                        let id = format!("scope-{}", area.as_str());
                        view! {
                            <div class="scope-row">
                                <label for=id.clone()>{area.label()}</label>
                                <select id=id name=format!("access[{}]", area.as_str()) data-testid=format!("scope-{}", area.as_str())>
                                    <option value="none">"No access"</option>
                                    <option value="read" selected>"Read"</option>
                                    {area.writable().then(|| view! { <option value="write">"Read and change"</option> })}
                                </select>
                            </div>
                        }
                    }).collect_view()}
                </fieldset>
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary">"Create token"</button>
                </div>
            </ActionForm>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match tokens.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <div class="empty"><p>"No tokens yet."</p></div> }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="table">
                                <thead><tr><th>"Name"</th><th>"Starts with"</th><th>"May"</th><th>"Created"</th><th>"Expires"</th><th>"Last used"</th><th>"Status"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|t| {
                                        let (class, label) = if t.revoked_at.is_some() { ("badge badge-revoked", "Revoked") } else if t.active { ("badge badge-active", "Active") } else { ("badge badge-expired", "Expired") };
                                        let id = t.id.clone();
                                        let question = format!("Revoke the token {}?", t.name);
                                        view! {
                                            <tr>
                                                <td>{t.name.clone()}</td>
                                                <td class="mono">{format!("{}…", t.prefix)}</td>
                                                <td class="scopes" data-testid="token-scope-cell">{scope_words(t.scopes)}</td>
                                                <td class="when">{when(Some(t.created_at))}</td>
                                                <td class="when">{when(Some(t.expires_at))}</td>
                                                <td class="when">{when(t.last_used_at)}</td>
                                                <td><span class=class>{label}</span></td>
                                                <td>{t.active.then(|| view! {
                                                    <Confirm id=format!("confirm-revoke-{id}") label="Revoke" danger=true small=true title=question
                                                        message="Every script using it is refused from its next call to the management API. This cannot be undone; create a new token for scripts that still need one.".into()>
                                                        <ActionForm action=revoke>
                                                            <input type="hidden" name="token_id" value=id.clone()/>
                                                            <button type="submit" class="btn btn-danger btn-small">"Confirm revoke"</button>
                                                        </ActionForm>
                                                    </Confirm>
                                                })}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
