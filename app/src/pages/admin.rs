use leptos::prelude::*;
use leptos_meta::Title;
use portcullis_domain::model::GRANT_LIFETIME_DAYS;
use portcullis_domain::time::format_utc;

use crate::api::{DecideGrant, Outcome};
use crate::components::{ErrorBox, Notice, PageError};
use crate::PageOutcome;

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    let decide = ServerAction::<DecideGrant>::new();
    let pending = Resource::new(|| (), |_| crate::api::pending_grants());
    let outcome = expect_context::<PageOutcome>();
    view! {
        <Title text="Approvals"/>
        <div class="page-header">
            <div>
                <h1>"Production access requests"</h1>
                <p class="subtitle">{format!("Approve or reject each request with a reason; both are kept for access reviews. An approval lasts up to {GRANT_LIFETIME_DAYS} days; access reviews can extend it.")}</p>
            </div>
        </div>
        <Notice/>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let Ok(Some(Outcome::Decided(g))) = outcome.await else { return None };
                let until = g.expires_at.map(|t| format!(", until {}", format_utc(t))).unwrap_or_default();
                let said = format!("{} for {} ({}): {}{until}.", g.product_name, g.client_name, g.environment.label().to_lowercase(), g.status.as_str());
                Some(view! { <div class="alert alert-success" role="status">{said}</div> })
            })}
        </Suspense>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match pending.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <div class="empty"><p>"No requests are waiting."</p></div> }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="table table-cards" data-testid="pending">
                                <thead><tr><th>"Client"</th><th>"Product"</th><th>"Scopes"</th><th>"Requested by"</th><th>"Justification"</th><th>"Decision"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|g| { let days_id = format!("days-{}", g.id); let (days_for, grant_id) = (days_id.clone(), g.id.clone()); view! {
                                        <tr data-grant=g.id.clone()>
                                            <td class="wrap-ids" data-label="Client">{g.client_name.clone()}<br/><span class="muted mono">{g.client_id.clone()}</span></td>
                                            <td data-label="Product">{g.product_name.clone()}<br/><span class=format!("badge badge-{}", g.environment.as_str())>{g.environment.label()}</span></td>
                                            <td class="mono" data-label="Scopes">{g.scopes.join(" ")}</td>
                                            <td data-label="Requested by">{g.requested_by.clone()}<br/><span class="muted">{format_utc(g.requested_at)}</span></td>
                                            <td data-label="Justification">{g.justification.clone()}</td>
                                            // One reason for either decision; the button pressed says which.
                                            <td class="decision" data-label="Decision">
                                                <ActionForm action=decide attr:class="decision-form">
                                                    <input type="hidden" name="grant_id" value=grant_id/>
                                                    <input name="reason" placeholder="Reason (kept for reviews)" required maxlength="500" aria-label=format!("Reason for the decision on {}", g.product_name)/>
                                                    <label class="days" for=days_for>
                                                        "Approve for "
                                                        <input id=days_id name="days" type="number" min="1" max=GRANT_LIFETIME_DAYS value=GRANT_LIFETIME_DAYS/>
                                                        " days"
                                                    </label>
                                                    <div class="row">
                                                        <button type="submit" name="decision" value="approve" class="btn btn-primary btn-small">"Approve"</button>
                                                        <button type="submit" name="decision" value="reject" class="btn btn-danger btn-small">"Reject"</button>
                                                    </div>
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

use crate::api::{CreateProduct, ImportOpenapi, SetProductPolicy, SetUserDisabled, SetUserRole, UpdateProduct};
use crate::components::{method_badge, tag_list};
use portcullis_domain::model::{ProductView, Role};

/// Publishing: products, their upstreams and endpoints (admins).
#[component]
pub fn ProductsAdminPage() -> impl IntoView {
    let create = ServerAction::<CreateProduct>::new();
    let import = ServerAction::<ImportOpenapi>::new();
    let update = ServerAction::<UpdateProduct>::new();
    let limit = ServerAction::<SetProductPolicy>::new();
    let products = Resource::new(|| (), |_| crate::api::list_products());
    // Fixed while the server runs: its upstream TLS profiles are read once at start.
    let tls_profiles = Resource::new(|| (), |_| crate::api::upstream_tls_profiles());
    view! {
        <Title text="Products"/>
        <div class="page-header">
            <div>
                <h1>"Publish products"</h1>
                <p class="subtitle">"Each product is an upstream API with a sandbox and a production base URL. Import its OpenAPI document to list its endpoints."</p>
            </div>
        </div>
        <Notice/>
        // Open again when a post of it was refused, with the reason.
        <details class="card" open=move || create.value().get().is_some_and(|r| r.is_err())>
            <summary><h2>"Publish a new product"</h2></summary>
            <ActionForm action=create attr:class="form">
                <div class="row">
                    <div class="field"><label for="p-name">"Name"</label><input id="p-name" name="name" required placeholder="Loans"/></div>
                    <div class="field"><label for="p-slug">"Slug"</label><input id="p-slug" name="slug" required placeholder="loans"/><small class="hint">"The gateway path: /gw/<slug>/…"</small></div>
                </div>
                <div class="field"><label for="p-desc">"Description"</label><input id="p-desc" name="description"/></div>
                <div class="row">
                    <div class="field"><label for="p-owner">"Owner"</label><input id="p-owner" name="owner" placeholder="Team that runs it"/></div>
                    <div class="field"><label for="p-tags">"Classification tags"</label><input id="p-tags" name="tags" placeholder="pii, internal"/></div>
                </div>
                <div class="row">
                    <div class="field"><label for="p-sandbox">"Sandbox upstream"</label><input id="p-sandbox" name="sandbox_url" required placeholder="https://sandbox.loans.internal"/></div>
                    <div class="field"><label for="p-production">"Production upstream"</label><input id="p-production" name="production_url" required placeholder="https://loans.internal"/></div>
                </div>
                <div class="form-actions"><button type="submit" class="btn btn-primary">"Publish product"</button></div>
            </ActionForm>
        </details>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (products.await, tls_profiles.await) {
                    (Err(e), _) | (_, Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
                    (Ok(list), Ok(names)) => list.into_iter().map(|p| view! { <ProductAdminCard product=p import update limit tls_profiles=names.clone()/> }).collect_view().into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProductAdminCard(
    product: ProductView,
    import: ServerAction<ImportOpenapi>,
    update: ServerAction<UpdateProduct>,
    limit: ServerAction<SetProductPolicy>,
    /// The upstream TLS profiles this server has.
    tls_profiles: Vec<String>,
) -> impl IntoView {
    let testid = format!("admin-product-{}", product.slug);
    let rate = product.rate_per_minute.map(|r| r.to_string()).unwrap_or_default();
    let current_tls = product.upstream_tls.clone();
    // Named by the product but not configured here (another replica's, say): kept
    // selected, so that saving the rest of the policy does not drop it.
    let foreign_tls = current_tls.clone().filter(|n| !tls_profiles.contains(n));
    let edit = product.clone();
    let product_id = product.id.clone();
    let label = format!("OpenAPI document for {}", product.name);
    view! {
        <section class="card product" data-testid=testid>
            <div class="product-head">
                <h2>{product.name.clone()}</h2>
                {tag_list(&product.tags)}
            </div>
            <dl class="kv">
                <dt>"Gateway path"</dt><dd class="mono">{format!("/gw/{}/…", product.slug)}</dd>
                <dt>"Sandbox upstream"</dt><dd class="mono">{product.sandbox_url.clone()}</dd>
                <dt>"Production upstream"</dt><dd class="mono">{product.production_url.clone()}</dd>
                <dt>"Rate limit (all callers)"</dt>
                <dd data-testid="product-rate-limit">{product.rate_per_minute.map(|r| format!("{r} requests/minute")).unwrap_or_else(|| "none beyond each profile's own".into())}</dd>
                <dt>"API keys in the URL"</dt>
                <dd>{if product.api_key_in_query { "accepted as ?api_key= (never forwarded)" } else { "refused: headers only" }}</dd>
                <dt>"Upstream TLS"</dt>
                <dd data-testid="product-upstream-tls">{match &product.upstream_tls { Some(name) => format!("profile {name}"), None => "system roots (default)".into() }}</dd>
            </dl>
            <ActionForm action=limit attr:class="inline-form">
                <input type="hidden" name="product_id" value=product.id.clone()/>
                <label>"Requests/minute, all callers " <input name="rate_per_minute" type="number" min="1" value=rate placeholder="none"/></label>
                <label title="For clients that cannot set headers. The key is never forwarded upstream, and tokens in URLs stay refused.">
                    <input type="checkbox" name="api_key_in_query" checked=product.api_key_in_query/>
                    " Accept API keys as ?api_key="
                </label>
                <label title="The CA bundle and client certificate the gateway uses towards this upstream: a directory under the server's --upstream-tls-dir.">
                    "Upstream TLS "
                    <select name="upstream_tls">
                        <option value="" selected=current_tls.is_none()>"System roots (default)"</option>
                        {tls_profiles.into_iter().map(|name| {
                            let selected = current_tls.as_deref() == Some(name.as_str());
                            let label = name.clone();
                            view! { <option value=name selected=selected>{label}</option> }
                        }).collect_view()}
                        {foreign_tls.map(|name| { let label = format!("{name} (not configured on this server)"); view! { <option value=name selected=true>{label}</option> } })}
                    </select>
                </label>
                <button type="submit" class="btn btn-secondary btn-small">"Save gateway policy"</button>
            </ActionForm>
            {if product.endpoints.is_empty() {
                view! { <div class="empty"><p>"No endpoints yet. Import an OpenAPI document below."</p></div> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table class="table" data-testid="endpoints">
                            <thead><tr><th>"Method"</th><th>"Path"</th><th>"Operation"</th><th>"Scope"</th><th>"Description"</th></tr></thead>
                            <tbody>
                                {product.endpoints.iter().map(|e| view! {
                                    <tr>
                                        <td>{method_badge(&e.method)}</td>
                                        <td class="mono">{e.path_template.clone()}</td>
                                        <td class="mono">{e.operation_id.clone()}</td>
                                        <td><code>{e.scope.clone()}</code></td>
                                        <td>{e.summary.clone()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
            <details>
                <summary>"Edit product"</summary>
                <ActionForm action=update attr:class="form">
                    <input type="hidden" name="product_id" value=edit.id.clone()/>
                    <div class="row">
                        <div class="field"><label>"Name"<input name="name" required value=edit.name.clone()/></label></div>
                        <div class="field"><label>"Slug"<input name="slug" required value=edit.slug.clone()/></label></div>
                    </div>
                    <div class="field"><label>"Description"<input name="description" value=edit.description.clone()/></label></div>
                    <div class="row">
                        <div class="field"><label>"Owner"<input name="owner" value=edit.owner.clone()/></label></div>
                        <div class="field"><label>"Classification tags"<input name="tags" value=edit.tags.join(", ")/></label></div>
                    </div>
                    <div class="row">
                        <div class="field"><label>"Sandbox upstream"<input name="sandbox_url" required value=edit.sandbox_url.clone()/></label></div>
                        <div class="field"><label>"Production upstream"<input name="production_url" required value=edit.production_url.clone()/></label></div>
                    </div>
                    <div class="form-actions"><button type="submit" class="btn btn-primary">"Save product"</button></div>
                </ActionForm>
            </details>
            <details>
                <summary>"Import an OpenAPI 3 document"</summary>
                <ActionForm action=import attr:class="form">
                    <input type="hidden" name="product_id" value=product_id/>
                    <div class="field">
                        <label>{label.clone()}</label>
                        <textarea name="document" rows="10" required aria-label=label placeholder="openapi: 3.0.3 … (JSON or YAML)"></textarea>
                        <small class="hint">"Operations become endpoints with their parameter and body schemas. GET needs the read scope, other methods write, unless an operation sets x-portcullis-scope."</small>
                    </div>
                    <div class="form-actions"><button type="submit" class="btn btn-primary">"Import"</button></div>
                </ActionForm>
            </details>
        </section>
    }
}

/// People, their roles, and whether they may act at all (admins).
#[component]
pub fn UsersAdminPage() -> impl IntoView {
    let set_role = ServerAction::<SetUserRole>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let users = Resource::new(|| (), |_| crate::api::list_users());
    view! {
        <Title text="People"/>
        <div class="page-header">
            <div>
                <h1>"People"</h1>
                <p class="subtitle">"Developers register clients; the security team reads every client and the audit trail; admins publish products and approve production access. A disabled person cannot sign in, and their clients are refused at the gateway."</p>
            </div>
        </div>
        <Notice/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="table">
                                <thead><tr><th>"Email"</th><th>"Role"</th><th>"Change role"</th><th>"Access"</th></tr></thead>
                                <tbody>
                                    // Keyed rows: a reason typed into one row stays with that
                                    // person when the list refreshes and reorders.
                                    <For each=move || list.clone() key=|a| (a.user.id.clone(), a.user.role, a.disabled) let:a>{{
                                        let current = a.user.role;
                                        let id = a.user.id.clone();
                                        let role_id = id.clone();
                                        let disabled = a.disabled;
                                        let testid = format!("person-{}", a.user.email);
                                        view! {
                                            <tr data-testid=testid>
                                                <td>{a.user.email.clone()}" "{disabled.then(|| view! { <span class="tag tag-pii">"disabled"</span> })}</td>
                                                <td><span class="role-badge">{a.user.role.as_str()}</span></td>
                                                <td>
                                                    <ActionForm action=set_role attr:class="inline-form">
                                                        <input type="hidden" name="user_id" value=role_id/>
                                                        <select name="role" aria-label="Role">
                                                            {Role::ALL.iter().map(|r| view! { <option value=r.as_str() selected=*r == current>{r.as_str()}</option> }).collect_view()}
                                                        </select>
                                                        <button type="submit" class="btn btn-secondary btn-small">"Save"</button>
                                                    </ActionForm>
                                                </td>
                                                <td>
                                                    <ActionForm action=set_disabled attr:class="inline-form">
                                                        <input type="hidden" name="user_id" value=id/>
                                                        <input type="hidden" name="disabled" value=if disabled { "false" } else { "true" }/>
                                                        <input name="reason" required aria-label="Reason" placeholder="Reason (kept in the audit trail)"/>
                                                        <button type="submit" class=if disabled { "btn btn-secondary btn-small" } else { "btn btn-danger btn-small" }>
                                                            {if disabled { "Enable" } else { "Disable" }}
                                                        </button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }}</For>
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
