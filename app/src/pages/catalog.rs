use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use portcullis_domain::model::{Environment, GrantStatus, ProductView, GRANT_LIFETIME_DAYS};

use crate::api::{Catalog, Outcome, ProfileOption, RequestAccess};
use crate::components::{method_badge, tag_list, Notice, PageError};
use crate::PageOutcome;

#[component]
pub fn CatalogPage() -> impl IntoView {
    let catalog = Resource::new(|| (), |_| crate::api::get_catalog());
    let request = ServerAction::<RequestAccess>::new();
    let outcome = expect_context::<PageOutcome>();
    // Arriving from a client's page ("Request a product"), its profiles come first.
    let from_client = StoredValue::new(use_query_map().read_untracked().get("client").unwrap_or_default());
    view! {
        <Title text="Catalog"/>
        <div class="page-header">
            <div>
                <h1>"API catalog"</h1>
                <p class="subtitle">"Products published through the gateway. Sandbox access is granted at once; production access waits for an admin."</p>
            </div>
        </div>
        // A refused request, once for the page (every card's form posts to the same place).
        <Notice/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                // The request just made, said in its product's card.
                let requested = match outcome.await {
                    Ok(Some(Outcome::Requested(g))) => Some(g),
                    _ => None,
                };
                match catalog.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(Catalog { products, profiles }) => {
                        if products.is_empty() {
                            return view! { <div class="empty"><p>"No products are published yet."</p></div> }.into_any();
                        }
                        let mut profiles = profiles;
                        from_client.with_value(|c| profiles.sort_by_key(|p| p.client_id != *c));
                        products.into_iter().map(|p| {
                            let requested = requested.clone().filter(|g| g.product_id == p.id);
                            view! { <ProductCard product=p profiles=profiles.clone() request requested/> }
                        }).collect_view().into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProductCard(
    product: ProductView,
    profiles: Vec<ProfileOption>,
    request: ServerAction<RequestAccess>,
    /// The request for this product just made.
    requested: Option<portcullis_domain::model::GrantView>,
) -> impl IntoView {
    let testid = format!("product-{}", product.slug);
    let select_id = format!("profile-for-{}", product.slug);
    let product_id = product.id.clone();
    let no_profiles = profiles.is_empty();
    let scopes = product.scopes();
    // A request's answer comes back to this card (`#product-…`), not to the page's top.
    let anchor = format!("product-{}", product.id);
    view! {
        <section class="card product" data-testid=testid id=anchor>
            <div class="product-head">
                <h2>{product.name.clone()}</h2>
                {tag_list(&product.tags)}
            </div>
            <p class="product-desc">{product.description.clone()}</p>
            <p class="muted">{format!("Gateway path /gw/{}/… · owned by {}", product.slug, if product.owner.is_empty() { "—" } else { &product.owner })}</p>
            <div class="table-wrap">
                <table class="table">
                    <thead><tr><th>"Method"</th><th>"Path"</th><th>"Scope"</th><th>"Description"</th></tr></thead>
                    <tbody>
                        {product.endpoints.iter().map(|e| view! {
                            <tr>
                                <td>{method_badge(&e.method)}</td>
                                <td class="mono">{e.path_template.clone()}</td>
                                <td><code>{e.scope.clone()}</code></td>
                                <td>{e.summary.clone()} {e.sensitive.then(|| view! { " " <span class="tag tag-pii">"sensitive"</span> })}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            <h3>"Request access"</h3>
            {requested.map(|g| {
                let msg = match g.status {
                    GrantStatus::Approved => format!("Granted to {} ({}) with scopes {}. ", g.client_name, g.environment.label(), g.scopes.join(", ")),
                    _ => format!("Requested for {} ({}). An admin will review it. ", g.client_name, g.environment.label()),
                };
                let client = format!("/clients/{}", g.client_id);
                let go = format!("Go to {}", g.client_name);
                view! { <div class="alert alert-success" role="status">{msg}<a href=client>{go}</a></div> }
            })}
            {if no_profiles {
                view! { <p class="muted">"Register a client first: "<a href="/clients/new">"register a client"</a>"."</p> }.into_any()
            } else {
                view! {
                    <ActionForm action=request attr:class="form inline-request">
                        <input type="hidden" name="product_id" value=product_id.clone()/>
                        <div class="field profile">
                            <label for=select_id.clone()>"Client and profile"</label>
                            <select id=select_id name="profile_id">
                                {profiles.iter().map(|p| view! {
                                    <option value=p.profile_id.clone()>{format!("{} — {}", p.client_name, p.environment.label())}</option>
                                }).collect_view()}
                            </select>
                        </div>
                        <div class="field-inline">
                            {scopes.iter().map(|s| view! {
                                <label class="check"><input type="checkbox" name="scopes[]" value=s.clone() checked=s == "read"/>" "{s.clone()}</label>
                            }).collect_view()}
                        </div>
                        <div class="field">
                            <label>"Justification"</label>
                            <input name="justification" placeholder="Required for production: what the client needs it for"/>
                        </div>
                        <div class="form-actions">
                            <button type="submit" class="btn btn-primary">"Request access"</button>
                        </div>
                    </ActionForm>
                    <small class="hint">{format!("{} grants expire after at most {GRANT_LIFETIME_DAYS} days unless an access review extends them.", Environment::Production.label())}</small>
                }.into_any()
            }}
        </section>
    }
}
