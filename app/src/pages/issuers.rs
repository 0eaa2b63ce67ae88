//! Trusted issuers (federation): the identity providers whose tokens the gateway accepts
//! for the identities an admin linked to profiles.

use leptos::prelude::*;
use leptos_meta::Title;
use portcullis_domain::model::TrustedIssuerView;
use portcullis_domain::time::format_utc;

use crate::api::{DisableIssuer, RegisterIssuer};
use crate::components::{Confirm, Notice, PageError};

/// The algorithms an issuer may sign with, as the form offers them.
const ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

#[component]
pub fn IssuersAdminPage() -> impl IntoView {
    let register = ServerAction::<RegisterIssuer>::new();
    let disable = ServerAction::<DisableIssuer>::new();
    let issuers = Resource::new(|| (), |_| crate::api::list_issuers());
    view! {
        <Title text="Trusted issuers"/>
        <div class="page-header">
            <div>
                <h1>"Trusted issuers"</h1>
                <p class="subtitle">"Identity providers your agents already get tokens from (Entra ID, Okta, Keycloak, a workload identity issuer). Register one here, then link an identity at it to a client's profile on the client's page: its tokens for that identity are accepted at the gateway and the MCP endpoint as that client, with its grants, limits and audit trail."</p>
            </div>
        </div>
        <Notice/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match issuers.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <div class="empty"><p>"No issuer is trusted: only Portcullis' own tokens and API keys are accepted."</p></div> }.into_any(),
                    Ok(list) => view! { <IssuerTable list disable/> }.into_any(),
                }
            })}
        </Suspense>
        <section class="card" data-testid="register-issuer">
            <h2>"Register an issuer"</h2>
            <ActionForm action=register>
                <div class="field">
                    <label for="issuer">"Issuer (its tokens' " <code>"iss"</code> ", exactly)"</label>
                    <input id="issuer" name="issuer" required maxlength="512" placeholder="https://login.example.com/tenant-id/v2.0"/>
                </div>
                <div class="field">
                    <label for="jwks_uri">"JWKS URL (https)"</label>
                    <input id="jwks_uri" name="jwks_uri" type="url" maxlength="2048" placeholder="https://login.example.com/tenant-id/discovery/v2.0/keys"/>
                    <p class="muted">"Fetched by the server, cached, and fetched again when a token names a key it lacks (at most once per interval). Leave it and the JWKS empty to take the URL from the issuer's OpenID metadata (" <code>".well-known/openid-configuration"</code> "). Or paste the keys instead:"</p>
                </div>
                <div class="field">
                    <label for="jwks">"JWKS (public keys), if there is no URL"</label>
                    <textarea id="jwks" name="jwks" rows="3" class="mono" placeholder=r#"{"keys":[{"kty":"RSA","kid":"…","n":"…","e":"AQAB"}]}"#></textarea>
                </div>
                <div class="field">
                    <label for="audiences">"Accepted audiences (" <code>"aud"</code> "), separated by spaces"</label>
                    <input id="audiences" name="audiences" required placeholder="api://portcullis"/>
                </div>
                <fieldset class="scope-choice">
                    <legend>"Signing algorithms (asymmetric only)"</legend>
                    <div class="field-inline">
                        {ALGORITHMS.iter().map(|a| view! {
                            <label class="check"><input type="checkbox" name="algorithms[]" value=*a checked=*a == "RS256"/>" "{*a}</label>
                        }).collect_view()}
                    </div>
                </fieldset>
                <div class="field">
                    <label for="subject_claim">"Claim that names the caller"</label>
                    <input id="subject_claim" name="subject_claim" value="sub" maxlength="64" placeholder="sub, azp, client_id, appid"/>
                </div>
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary">"Register issuer"</button>
                </div>
            </ActionForm>
        </section>
    }
}

#[component]
fn IssuerTable(list: Vec<TrustedIssuerView>, disable: ServerAction<DisableIssuer>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table table-cards" data-testid="issuers">
                <thead><tr><th>"Issuer"</th><th>"Keys"</th><th>"Audiences"</th><th>"Algorithms"</th><th>"Caller claim"</th><th>"Linked"</th><th>"Status"</th></tr></thead>
                <tbody>
                    {list.into_iter().map(|i| {
                        let keys = match &i.jwks_uri {
                            Some(uri) => view! { <span class="mono wrap-ids">{uri.clone()}</span> }.into_any(),
                            None => view! { <span>{format!("{} pasted key(s)", i.static_keys.len())}</span> }.into_any(),
                        };
                        let status = match i.disabled_at {
                            Some(at) => view! { <span class="badge">"Disabled"</span><br/><span class="muted">{format_utc(at)}</span> }.into_any(),
                            None => {
                                let id = i.id.clone();
                                view! {
                                    <span class="badge badge-production">"Trusted"</span>" "
                                    <Confirm id=format!("confirm-disable-{}", i.id) label="Disable" small=true danger=true
                                        title=format!("Stop trusting {}?", i.issuer)
                                        message="Every token of this issuer is refused from the next request, whatever identity it names. Its links stay on record. This cannot be undone: a new registration would be needed.".into()>
                                        <ActionForm action=disable>
                                            <input type="hidden" name="issuer_id" value=id/>
                                            <button type="submit" class="btn btn-danger btn-small">"Confirm: disable"</button>
                                        </ActionForm>
                                    </Confirm>
                                }.into_any()
                            }
                        };
                        view! {
                            <tr data-testid=format!("issuer-{}", i.id)>
                                <td class="wrap-ids" data-label="Issuer"><span class="mono">{i.issuer.clone()}</span><br/><span class="muted mono">{i.id.clone()}</span></td>
                                <td data-label="Keys">{keys}</td>
                                <td class="mono wrap-ids" data-label="Audiences">{i.audiences.join(" ")}</td>
                                <td class="mono" data-label="Algorithms">{i.algorithms.join(" ")}</td>
                                <td class="mono" data-label="Caller claim">{i.subject_claim.clone()}</td>
                                <td data-label="Linked">{i.linked}</td>
                                <td data-label="Status">{status}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
