//! The access review: who has access to what, and should they still? Flagged clients
//! come first; every action asks for a reason and is audited with the reviewer.

use leptos::prelude::*;
use leptos_meta::Title;
use portcullis_domain::model::{ReviewClient, ReviewFlag};
use portcullis_domain::time::format_date;

use crate::api::ReviewAction;
use crate::components::{when, Notice, PageError};

fn flag_badges(flags: &[ReviewFlag]) -> impl IntoView {
    flags
        .iter()
        .map(|f| view! { <span class="badge badge-expiring" data-flag=f.as_str()>{f.label()}</span> " " })
        .collect_view()
}

/// A form for one review action: hidden action and target, a reason, a button.
fn action_form(
    act: ServerAction<ReviewAction>,
    action: &'static str,
    target: String,
    button: &'static str,
    danger: bool,
    days: bool,
) -> impl IntoView {
    let class = if danger { "btn btn-danger btn-small" } else { "btn btn-secondary btn-small" };
    view! {
        <ActionForm action=act attr:class="inline-form review-form">
            <input type="hidden" name="action" value=action/>
            <input type="hidden" name="target" value=target/>
            {days.then(|| view! {
                <label class="days">
                    <input name="days" type="number" min="1" max="365" value="90" aria-label="Days to extend by"/>
                    <span aria-hidden="true">"days"</span>
                </label>
            })}
            <input name="reason" required maxlength="500" placeholder="Reason" aria-label=format!("Reason to {}", button.to_lowercase())/>
            <button type="submit" class=class>{button}</button>
        </ActionForm>
    }
}

#[component]
pub fn ReviewsPage() -> impl IntoView {
    let act = ServerAction::<ReviewAction>::new();
    let review = Resource::new(|| (), |_| crate::api::access_review());
    view! {
        <Title text="Access review"/>
        <div class="page-header">
            <div>
                <h1>"Access review"</h1>
                <p class="subtitle">"Every client, its owner, what it may use and with which credentials. Flagged items first; each action is recorded with your reason."</p>
            </div>
        </div>
        <Notice/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match review.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <div class="empty"><p>"No client is registered yet."</p></div> }.into_any(),
                    Ok(list) => {
                        let flagged = list.iter().filter(|c| !c.flags.is_empty()).count();
                        let total = list.len();
                        view! {
                            <p class="muted" data-testid="review-summary">{format!("{flagged} of {total} clients need a look.")}</p>
                            // Keyed: after an action the list is rebuilt, and a reason typed
                            // for one item must never reappear on another.
                            <For each=move || list.clone() key=|c| (c.client.id.clone(), c.reviewed_at, c.credentials.len(), c.grants.iter().map(|g| g.grant.expires_at).collect::<Vec<_>>()) let:c>
                                <ReviewCard client=c act/>
                            </For>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ReviewCard(client: ReviewClient, act: ServerAction<ReviewAction>) -> impl IntoView {
    let c = client.client;
    let (credentials, grants) = (client.credentials, client.grants);
    let testid = format!("review-{}", c.id);
    let last_review = client
        .reviewed_at
        .map(|t| format!("Last reviewed {} by {}", format_date(t), client.reviewed_by.clone().unwrap_or_default()));
    view! {
        <section class="card" data-testid=testid>
            <div class="row">
                <h2><a href=format!("/clients/{}/activity", c.id)>{c.name.clone()}</a></h2>
                <span class=format!("badge badge-{}", c.kind.as_str())>{c.kind.label()}</span>
                {flag_badges(&client.flags)}
                <span class="spacer"></span>
                <span class="muted">{last_review.unwrap_or_else(|| "Never reviewed".into())}</span>
            </div>
            <dl class="kv">
                <dt>"Owner"</dt><dd>{c.owner_email.clone()} {client.owner_disabled.then(|| view! { " " <span class="badge badge-rejected">"disabled"</span> })}</dd>
                <dt>"Client ID"</dt><dd class="mono">{c.id.clone()}</dd>
            </dl>
            <h3>"Credentials"</h3>
            {if credentials.is_empty() {
                view! { <p class="muted">"No usable credential."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap"><table class="table review-table" data-testid="review-credentials">
                        <thead><tr><th>"Profile"</th><th>"Kind"</th><th>"Starts with"</th><th>"Age"</th><th>"Last used"</th><th>"Flags"</th><th></th></tr></thead>
                        <tbody>
                            <For each=move || credentials.clone() key=|r| r.credential.id.clone() let:r>{{
                                let cr = r.credential;
                                view! {
                                    <tr data-credential=cr.id.clone()>
                                        <td>{r.environment.label()}</td>
                                        <td class="nowrap">{cr.kind.label()}</td>
                                        <td class="mono" title=cr.prefix.clone()>{format!("{}…", portcullis_domain::model::shown_prefix(&cr.prefix))}</td>
                                        <td class="when">{format!("{} days ", r.age_days)}<span class="muted">{format!("(since {})", format_date(cr.created_at))}</span></td>
                                        <td class="when">{when(cr.last_used_at)}</td>
                                        <td>{flag_badges(&r.flags)}</td>
                                        <td>{action_form(act, "revoke_credential", cr.id.clone(), "Revoke", true, false)}</td>
                                    </tr>
                                }
                            }}</For>
                        </tbody>
                    </table></div>
                }.into_any()
            }}
            <h3>"Grants"</h3>
            {if grants.is_empty() {
                view! { <p class="muted">"No approved grant."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap"><table class="table review-table" data-testid="review-grants">
                        <thead><tr><th>"Product"</th><th>"Profile"</th><th>"Scopes"</th><th>"Approved by"</th><th>"Expires"</th><th>"Last used"</th><th>"Flags"</th></tr></thead>
                        <tbody>
                            // Each grant's actions get a row of their own beneath it: beside the
                            // grant they made the table wider than its card.
                            <For each=move || grants.clone() key=|r| (r.grant.id.clone(), r.grant.expires_at) let:r>{{
                                let g = r.grant;
                                view! {
                                    <tr data-grant=g.id.clone()>
                                        <td>{g.product_name.clone()}</td>
                                        <td>{g.environment.label()}</td>
                                        <td class="mono">{g.scopes.join(" ")}</td>
                                        <td>{g.decided_by.clone().unwrap_or_else(|| "—".into())}</td>
                                        <td class="nowrap">{g.expires_at.map(format_date).unwrap_or_else(|| "—".into())}</td>
                                        <td class="when">{when(r.last_used_at)}</td>
                                        <td>{flag_badges(&r.flags)}</td>
                                    </tr>
                                    <tr class="actions-row" data-grant-actions=g.id.clone()>
                                        <td colspan="7">
                                            <div class="review-actions">
                                                {action_form(act, "extend_grant", g.id.clone(), "Extend", false, true)}
                                                {action_form(act, "end_grant", g.id.clone(), "End", true, false)}
                                            </div>
                                        </td>
                                    </tr>
                                }
                            }}</For>
                        </tbody>
                    </table></div>
                }.into_any()
            }}
            <div class="row review-done">
                {action_form(act, "mark_reviewed", c.id.clone(), "Mark reviewed", false, false)}
            </div>
        </section>
    }
}
