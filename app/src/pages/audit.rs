//! The security team's audit search and the detail of one event. The search lives in
//! the URL (`/audit?client=…&since=24h`): the form is a plain GET form, so a search can
//! be bookmarked, shared and run without JavaScript, and pages are links.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_location, use_params_map, use_query_map};
use portcullis_domain::model::{
    request_phrase, AuditFilter, AuditRecord, ClientKind, Decision, Reason, RequestChannel,
};
use portcullis_domain::time::format_iso;

use crate::components::{when, PageError};

/// The filter fields of the form, in the order they appear: (name, label, placeholder).
const TEXT_FIELDS: [(&str, &str, &str); 12] = [
    ("client", "Client ID", "cl_…"),
    ("named_client", "Attempts naming client", "cl_…"),
    ("profile", "Profile ID", "pf_…"),
    ("product", "Product", "accounts"),
    ("endpoint", "Endpoint", "/accounts/{id}"),
    ("request_id", "Request ID", "X-Request-Id"),
    ("task", "Task ID", "a per-task token's task_id"),
    ("subject", "On behalf of", "cl_… (delegated tokens)"),
    ("acting_client", "Acting client in chain", "cl_…"),
    ("path", "Path contains", "/accounts"),
    ("actor", "Acting person", "email"),
    ("decision", "Decision or reason", "refused, rate_limited…"),
];

const QUICK_RANGES: [(&str, &str); 5] =
    [("15m", "15 min"), ("1h", "1 h"), ("24h", "24 h"), ("7d", "7 days"), ("30d", "30 days")];

/// The search a URL query names, parsed as the server parses it. Unknown keys are
/// ignored; the server validates the values.
fn filter_of(search: &str) -> AuditFilter {
    serde_urlencoded::from_str(search.trim_start_matches('?')).unwrap_or_default()
}

fn select(
    name: &'static str,
    label: &'static str,
    current: String,
    options: Vec<(&'static str, String)>,
) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <select name=name>
                <option value="" selected=current.is_empty()>"Any"</option>
                {options.into_iter().map(|(value, text)| {
                    let selected = current == value;
                    view! { <option value=value selected=selected>{text}</option> }
                }).collect_view()}
            </select>
        </label>
    }
}

