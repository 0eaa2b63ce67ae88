use leptos::prelude::*;
use leptos_meta::Title;
use portcullis_domain::time::format_utc;

use crate::api::DecideGrant;
use crate::components::ErrorBox;

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    let decide = ServerAction::<DecideGrant>::new();
    let pending = Resource::new(
        move || decide.version().get(),
        |_| crate::api::pending_grants(),
    );
    view! {
        <Title text="Approvals"/>
        <div class="page-header">
            <div>
                <h1>"Production access requests"</h1>
                <p class="subtitle">"Approve or reject each request with a reason; both are kept for access reviews."</p>
            </div>
        </div>
        {move || match decide.value().get() {
            Some(Ok(g)) => Some(view! { <div class="alert alert-success" role="status">{format!("{} for {}: {}.", g.product_name, g.client_name, g.status.as_str())}</div> }.into_any()),
            Some(Err(e)) => Some(view! { <ErrorBox error=e/> }.into_any()),
            None => None,
        }}
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match pending.await {
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <div class="empty"><p>"No requests are waiting."</p></div> }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="table" data-testid="pending">
                                <thead><tr><th>"Client"</th><th>"Product"</th><th>"Scopes"</th><th>"Requested by"</th><th>"Justification"</th><th>"Decision"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|g| { let approve_id = g.id.clone(); let reject_id = g.id.clone(); view! {
                                        <tr data-grant=g.id.clone()>
                                            <td>{g.client_name.clone()}<br/><span class="muted mono">{g.client_id.clone()}</span></td>
                                            <td>{g.product_name.clone()}</td>
                                            <td class="mono">{g.scopes.join(" ")}</td>
                                            <td>{g.requested_by.clone()}<br/><span class="muted">{format_utc(g.requested_at)}</span></td>
                                            <td>{g.justification.clone()}</td>
                                            <td>
                                                <ActionForm action=decide attr:class="inline-form">
                                                    <input type="hidden" name="grant_id" value=approve_id/>
                                                    <input type="hidden" name="decision" value="approve"/>
                                                    <input name="reason" placeholder="Reason" required aria-label="Reason to approve"/>
                                                    <button type="submit" class="btn btn-primary btn-small">"Approve"</button>
                                                </ActionForm>
                                                <ActionForm action=decide attr:class="inline-form">
                                                    <input type="hidden" name="grant_id" value=reject_id/>
                                                    <input type="hidden" name="decision" value="reject"/>
                                                    <input name="reason" placeholder="Reason" required aria-label="Reason to reject"/>
                                                    <button type="submit" class="btn btn-danger btn-small">"Reject"</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
