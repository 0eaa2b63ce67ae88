//! "What has this agent been doing?" — one client's last 30 days — and the security
//! team's dashboard. Both are aggregates of the audit trail, drawn as server-side SVG.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use portcullis_domain::model::{
    AuditFilter, ClientActivity, CredentialKind, NamedCount, SecurityDashboard, ACTIVITY_DAYS,
};
use portcullis_domain::time::format_utc;

use crate::charts::{Series, StackedBars};
use crate::components::{when, PageError};

const ALLOWED: Series = Series { label: "allowed", class: "bar-allowed" };
const REFUSED: Series = Series { label: "refused", class: "bar-refused" };

/// A two-column table of counts; where `link` gives one, the name links to the audit
/// search it summarises.
fn counts(
    title: &'static str,
    empty: &'static str,
    rows: Vec<NamedCount>,
    link: impl Fn(&str) -> Option<String>,
) -> impl IntoView {
    view! {
        <section class="card">
            <h2>{title}</h2>
            {if rows.is_empty() {
                view! { <p class="muted">{empty}</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap"><table class="table">
                        <tbody>
                            {rows.into_iter().map(|r| {
                                let name = match link(&r.name) {
                                    Some(href) => view! { <a href=href>{r.name}</a> }.into_any(),
                                    None => r.name.into_any(),
                                };
                                view! { <tr><td class="mono">{name}</td><td class="num">{r.count}</td></tr> }
                            }).collect_view()}
                        </tbody>
                    </table></div>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn ClientActivityPage() -> impl IntoView {
    let params = use_params_map();
    let activity = Resource::new(move || params.read().get("id").unwrap_or_default(), crate::api::client_activity);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match activity.await {
                    Err(e) => view! { <PageError error=e back_href="/clients" back_label="Back to the clients"/> }.into_any(),
                    Ok(a) => view! { <ActivityView activity=a/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ActivityView(activity: ClientActivity) -> impl IntoView {
    let c = activity.client;
    let id = c.id.clone();
    let total: i64 = activity.days.iter().map(|d| d.allowed + d.refused).sum();
    let refused: i64 = activity.days.iter().map(|d| d.refused).sum();
    let search = format!("/audit?client={}&since=30d", c.id);
    let reason_link = {
        let id = id.clone();
        move |reason: &str| {
            let search = AuditFilter {
                client: Some(id.clone()),
                since: Some("30d".into()),
                decision: Some(reason.to_owned()),
                ..Default::default()
            };
            (!reason.is_empty()).then(|| format!("/audit?{}", search.to_query(false)))
        }
    };
    let attempt_link = {
        let id = id.clone();
        move |reason: &str| {
            let search = AuditFilter {
                named_client: Some(id.clone()),
                since: Some("30d".into()),
                decision: Some(reason.to_owned()),
                ..Default::default()
            };
            (!reason.is_empty()).then(|| format!("/audit?{}", search.to_query(false)))
        }
    };
    let task_link = |task: &str| {
        let search = AuditFilter { task: Some(task.to_owned()), ..Default::default() };
        Some(format!("/audit?{}", search.to_query(false)))
    };
    let behalf_link = {
        let id = id.clone();
        move |acting: &str| {
            let search = AuditFilter {
                subject: Some(id.clone()),
                client: Some(acting.to_owned()),
                since: Some("30d".into()),
                ..Default::default()
            };
            Some(format!("/audit?{}", search.to_query(false)))
        }
    };
    view! {
        <Title text=format!("{} · activity", c.name)/>
        <div class="page-header">
            <div>
                <h1>{c.name.clone()} " — last " {ACTIVITY_DAYS} " days"</h1>
                <p class="subtitle">{format!("{} · owned by {}", c.kind.label(), c.owner_email)}</p>
            </div>
            <div class="actions">
                <a class="btn btn-secondary" href=format!("/clients/{id}")>"Client"</a>
                <a class="btn btn-secondary" href=search>"Search its requests"</a>
            </div>
        </div>
        <section class="card">
            <dl class="kv" data-testid="activity-summary">
                <dt>"Requests"</dt><dd data-testid="activity-total">{total}</dd>
                <dt>"Refused"</dt><dd data-testid="activity-refused">{refused}</dd>
                <dt>"Last seen"</dt><dd>{activity.last_seen.map(format_utc).unwrap_or_else(|| "never".into())}</dd>
            </dl>
            <StackedBars
                caption="Requests per day (UTC)".into()
                days=activity.days.iter().map(|d| d.day).collect()
                values=activity.days.iter().map(|d| vec![d.allowed, d.refused]).collect()
                series=vec![ALLOWED, REFUSED]
                test_id="activity-chart"/>
        </section>
        <div class="card-grid">
            {counts("Top endpoints", "No endpoint called in this period.", activity.top_endpoints, |_| None)}
            {counts("Refusals by reason", "Nothing refused in this period.", activity.refusals, reason_link)}
            {counts(
                "Refused attempts naming this client",
                "No refused request named this client in this period.",
                activity.attempts,
                attempt_link,
            )}
            {counts("Tasks (per-task tokens)", "No per-task token used in this period.", activity.tasks, task_link)}
            {counts(
                "Acting on this client's behalf",
                "No other client acted on this client's behalf in this period.",
                activity.on_its_behalf,
                behalf_link,
            )}
        </div>
        <section class="card">
            <h2>"Credentials used"</h2>
            {if activity.credentials.is_empty() {
                view! { <p class="muted">"No credential used in this period."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap"><table class="table" data-testid="credentials-used">
                        <thead><tr><th>"Credential"</th><th>"Kind"</th><th>"Requests"</th><th>"Last used"</th></tr></thead>
                        <tbody>
                            {activity.credentials.into_iter().map(|u| view! {
                                <tr>
                                    <td class="mono">{u.prefix.map(|p| format!("{}…", portcullis_domain::model::shown_prefix(&p))).unwrap_or_else(|| u.credential_id.clone())}</td>
                                    <td>{u.kind.map_or("deleted", CredentialKind::label)}</td>
                                    <td class="num">
                                        {u.requests}
                                        {(u.proven_requests > 0).then(|| view! {
                                            " " <span class="badge badge-dpop" data-testid="dpop-requests" title="Requests that proved possession of their token's key">{format!("{} DPoP", u.proven_requests)}</span>
                                        })}
                                        {(u.certificate_requests > 0).then(|| view! {
                                            " " <span class="badge badge-dpop" data-testid="mtls-requests" title="Requests that came with the client certificate their token is bound to">{format!("{} mTLS", u.certificate_requests)}</span>
                                        })}
                                    </td>
                                    <td class="when">{when(Some(u.last_used_at))}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table></div>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn SecurityDashboardPage() -> impl IntoView {
    let dashboard = Resource::new(|| (), |_| crate::api::security_dashboard());
    view! {
        <Title text="Security"/>
        <div class="page-header">
            <div>
                <h1>"Security overview"</h1>
                <p class="subtitle">{format!("The last {ACTIVITY_DAYS} days of gateway, MCP and token requests.")}</p>
            </div>
            <div class="actions">
                <a class="btn btn-secondary" href="/audit?decision=refused&since=24h">"Refusals, last 24 h"</a>
                <a class="btn btn-secondary" href="/reviews">"Access review"</a>
            </div>
        </div>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match dashboard.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(d) => view! { <DashboardView dashboard=d/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn DashboardView(dashboard: SecurityDashboard) -> impl IntoView {
    let d = dashboard;
    view! {
        <section class="card">
            <h2>"Refusals per day"</h2>
            <StackedBars
                caption="Refused requests by status (UTC days)".into()
                days=d.refusals.iter().map(|r| r.day).collect()
                values=d.refusals.iter().map(|r| vec![r.unauthorized, r.forbidden, r.rate_limited, r.other]).collect()
                series=vec![
                    Series { label: "401 unauthenticated", class: "bar-401" },
                    Series { label: "403 forbidden", class: "bar-403" },
                    Series { label: "429 rate limited", class: "bar-429" },
                    Series { label: "other refusals", class: "bar-other" },
                ]
                test_id="refusal-chart"/>
        </section>
        <div class="card-grid">
            <section class="card">
                <h2>"Traffic by client type"</h2>
                <div class="table-wrap"><table class="table" data-testid="traffic-by-type">
                    <thead><tr><th>"Client type"</th><th>"Allowed"</th><th>"Refused"</th></tr></thead>
                    <tbody>
                        {d.by_type.into_iter().map(|t| {
                            // Unidentified callers have no type to search by.
                            let name = if t.client_type == "unidentified" {
                                t.client_type.into_any()
                            } else {
                                let href = format!("/audit?since=30d&client_type={}", t.client_type);
                                view! { <a href=href>{t.client_type}</a> }.into_any()
                            };
                            view! { <tr><td>{name}</td><td class="num">{t.allowed}</td><td class="num">{t.refused}</td></tr> }
                        }).collect_view()}
                    </tbody>
                </table></div>
            </section>
            <section class="card">
                <h2>"Clients refused most"</h2>
                {if d.most_refused.is_empty() {
                    view! { <p class="muted">"No client was refused in this period."</p> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap"><table class="table" data-testid="most-refused">
                            <thead><tr><th>"Client"</th><th>"Refused"</th><th>"Of"</th></tr></thead>
                            <tbody>
                                {d.most_refused.into_iter().map(|c| {
                                    let href = format!("/clients/{}/activity", c.client_id);
                                    view! {
                                        <tr>
                                            <td><a href=href>{c.client_name.clone().unwrap_or_else(|| c.client_id.clone())}</a>
                                                " " <span class="muted">{c.client_type.clone().unwrap_or_default()}</span></td>
                                            <td class="num">{c.refused}</td>
                                            <td class="num">{c.total}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any()
                }}
            </section>
        </div>
    }
}