#[component]
pub fn AuditSearchPage() -> impl IntoView {
    let location = use_location();
    let query = use_query_map();
    let results = Resource::new(move || location.search.get(), crate::api::search_audit);
    view! {
        <Title text="Audit trail"/>
        <div class="page-header">
            <div>
                <h1>"Audit trail"</h1>
                <p class="subtitle">"Every gateway, MCP and token request, allowed or refused, and every administrative change. Newest first; times in UTC."</p>
            </div>
        </div>
        {move || {
            let q = query.read();
            let get = |k: &str| q.get(k).unwrap_or_default();
            let current = filter_of(&location.search.read());
            let since = get("since");
            view! {
                <section class="card">
                    <form method="get" action="/audit" class="filters" data-testid="audit-filters">
                        {TEXT_FIELDS.into_iter().map(|(name, label, hint)| view! {
                            <label class="field">
                                <span>{label}</span>
                                <input name=name value=get(name) placeholder=hint maxlength="200"
                                    list=(name == "decision").then_some("audit-reasons")/>
                            </label>
                        }).collect_view()}
                        // The audit vocabulary, offered as the field is typed in: the
                        // search accepts exactly these.
                        <datalist id="audit-reasons">
                            {Decision::ALL.iter().map(|d| d.as_str())
                                .chain(Reason::ALL.iter().map(|r| r.as_str()).filter(|r| *r != "allowed"))
                                .map(|v| view! { <option value=v></option> }).collect_view()}
                        </datalist>
                        {select("client_type", "Client type", get("client_type"),
                            ClientKind::ALL.iter().map(|k| (k.as_str(), k.label().to_owned())).collect())}
                        {select("channel", "Channel", get("channel"),
                            RequestChannel::ALL.iter().map(|c| (c.as_str(), c.label().to_owned()))
                                .chain([("portal", "Portal"), ("api", "Management API"), ("cli", "CLI")]
                                    .map(|(v, t)| (v, t.to_owned())))
                                .collect())}
                        {select("method", "Method", get("method"),
                            ["GET", "POST", "PUT", "PATCH", "DELETE"].into_iter().map(|m| (m, m.to_owned())).collect())}
                        {select("status", "Status", get("status"),
                            ["2xx", "3xx", "4xx", "5xx"].into_iter().map(|s| (s, s.to_owned())).collect())}
                        {select("since", "Last", since.clone(),
                            QUICK_RANGES.into_iter().map(|(v, t)| (v, t.to_owned())).collect())}
                        <label class="field">
                            <span>"From (UTC)"</span>
                            <input type="datetime-local" name="from" value=get("from")/>
                        </label>
                        <label class="field">
                            <span>"To (UTC)"</span>
                            <input type="datetime-local" name="to" value=get("to")/>
                        </label>
                        <div class="filter-actions">
                            <button type="submit" class="btn btn-primary">"Search"</button>
                            <a class="btn btn-secondary" href="/audit">"Clear"</a>
                        </div>
                    </form>
                    <div class="row quick-ranges">
                        <span class="muted">"Quick range:"</span>
                        {QUICK_RANGES.into_iter().map(|(v, t)| {
                            let quick = AuditFilter { since: Some(v.to_owned()), from: None, to: None, ..current.clone() };
                            let href = format!("/audit?{}", quick.to_query(false));
                            let class = if since == v { "chip chip-on" } else { "chip" };
                            view! { <a class=class href=href>{t}</a> }
                        }).collect_view()}
                        <span class="spacer"></span>
                        <a class="btn btn-secondary btn-small" data-testid="export-csv" rel="external" download=""
                            href=format!("/api/v1/audit/export?format=csv&{}", current.to_query(false))>"Export CSV"</a>
                        <a class="btn btn-secondary btn-small" data-testid="export-jsonl" rel="external" download=""
                            href=format!("/api/v1/audit/export?format=jsonl&{}", current.to_query(false))>"Export JSON Lines"</a>
                    </div>
                </section>
            }
        }}
        <Suspense fallback=|| view! { <p class="muted">"Searching…"</p> }>
            {move || Suspend::new(async move {
                match results.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(page) if page.events.is_empty() => view! {
                        <div class="empty" data-testid="audit-empty"><p>"No events match this search."</p></div>
                    }.into_any(),
                    Ok(page) => {
                        let filter = filter_of(&location.search.read_untracked());
                        let older = page.next.clone().map(|c| format!("/audit?{}", AuditFilter { cursor: Some(c), ..filter.clone() }.to_query(true)));
                        let first = filter.cursor.is_some().then(|| format!("/audit?{}", filter.to_query(false)));
                        // Each event links back to this page of these results.
                        let back = serde_urlencoded::to_string([("back", filter.to_query(true))]).unwrap_or_default();
                        view! {
                            <div class="table-wrap">
                                <table class="table" data-testid="audit-results">
                                    <thead><tr><th>"When (UTC)"</th><th>"Channel"</th><th>"Client"</th><th>"Request or action"</th><th>"Status"</th><th>"Decision"</th><th>"Latency"</th></tr></thead>
                                    <tbody>{page.events.into_iter().map(|e| view! { <AuditRow event=e back=back.clone()/> }).collect_view()}</tbody>
                                </table>
                            </div>
                            <div class="row pager">
                                {first.map(|href| view! { <a class="btn btn-secondary btn-small" href=href>"Newest"</a> })}
                                <span class="spacer"></span>
                                {older.map(|href| view! { <a class="btn btn-secondary btn-small" data-testid="older" href=href>"Older →"</a> })}
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// What a row did, in one phrase: `GET /gw/accounts/accounts`, `execute_endpoint → …`,
/// or the administrative action.
fn summary(e: &AuditRecord) -> String {
    if e.action != "request" {
        return format!("{} {}", e.action, e.target_id.clone().unwrap_or_default());
    }
    request_phrase(
        e.method.as_deref().unwrap_or_default(),
        e.product.as_deref(),
        e.path.as_deref().unwrap_or_default(),
        e.tool.as_deref(),
        e.endpoint.is_some(),
    )
}

fn decision_badge(e: &AuditRecord) -> impl IntoView {
    e.reason.clone().map(|reason| {
        let class =
            if e.decision.as_deref() == Some("allowed") { "badge badge-approved" } else { "badge badge-rejected" };
        view! { <span class=class>{reason}</span> }
    })
}

#[component]
fn AuditRow(event: AuditRecord, back: String) -> impl IntoView {
    let href = format!("/audit/events/{}?{back}", event.id);
    let who = match (&event.client_name, &event.actor_email) {
        (Some(name), _) => name.clone(),
        (None, Some(email)) => email.clone(),
        (None, None) => event.client_id.clone().unwrap_or_else(|| "—".into()),
    };
    let kind = event.client_type.as_deref().and_then(|k| k.parse::<ClientKind>().ok());
    view! {
        <tr data-event=event.id.to_string()>
            <td class="when"><a href=href>{when(Some(event.occurred_at))}</a></td>
            <td>{event.channel.clone()}</td>
            <td>
                {who}
                {kind.map(|k| view! { " " <span class=format!("badge badge-{}", k.as_str())>{k.label()}</span> })}
            </td>
            <td class="mono request">{summary(&event)}</td>
            <td>{event.status.map(|s| s.to_string()).unwrap_or_default()}</td>
            <td>{decision_badge(&event)}</td>
            <td class="nowrap">{event.latency_us.map(|l| format!("{:.1} ms", l as f64 / 1000.0)).unwrap_or_default()}</td>
        </tr>
    }
}

/// `/audit/events/:id`, and `/audit/requests/:id` for a request id (Test access links
/// there: the row is written a moment after the response, under that id).
#[component]
pub fn AuditEventPage() -> impl IntoView {
    let params = use_params_map();
    let location = use_location();
    // The results this event was opened from (`?back=<their query>`), read through the
    // search's own filter so that only a search of the audit trail comes out.
    let back = StoredValue::new(match use_query_map().read_untracked().get("back") {
        Some(q) => (format!("/audit?{}", filter_of(&q).to_query(true)), "← Back to the results"),
        None => ("/audit".to_owned(), "← Audit search"),
    });
    let event = Resource::new(
        move || (params.read().get("id").unwrap_or_default(), location.pathname.get().starts_with("/audit/requests/")),
        |(key, by_request)| crate::api::audit_event(key, by_request),
    );
    view! {
        <Title text="Audit event"/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match event.await {
                    Err(e) => view! { <PageError error=e back_href="/audit" back_label="Back to the audit search"/> }.into_any(),
                    Ok(e) => view! { <EventDetail event=e back=back.get_value()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn EventDetail(event: AuditRecord, back: (String, &'static str)) -> impl IntoView {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let num = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
    let client_link = event.client_id.clone().map(|id| {
        let href = format!("/clients/{id}");
        let name = event.client_name.clone().unwrap_or_else(|| id.clone());
        view! { <a href=href>{name}</a> " " <span class="mono">{id}</span> }
    });
    let summary_json = (event.summary != "{}").then(|| event.summary.clone());
    view! {
        <div class="page-header">
            <div>
                <h1>{summary(&event)}</h1>
                <p class="subtitle">{format!("{} · {}", format_iso(event.occurred_at), event.channel)}</p>
            </div>
            <div class="actions"><a class="btn btn-secondary" href=back.0 data-testid="back-to-results">{back.1}</a></div>
        </div>
        <section class="card" data-testid="audit-event">
            <dl class="kv">
                <dt>"Event"</dt><dd class="mono">{event.id}</dd>
                <dt>"Request ID"</dt><dd class="mono" data-testid="event-request-id">{opt(&event.request_id)}</dd>
                <dt>"Time (UTC)"</dt><dd>{format_iso(event.occurred_at)}</dd>
                <dt>"Channel"</dt><dd>{event.channel.clone()}</dd>
                <dt>"Client"</dt><dd>{client_link.map(IntoAny::into_any).unwrap_or_else(|| "—".into_any())}</dd>
                <dt>"Client type"</dt><dd>{opt(&event.client_type)}</dd>
                <dt>"Profile"</dt><dd class="mono">{opt(&event.profile_id)}</dd>
                <dt>"Credential"</dt><dd class="mono">{opt(&event.credential_id)}</dd>
                <dt>"Acting person"</dt><dd>{opt(&event.actor_email)}</dd>
                <dt>"Product"</dt><dd>{opt(&event.product)}</dd>
                <dt>"Endpoint"</dt><dd class="mono">{opt(&event.endpoint)}</dd>
                <dt>"MCP tool"</dt><dd class="mono">{opt(&event.tool)}</dd>
                <dt>"Method and path"</dt><dd class="mono">{format!("{} {}", opt(&event.method), opt(&event.path))}</dd>
                <dt>"Status"</dt><dd data-testid="event-status">{num(event.status)}</dd>
                <dt>"Decision"</dt><dd><span data-testid="event-decision">{format!("{} ({})", opt(&event.decision), opt(&event.reason))}</span></dd>
                <dt>"Latency"</dt><dd>{event.latency_us.map(|l| format!("{:.2} ms", l as f64 / 1000.0)).unwrap_or_else(|| "—".into())}</dd>
                <dt>"Bytes in / out"</dt><dd>{format!("{} / {}", num(event.bytes_in), num(event.bytes_out))}</dd>
                <dt>"Client IP"</dt><dd class="mono">{opt(&event.client_ip)}</dd>
                <dt>"User agent"</dt><dd class="mono">{opt(&event.user_agent)}</dd>
                <dt>"Trace ID"</dt><dd class="mono" data-testid="event-trace-id">{opt(&event.trace_id)}</dd>
                <dt>"Proven key"</dt><dd class="mono" data-testid="event-sender-key">{event.sender_key.clone().unwrap_or_else(|| "— (bearer credential)".into())}</dd>
                {event.subject_id.clone().map(|subject| view! {
                    <dt>"On behalf of"</dt><dd class="mono" data-testid="event-subject">{subject}</dd>
                    <dt>"Actor chain"</dt><dd class="mono" data-testid="event-actor-chain">{event.actor_chain.clone().unwrap_or_default().replace(' ', " via ")}</dd>
                })}
                {event.task_id.clone().map(|task| {
                    let all = format!("/audit?{}", AuditFilter { task: Some(task.clone()), ..AuditFilter::default() }.to_query(false));
                    view! {
                        <dt>"Task"</dt>
                        <dd class="mono" data-testid="event-task">{task}" " <a href=all>"every request of this task"</a></dd>
                    }
                })}
                {(event.action != "request").then(|| view! {
                    <dt>"Action"</dt><dd>{event.action.clone()}</dd>
                    <dt>"Target"</dt><dd class="mono">{format!("{} {}", opt(&event.target_type), opt(&event.target_id))}</dd>
                })}
            </dl>
            {summary_json.map(|s| view! { <h3>"Details"</h3><pre class="code">{s}</pre> })}
        </section>
    }
}
