use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use portcullis_domain::model::{
    ClientDetail, ClientKind, CredentialView, Environment, GrantView, IssuedSecret, ProfileDetail, RegisteredKey,
    RequestView, SenderConstraint, TrustedIssuerView,
};
use portcullis_domain::time::{format_date, format_utc};

use crate::api::{
    AddProfile, IssueApiKey, Issued, LinkIdentity, Outcome, RegisterCertificateSubject, RegisterClient,
    RegisterPublicKey, RevokeCredential, RotateSecret, SetClientSuspended, SetMayAct, SetRateLimit,
    SetSenderConstraint, SetTokenLifetime, Tested,
};
use crate::components::{when, CodeBlock, Confirm, ErrorBox, Notice, PageError, SecretReveal, SignInFirst};
use crate::error::AppError;
use crate::{CurrentUser, PageOutcome};
use portcullis_domain::model::{request_phrase, CredentialState};

fn kind_badge(kind: ClientKind) -> impl IntoView {
    let class = format!("badge badge-{}", kind.as_str());
    view! { <span class=class>{kind.label()}</span> }
}

fn env_badge(env: Environment) -> impl IntoView {
    let class = format!("badge badge-{}", env.as_str());
    view! { <span class=class>{env.label()}</span> }
}

#[component]
pub fn ClientsPage() -> impl IntoView {
    let clients = Resource::new(|| (), |_| crate::api::list_clients());
    view! {
        <Title text="Clients"/>
        <div class="page-header">
            <div>
                <h1>"Your clients"</h1>
                <p class="subtitle">"Agents, applications and services you registered, with their profiles."</p>
            </div>
            <div class="actions"><a class="btn btn-primary" href="/clients/new">"Register a client"</a></div>
        </div>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match clients.await {
                    Err(e) => view! { <PageError error=e back_href="/" back_label="Go to the start page"/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <div class="empty">
                            <p>"You have not registered a client yet."</p>
                            <a class="btn btn-primary" href="/clients/new">"Register your first client"</a>
                        </div>
                    }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="table">
                                <thead><tr><th>"Name"</th><th>"Kind"</th><th>"Profiles"</th><th>"Client ID"</th><th>"Registered"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|c| {
                                        let href = format!("/clients/{}", c.id);
                                        view! {
                                            <tr>
                                                <td><a href=href>{c.name.clone()}</a></td>
                                                <td>{kind_badge(c.kind)}</td>
                                                <td>{c.environments.iter().map(|e| env_badge(*e)).collect_view()}</td>
                                                <td class="mono">{c.id.clone()}</td>
                                                <td class="nowrap muted">{format_date(c.created_at)}</td>
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

#[component]
pub fn NewClientPage() -> impl IntoView {
    let register = ServerAction::<RegisterClient>::new();
    view! {
        <SignInFirst/>
        <Title text="Register a client"/>
        <div class="page-header">
            <div>
                <h1>"Register a client"</h1>
                <p class="subtitle">"An AI agent, application or service that will call APIs through Portcullis. It starts with a sandbox profile."</p>
            </div>
        </div>
        <section class="card">
            <Notice/>
            <ActionForm action=register attr:class="form">
                <div class="field">
                    <label for="name">"Name"</label>
                    <input id="name" name="name" required maxlength="80" placeholder="e.g. Support triage agent"/>
                </div>
                <div class="field">
                    <label for="kind">"Kind"</label>
                    <select id="kind" name="kind">
                        {ClientKind::ALL.iter().map(|k| view! { <option value=k.as_str()>{k.label()}</option> }).collect_view()}
                    </select>
                    <small class="hint">"Agents get no special path: the kind is recorded so reviews and the audit trail can tell them apart."</small>
                </div>
                <div class="field">
                    <label for="description">"Description"</label>
                    <textarea id="description" name="description" rows="3" maxlength="1000" placeholder="What it does and who runs it"></textarea>
                </div>
                <div class="form-actions">
                    <button type="submit" class="btn btn-primary">"Register"</button>
                    <a class="btn btn-secondary" href="/clients">"Cancel"</a>
                </div>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn ClientPage() -> impl IntoView {
    let params = use_params_map();
    let client_id = move || params.read().get("id").unwrap_or_default();
    // The page's forms post to these; a refused post comes back here with its error.
    let rotate = ServerAction::<RotateSecret>::new();
    let issue_key = ServerAction::<IssueApiKey>::new();
    let add_profile = ServerAction::<AddProfile>::new();
    let revoke = ServerAction::<RevokeCredential>::new();
    let register_key = ServerAction::<RegisterPublicKey>::new();
    let link = ServerAction::<LinkIdentity>::new();
    let register_subject = ServerAction::<RegisterCertificateSubject>::new();
    let credentials = CredentialActions { rotate, issue_key, revoke, register_key, link, register_subject };
    let set_rate = ServerAction::<SetRateLimit>::new();
    let set_ttl = ServerAction::<SetTokenLifetime>::new();
    let set_constraint = ServerAction::<SetSenderConstraint>::new();
    let set_may_act = ServerAction::<SetMayAct>::new();
    let policy = PolicyActions { set_rate, set_ttl, set_constraint, set_may_act };
    let suspend = ServerAction::<SetClientSuspended>::new();
    let user = expect_context::<CurrentUser>();
    let outcome = expect_context::<PageOutcome>();
    let origin = Resource::new(|| (), |_| crate::api::public_url());
    let detail = Resource::new(client_id, crate::api::get_client);
    // The issuers an admin may link identities from (none for anyone else).
    let issuers = Resource::new(|| (), |_| crate::api::issuer_choices());
    let recent = Resource::new(client_id, crate::api::recent_requests);
    view! {
        <Notice/>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let origin = origin.await.unwrap_or_else(|_| "$PORTCULLIS_URL".into());
                let admin = matches!(user.await, Ok(Some(u)) if u.is_admin());
                let issuers = issuers.await.unwrap_or_default();
                let recent = recent.await;
                // What the form posted last did, shown above everything else.
                let (done, tested) = match outcome.await {
                    Ok(Some(Outcome::Registered(done))) => (Some(view! {
                        <div class="alert alert-success" role="status">{format!("{} is registered.", done.client_name)}</div>
                        <SecretReveal secret=done.secret/>
                    }.into_any()), None),
                    Ok(Some(Outcome::Issued(what, secret))) => (Some(issued_view(what, secret, origin.clone())), None),
                    Ok(Some(Outcome::KeyRegistered(key))) => (Some(registered_view(key, origin.clone())), None),
                    Ok(Some(Outcome::SubjectRegistered(r))) => (Some(view! {
                        <div class="alert alert-success" role="status" data-testid="subject-registered">
                            "Certificates your authority issues with the subject " <code>{r.subject.clone()}</code>
                            {format!(" now authenticate the {} profile with only its client id (tls_client_auth), and its tokens are bound to the certificate.", r.environment.label().to_lowercase())}
                        </div>
                    }.into_any()), None),
                    Ok(Some(Outcome::Linked(l))) => (Some(view! {
                        <div class="alert alert-success" role="status" data-testid="identity-linked">
                            {format!("{} = {} at {} is linked to the {} profile: that issuer's tokens for it act as this client from the next request.", l.subject_claim, l.subject, l.issuer, l.environment.label().to_lowercase())}
                        </div>
                    }.into_any()), None),
                    Ok(Some(Outcome::Tested(tested))) => (None, Some(tested)),
                    Ok(_) => (None, None),
                    Err(e) => (Some(view! { <ErrorBox error=e/> }.into_any()), None),
                };
                match detail.await {
                    Err(e) => view! { <PageError error=e back_href="/clients" back_label="Back to your clients"/> }.into_any(),
                    Ok(d) => view! { {done} <ClientView detail=d origin admin issuers recent tested credentials add_profile policy suspend/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// A secret one of the client page's acts issued, with what happened.
fn issued_view(what: Issued, secret: IssuedSecret, origin: String) -> AnyView {
    let env = secret.environment.label().to_lowercase();
    let said = match what {
        Issued::Rotated => format!(
            "The {env} client secret is rotated. Give the new one below to the client; the previous secret keeps working during its grace period (see Credentials), then stops."
        ),
        Issued::ApiKey => format!("An API key is issued for the {env} profile."),
        Issued::Profile => format!(
            "The {env} profile is added with its own client secret. Request its products from the catalog; an admin approves each."
        ),
    };
    view! {
        <div class="alert alert-success" role="status">{said}</div>
        <SecretReveal secret=secret origin=origin/>
    }
    .into_any()
}

/// A public key just registered, and how the client signs with it.
fn registered_view(key: RegisteredKey, origin: String) -> AnyView {
    let env = key.environment.label().to_lowercase();
    let replaced = match key.replaced {
        0 => String::new(),
        n => format!(" The profile's {n} previous secret(s) and key(s) keep working for their grace period only."),
    };
    let how = format!(
        "# Each token request carries a fresh assertion signed with the private key ({algs}):\n\
         #   header  {{\"alg\": \"{alg}\", \"kid\": \"{thumbprint}\"}}\n\
         #   claims  {{\"iss\": \"{client}\",\n\
         #            \"sub\": \"{client}\",\n\
         #            \"aud\": \"{origin}\",\n\
         #            \"jti\": <unique>, \"iat\": <now>, \"exp\": <now + at most 300 s>}}\n\
         curl {origin}/oauth/token \\\n  \
         -d grant_type=client_credentials \\\n  \
         -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \\\n  \
         -d client_assertion=\"$ASSERTION\"",
        algs = key.algorithms.join(" or "),
        alg = key.algorithms.first().map_or("ES256", String::as_str),
        thumbprint = key.thumbprint,
        client = key.client_id,
    );
    view! {
        <div class="alert alert-success" role="status" data-testid="key-registered">
            {format!("A public key ({}) is registered for the {env} profile; the client needs no secret with it.{replaced}", key.key_type)}
            <br/>"Thumbprint (RFC 7638): " <code data-testid="key-thumbprint">{key.thumbprint.clone()}</code>
        </div>
        <CodeBlock code=how test_id="key-how-to"/>
    }
    .into_any()
}

/// The acts on a profile's credentials.
#[derive(Clone, Copy)]
struct CredentialActions {
    rotate: ServerAction<RotateSecret>,
    issue_key: ServerAction<IssueApiKey>,
    revoke: ServerAction<RevokeCredential>,
    register_key: ServerAction<RegisterPublicKey>,
    link: ServerAction<LinkIdentity>,
    register_subject: ServerAction<RegisterCertificateSubject>,
}

#[component]
fn ClientView(
    detail: ClientDetail,
    origin: String,
    admin: bool,
    /// Trusted issuers an admin may link identities from.
    issuers: Vec<TrustedIssuerView>,
    recent: Result<Vec<RequestView>, AppError>,
    /// The Test access call just made.
    tested: Option<Tested>,
    credentials: CredentialActions,
    add_profile: ServerAction<AddProfile>,
    policy: PolicyActions,
    suspend: ServerAction<SetClientSuspended>,
) -> impl IntoView {
    let c = detail.client;
    let suspended = c.suspended;
    let expiring: Vec<String> = detail
        .profiles
        .iter()
        .flat_map(|p| {
            p.credentials
                .iter()
                .filter(|c| c.state == CredentialState::Expiring)
                .map(move |c| format!("{}… ({}) expires {}", c.prefix, p.environment.label(), format_utc(c.expires_at)))
        })
        .collect();
    let has_production = c.environments.contains(&Environment::Production);
    let client_id = c.id.clone();
    let suspend_id = c.id.clone();
    view! {
        <Title text=c.name.clone()/>
        <div class="page-header">
            <div>
                <h1>{c.name.clone()} " " {kind_badge(c.kind)}</h1>
                <p class="subtitle">{if c.description.is_empty() { "No description.".to_owned() } else { c.description.clone() }}</p>
            </div>
            <div class="actions">
                <a class="btn btn-secondary" href=format!("/clients/{}/activity", c.id)>"Activity"</a>
                <a class="btn btn-secondary" href=format!("/catalog?client={}", c.id)>"Request a product"</a>
                {(!has_production).then(|| view! {
                    <Confirm id="confirm-add-production".into() label="Add production profile"
                        title="Add a production profile?".into()
                        message="Production gets its own client secret, shown once on the next screen, and its own grants: each production product waits for an admin's approval. A profile cannot be removed once added.".into()>
                        <ActionForm action=add_profile>
                            <input type="hidden" name="client_id" value=client_id.clone()/>
                            <input type="hidden" name="environment" value="production"/>
                            <button type="submit" class="btn btn-primary btn-small">"Confirm and add"</button>
                        </ActionForm>
                    </Confirm>
                })}
            </div>
        </div>
        {(!expiring.is_empty()).then(|| view! {
            <div class="alert alert-warning" role="alert" data-testid="expiry-warning">
                <strong>"Credentials expire soon. "</strong>
                "Rotate them before they stop working: " {expiring.join("; ")}
            </div>
        })}
        {suspended.then(|| view! {
            <div class="alert alert-warning" role="alert" data-testid="suspended">
                <strong>"This client is suspended. "</strong>
                "The gateway and the token endpoint refuse it until an admin resumes it; its credentials and grants are kept."
            </div>
        })}
        <section class="card">
            <dl class="kv">
                <dt>"Client ID"</dt><dd class="mono">{c.id.clone()}</dd>
                <dt>"Owner"</dt><dd>{c.owner_email.clone()}</dd>
                <dt>"Registered"</dt><dd>{format_utc(c.created_at)}</dd>
            </dl>
            {admin.then(|| view! {
                <ActionForm action=suspend attr:class="inline-form" attr:data-testid="suspend-form">
                    <input type="hidden" name="client_id" value=suspend_id/>
                    <input type="hidden" name="suspended" value=if suspended { "false" } else { "true" }/>
                    <input name="reason" required aria-label="Reason for the suspension" placeholder="Reason (kept in the audit trail)"/>
                    <button type="submit" class=if suspended { "btn btn-secondary btn-small" } else { "btn btn-danger btn-small" }>
                        {if suspended { "Resume client" } else { "Suspend client" }}
                    </button>
                </ActionForm>
            })}
        </section>
        <TokenHowTo origin=origin.clone() client_id=c.id.clone()
            profile_id=detail.profiles.first().map(|p| p.id.clone()).unwrap_or_default()
            constraint=detail.profiles.first().map_or(SenderConstraint::None, |p| p.sender_constraint)/>
        {detail.profiles.into_iter().map(|p| {
            let tested = tested.clone().filter(|t| t.profile_id == p.id);
            view! { <ProfileCard profile=p origin=origin.clone() admin issuers=issuers.clone() tested credentials policy/> }
        }).collect_view()}
        <RecentRequests requests=recent/>
    }
    .into_any()
}

/// The forms for a profile's policy: rate limit, token lifetime, sender constraint
/// (admins), and who may act on its behalf (its owner too).
#[derive(Clone, Copy)]
struct PolicyActions {
    set_rate: ServerAction<SetRateLimit>,
    set_ttl: ServerAction<SetTokenLifetime>,
    set_constraint: ServerAction<SetSenderConstraint>,
    set_may_act: ServerAction<SetMayAct>,
}

#[component]
fn ProfileCard(
    profile: ProfileDetail,
    origin: String,
    admin: bool,
    issuers: Vec<TrustedIssuerView>,
    /// The Test access call this profile just made.
    tested: Option<Tested>,
    credentials: CredentialActions,
    policy: PolicyActions,
) -> impl IntoView {
    let PolicyActions { set_rate, set_ttl, set_constraint, set_may_act } = policy;
    let pid_may_act = profile.id.clone();
    let listed = profile.may_act.clone();
    let may_act_now = match &listed {
        None => "Any client holding one of its tokens".to_owned(),
        Some(ids) if ids.is_empty() => "No client".to_owned(),
        Some(ids) => ids.join(", "),
    };
    let listed_ids = listed.clone().unwrap_or_default().join(" ");
    let CredentialActions { rotate, issue_key, revoke, register_key, link, register_subject } = credentials;
    let pid_link = profile.id.clone();
    let pid_subject = profile.id.clone();
    let subject_field = format!("subject-{}", profile.id);
    let pid_key = profile.id.clone();
    let jwk_field = format!("jwk-{}", profile.id);
    let constraint = profile.sender_constraint;
    let pid = profile.id.clone();
    let pid3 = profile.id.clone();
    let (rate, burst) = (profile.rate_per_minute.to_string(), profile.burst.to_string());
    let ttl = profile.token_ttl_seconds.to_string();
    let pid2 = profile.id.clone();
    let testid = format!("profile-{}", profile.environment.as_str());
    let env_name = profile.environment.label().to_lowercase();
    view! {
        <section class="card" data-testid=testid>
            <div class="row">
                <h2>{profile.environment.label()} " profile"</h2>
                {env_badge(profile.environment)}
                <span class="spacer"></span>
                <Confirm id=format!("confirm-rotate-{pid}") label="Rotate secret" small=true
                    title=format!("Rotate the {} client secret?", env_name)
                    message="A new secret is issued and shown once. The current secret keeps working for its grace period, then stops for good: give the client the new one before then. This cannot be undone.".into()>
                    <ActionForm action=rotate>
                        <input type="hidden" name="profile_id" value=pid.clone()/>
                        <button type="submit" class="btn btn-primary btn-small">"Confirm rotation"</button>
                    </ActionForm>
                </Confirm>
                <ActionForm action=issue_key>
                    <input type="hidden" name="profile_id" value=pid2/>
                    <button type="submit" class="btn btn-secondary btn-small">"Issue API key"</button>
                </ActionForm>
            </div>
            <dl class="kv">
                <dt>"Profile ID"</dt><dd class="mono">{profile.id.clone()}</dd>
                <dt>"Rate limit"</dt><dd>{format!("{} requests/minute, burst {}", profile.rate_per_minute, profile.burst)}</dd>
                <dt>"Token lifetime"</dt><dd data-testid="token-lifetime">{format!("{} seconds", profile.token_ttl_seconds)}</dd>
                <dt>"Sender-constrained tokens"</dt><dd data-testid="sender-constraint">{constraint.label()}</dd>
                <dt>"May act on its behalf"</dt><dd data-testid="may-act-now">{may_act_now}</dd>
            </dl>
            {(constraint == SenderConstraint::Dpop).then(|| view! {
                <div class="alert alert-warning" role="note" data-testid="dpop-required">
                    <strong>"Only DPoP-bound tokens are accepted. "</strong>
                    "This profile's API keys and bearer tokens are refused at the gateway and the MCP endpoint. Request the token with a DPoP proof (RFC 9449; for example oauth4webapi's DPoP()), then send each call as "
                    <code>"Authorization: DPoP <token>"</code>" with a fresh "<code>"DPoP"</code>" proof made for that call."
                </div>
            })}
            {(constraint == SenderConstraint::Mtls).then(|| view! {
                <div class="alert alert-warning" role="note" data-testid="mtls-required">
                    <strong>"Only certificate-bound tokens are accepted. "</strong>
                    "This profile's API keys and bearer tokens are refused at the gateway and the MCP endpoint. Request the token over TLS with the agent's client certificate (RFC 8705; "
                    <code>"curl --cert agent.pem --key agent.key"</code>
                    "), and make every call with the same certificate. A certificate whose key is registered below also stands in for the secret."
                </div>
            })}
            // Only admins set rate-limit policies; the server checks it again.
            {admin.then(|| {
                let pid_ttl = pid3.clone();
                let pid_constraint = pid3.clone();
                view! {
                    <ActionForm action=set_rate attr:class="inline-form">
                        <input type="hidden" name="profile_id" value=pid3/>
                        <label>"Requests/minute " <input name="rate_per_minute" type="number" min="1" value=rate/></label>
                        <label>"Burst " <input name="burst" type="number" min="1" value=burst/></label>
                        <button type="submit" class="btn btn-secondary btn-small">"Save rate limit"</button>
                    </ActionForm>
                    <ActionForm action=set_ttl attr:class="inline-form">
                        <input type="hidden" name="profile_id" value=pid_ttl/>
                        <label>"Token lifetime (s) " <input name="seconds" type="number" min="60" max="3600" value=ttl/></label>
                        <button type="submit" class="btn btn-secondary btn-small">"Save token lifetime"</button>
                    </ActionForm>
                    <ActionForm action=set_constraint attr:class="inline-form" attr:data-testid="sender-constraint-form">
                        <input type="hidden" name="profile_id" value=pid_constraint/>
                        <label>"Sender-constrained tokens "
                            <select name="sender_constraint">
                                {SenderConstraint::ALL.iter().map(|c| view! {
                                    <option value=c.as_str() selected=*c == constraint>{c.label()}</option>
                                }).collect_view()}
                            </select>
                        </label>
                        <button type="submit" class="btn btn-secondary btn-small">"Save sender constraint"</button>
                    </ActionForm>
                }
            })}
            <details class="register-key" data-testid="may-act">
                <summary>"Choose who may act on this agent's behalf (token exchange)"</summary>
                <p class="muted">"Another agent holding one of this profile's tokens can exchange it for a token that acts on this agent's behalf (RFC 8693), never broader than either. Name the agents allowed to; a delegated token of an agent you remove stops on its next request."</p>
                <ActionForm action=set_may_act attr:class="inline-form">
                    <input type="hidden" name="profile_id" value=pid_may_act/>
                    <label>"Who "
                        <select name="mode">
                            <option value="any" selected=listed.is_none()>"Any client holding its token"</option>
                            <option value="listed" selected=listed.is_some()>"Only the clients listed"</option>
                        </select>
                    </label>
                    <label>"Client ids " <input name="actors" class="mono" placeholder="cl_… cl_…" value=listed_ids/></label>
                    <button type="submit" class="btn btn-secondary btn-small">"Save"</button>
                </ActionForm>
            </details>
            <h3>"Credentials"</h3>
            <CredentialTable credentials=profile.credentials revoke constraint/>
            <details class="register-key" data-testid="register-key">
                <summary>"Register a public key instead of a secret (private_key_jwt)"</summary>
                <p class="muted">"The agent keeps the private key and signs each token request with it (RFC 7523); Portcullis stores only the public key, so nothing it holds could be used to sign in. Paste the public key as a JWK: EC P-256, Ed25519, or RSA of 2048 bits or more. Where Portcullis asks for TLS client certificates, a certificate (self-signed will do) carrying this key authenticates the agent too, with only its client id (RFC 8705 self_signed_tls_client_auth)."</p>
                <ActionForm action=register_key>
                    <input type="hidden" name="profile_id" value=pid_key/>
                    <div class="field">
                        <label for=jwk_field.clone()>"Public key (JWK)"</label>
                        <textarea id=jwk_field name="jwk" rows="4" required class="mono"
                            placeholder=r#"{"kty":"EC","crv":"P-256","x":"…","y":"…"}"#></textarea>
                    </div>
                    <label class="check">
                        <input type="checkbox" name="replace" value="true"/>
                        " Replace this profile's secrets and other keys (they keep working for the grace period)"
                    </label>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-secondary btn-small">"Register key"</button>
                    </div>
                </ActionForm>
            </details>
            <details class="register-key" data-testid="register-subject">
                <summary>"Register a CA-issued certificate's subject (tls_client_auth)"</summary>
                <p class="muted">"Where Portcullis verifies client certificates against your certificate authority, a certificate it issued to this subject authenticates the agent with only its client id (RFC 8705 tls_client_auth); the token is then bound to that certificate. A self-signed certificate or one a proxy forwards never authenticates by its subject. Give the subject as RFC 4514 writes it, most specific first (openssl x509 -noout -subject -nameopt RFC2253 prints it), or paste the agent's certificate."</p>
                <ActionForm action=register_subject>
                    <input type="hidden" name="profile_id" value=pid_subject/>
                    <div class="field">
                        <label for=subject_field.clone()>"Subject DN or certificate (PEM)"</label>
                        <textarea id=subject_field name="subject" rows="2" required class="mono" maxlength="8192"
                            placeholder="CN=billing-agent,OU=Agents,O=Acme,C=GB"></textarea>
                    </div>
                    <div class="form-actions">
                        <button type="submit" class="btn btn-secondary btn-small">"Register subject"</button>
                    </div>
                </ActionForm>
            </details>
            // Only admins link identities at trusted issuers; the server checks it again.
            {(admin && !issuers.is_empty()).then(|| view! {
                <details class="register-key" data-testid="link-identity">
                    <summary>"Link an identity at a trusted issuer (federation)"</summary>
                    <p class="muted">"The issuer's tokens naming this identity in its caller claim are then accepted as this profile, with its grants, limits and audit trail. The link is listed with the credentials and revoked like one."</p>
                    <ActionForm action=link attr:class="inline-form">
                        <input type="hidden" name="profile_id" value=pid_link/>
                        <label>"Issuer "
                            <select name="issuer_id">
                                {issuers.iter().map(|i| view! { <option value=i.id.clone()>{format!("{} ({})", i.issuer, i.subject_claim)}</option> }).collect_view()}
                            </select>
                        </label>
                        <label>"Identity " <input name="subject" required maxlength="255" placeholder="the claim's value for this agent"/></label>
                        <button type="submit" class="btn btn-secondary btn-small">"Link identity"</button>
                    </ActionForm>
                </details>
            })}
            <h3>"Products"</h3>
            <GrantTable grants=profile.grants/>
            <TestAccess profile_id=profile.id.clone() tested/>
            <ConnectAgent origin client_id=profile.client_id.clone() profile_id=profile.id.clone() environment=profile.environment token_ttl_seconds=profile.token_ttl_seconds/>
        </section>
    }
    .into_any()
}

#[component]
fn CredentialTable(
    credentials: Vec<CredentialView>,
    revoke: ServerAction<RevokeCredential>,
    /// With a sender constraint, the profile refuses its API keys: each says so beside
    /// its status.
    constraint: SenderConstraint,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="credentials">
                <thead><tr><th>"Kind"</th><th>"Starts with"</th><th>"Status"</th><th>"Created"</th><th>"Expires"</th><th>"Last used"</th><th></th></tr></thead>
                <tbody>
                    {credentials.into_iter().map(|cr| {
                        let status_class = format!("badge badge-{}", cr.state.as_str());
                        let expires_note = match cr.state {
                            portcullis_domain::model::CredentialState::Grace => format!("grace until {}", when(Some(cr.expires_at))),
                            _ => when(Some(cr.expires_at)),
                        };
                        let usable = cr.state.is_usable();
                        let refused_by_policy = usable
                            && constraint != SenderConstraint::None
                            && cr.kind == portcullis_domain::model::CredentialKind::ApiKey;
                        let id = cr.id.clone();
                        let question = format!("Revoke the {} {}…?", cr.kind.noun(), portcullis_domain::model::shown_prefix(&cr.prefix));
                        view! {
                            <tr data-credential=cr.id.clone()>
                                <td>{cr.kind.label()}</td>
                                <td class="mono" title=cr.prefix.clone()>{format!("{}…", portcullis_domain::model::shown_prefix(&cr.prefix))}</td>
                                <td>
                                    <span class=status_class>{cr.state.label()}</span>
                                    {refused_by_policy.then(|| view! {
                                        " " <span class="badge badge-rejected" data-testid="refused-by-policy"
                                            title=format!("This profile accepts only {}: the gateway refuses its API keys.", constraint.label())>
                                            {match constraint { SenderConstraint::Mtls => "refused: mTLS only", _ => "refused: DPoP only" }}
                                        </span>
                                    })}
                                </td>
                                <td class="when">{when(Some(cr.created_at))}</td>
                                <td class="when">{expires_note}</td>
                                <td class="when">{when(cr.last_used_at)}</td>
                                <td>
                                    {usable.then(|| view! {
                                        <Confirm id=format!("confirm-revoke-{id}") label="Revoke" danger=true small=true title=question
                                            message="It stops working at once: the gateway and the token endpoint refuse it from the next request. This cannot be undone; issue or rotate a credential first if the client still needs one.".into()>
                                            <ActionForm action=revoke>
                                                <input type="hidden" name="credential_id" value=id.clone()/>
                                                <button type="submit" class="btn btn-danger btn-small">"Confirm revoke"</button>
                                            </ActionForm>
                                        </Confirm>
                                    })}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn GrantTable(grants: Vec<GrantView>) -> impl IntoView {
    if grants.is_empty() {
        return view! { <div class="empty"><p>"No products yet. "<a href="/catalog">"Request one from the catalog"</a>"."</p></div> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="grants">
                <thead><tr><th>"Product"</th><th>"Scopes"</th><th>"Status"</th><th>"Decided by"</th><th>"Reason"</th><th>"Expires"</th></tr></thead>
                <tbody>
                    {grants.into_iter().map(|g| {
                        let class = format!("badge badge-{}", g.status.as_str());
                        view! {
                            <tr>
                                <td>{g.product_name.clone()}</td>
                                <td class="mono">{g.scopes.join(" ")}</td>
                                <td><span class=class>{g.status.as_str()}</span></td>
                                <td>{g.decided_by.clone().unwrap_or_else(|| "—".into())}</td>
                                <td>{g.decision_reason.clone().unwrap_or_else(|| "—".into())}</td>
                                <td class="nowrap">{g.expires_at.map(format_date).unwrap_or_else(|| "—".into())}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }.into_any()
}

/// How this client gets an access token and calls the gateway; never shows a secret.
#[component]
fn TokenHowTo(origin: String, client_id: String, profile_id: String, constraint: SenderConstraint) -> impl IntoView {
    // A profile that requires certificate-bound tokens: both requests present the
    // agent's certificate.
    let cert = if constraint == SenderConstraint::Mtls { "--cert agent.pem --key agent.key " } else { "" };
    let curl = format!(
        "# Exchange the client secret for a short-lived access token\n\
         token=$(curl -s {cert}-u '{client_id}:<client secret>' \\\n  -d grant_type=client_credentials {origin}/oauth/token | jq -r .access_token)\n\n\
         # Call a granted endpoint through the gateway\n\
         curl {cert}-H \"Authorization: Bearer $token\" -H 'X-Profile-ID: {profile_id}' \\\n  {origin}/gw/accounts/accounts"
    );
    view! {
        <section class="card" data-testid="token-howto">
            <h2>"Get a token"</h2>
            <p class="muted">"The client secret you copied at registration (or rotation) is the password of this client. Agents and apps use it the same way."</p>
            {(constraint == SenderConstraint::Dpop).then(|| view! {
                <p class="alert alert-warning" data-testid="token-howto-dpop">
                    "This profile accepts only DPoP-bound tokens: the bearer token below would be refused. Use a DPoP client (see the profile below); the token request is the same, with a DPoP proof."
                </p>
            })}
            {(constraint == SenderConstraint::Mtls).then(|| view! {
                <p class="alert alert-warning" data-testid="token-howto-mtls">
                    "This profile accepts only certificate-bound tokens: make both requests below with the agent's client certificate ("
                    <code>"--cert agent.pem --key agent.key"</code>"), or the token is refused."
                </p>
            })}
            <CodeBlock code=curl/>
        </section>
    }
}

/// What an MCP client needs to reach this profile through `/mcp`: the URL, the headers
/// and configuration snippets, filled in with IDs and never with a secret.
#[component]
fn ConnectAgent(
    origin: String,
    client_id: String,
    profile_id: String,
    environment: Environment,
    token_ttl_seconds: i64,
) -> impl IntoView {
    let name = format!("portcullis-{}", environment.as_str());
    let url = format!("{origin}/mcp");
    let headers = format!("Authorization: Bearer <access token>\nX-Client-ID: {client_id}\nX-Profile-ID: {profile_id}");
    let mcp_servers = format!(
        "{{\n  \"mcpServers\": {{\n    \"{name}\": {{\n      \"type\": \"http\",\n      \"url\": \"{url}\",\n      \
         \"headers\": {{\n        \"Authorization\": \"Bearer ${{PORTCULLIS_TOKEN}}\",\n        \
         \"X-Client-ID\": \"{client_id}\",\n        \"X-Profile-ID\": \"{profile_id}\"\n      }}\n    }}\n  }}\n}}"
    );
    let vscode = format!(
        "{{\n  \"servers\": {{\n    \"{name}\": {{\n      \"type\": \"http\",\n      \"url\": \"{url}\",\n      \
         \"headers\": {{ \"Authorization\": \"Bearer ${{env:PORTCULLIS_TOKEN}}\", \"X-Profile-ID\": \"{profile_id}\" }}\n    }}\n  }}\n}}"
    );
    let token = format!(
        "export PORTCULLIS_TOKEN=$(curl -s -u '{client_id}:<client secret>' \\\n  -d grant_type=client_credentials {origin}/oauth/token | jq -r .access_token)"
    );
    let task = format!(
        "export PORTCULLIS_TOKEN=$(curl -s -u '{client_id}:<client secret>' \\\n  \
         -d grant_type=client_credentials \\\n  \
         --data-urlencode 'authorization_details=[{{\"type\": \"portcullis_task\",\n    \
         \"task_id\": \"<task id>\", \"endpoints\": [\"<endpoint id>\"],\n    \
         \"expires_in\": 120, \"max_uses\": 5}}]' \\\n  \
         {origin}/oauth/token | jq -r .access_token)"
    );
    let exchange = format!(
        "curl -s -u '{client_id}:<client secret>' \\\n  \
         -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\\n  \
         -d subject_token=\"$OTHER_AGENTS_TOKEN\" \\\n  \
         -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \\\n  \
         {origin}/oauth/token | jq -r .access_token"
    );
    view! {
        <details class="test-access" data-testid="connect-agent">
            <summary>"Connect an agent (MCP)"</summary>
            <p class="muted">
                "AI agents reach the products of this profile through the gateway's MCP endpoint, with the same credentials "
                "and checks as any application. They see only what this profile is granted. Put the access token (or an "
                "API key of this profile, as " <code>"X-API-Key"</code> ") in an environment variable; never paste a secret into a shared file."
            </p>
            <dl class="kv">
                <dt>"MCP endpoint"</dt><dd class="mono" data-testid="mcp-url">{url}</dd>
                <dt>"Transport"</dt><dd>"Streamable HTTP (protocol 2025-03-26 to 2026-07-28)"</dd>
            </dl>
            <h3>"Headers"</h3>
            <CodeBlock code=headers/>
            <h3>"Claude Code, Claude Desktop, Cursor (" <code>"mcpServers"</code> ")"</h3>
            <CodeBlock code=mcp_servers test_id="mcp-servers-snippet"/>
            <h3>"VS Code (" <code>".vscode/mcp.json"</code> ")"</h3>
            <CodeBlock code=vscode/>
            <h3>{format!("Get the token (valid {} minutes; fetch a new one before it ends)", token_ttl_seconds / 60)}</h3>
            <CodeBlock code=token/>
            <p class="muted">"The agent then sees four tools: list_collections, list_endpoints, endpoint_details and execute_endpoint. Every call is audited under this client."</p>
            <h3>"A token for one task"</h3>
            <p class="muted">
                "For a single task, ask for a token that can call only the endpoints the task needs (their ids, as "
                <code>"list_endpoints"</code>" shows them), for as few seconds and calls as it takes (RFC 9396 "
                <code>"authorization_details"</code>"). Calls outside the task, past its number of calls or after its lifetime are refused, and the audit trail groups the task's requests by its "
                <code>"task_id"</code>"."
            </p>
            <CodeBlock code=task test_id="task-token-snippet"/>
            <h3>"Acting on behalf of another agent"</h3>
            <p class="muted">
                "Given another client's access token, this client can get a token that acts on its behalf (RFC 8693 token exchange). It can do only what both clients are granted, ends with the other token, and every call names both in the audit trail."
            </p>
            <CodeBlock code=exchange test_id="exchange-snippet"/>
        </details>
    }
}

/// What a recent request did: the MCP tool, then the gateway route it reached, if any.
fn request_label(r: &RequestView) -> String {
    request_phrase(&r.method, r.product.as_deref(), &r.path, r.tool.as_deref(), r.endpoint.is_some())
}

/// The client's latest requests (a Test access call just made among them).
#[component]
fn RecentRequests(requests: Result<Vec<RequestView>, AppError>) -> impl IntoView {
    view! {
        <section class="card" data-testid="recent-requests">
            <h2>"Recent requests"</h2>
            {match requests {
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <div class="empty"><p>"No requests yet. Calls through the gateway and the token endpoint appear here."</p></div> }.into_any(),
                        Ok(list) => view! {
                            <div class="table-wrap">
                                <table class="table">
                                    <thead><tr><th>"When"</th><th>"Channel"</th><th>"Request"</th><th>"Status"</th><th>"Decision"</th><th>"Latency"</th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|r| {
                                            let class = if r.decision == "allowed" { "badge badge-approved" } else { "badge badge-rejected" };
                                            view! {
                                                <tr>
                                                    <td class="when">{when(Some(r.occurred_at))}</td>
                                                    <td>
                                                        {r.channel.clone()}
                                                        {r.sender_key.clone().map(|k| view! {
                                                            " " <span class="badge badge-dpop" title=format!("Proven {k}") data-testid="proof-badge">{portcullis_domain::model::proof_label(&k)}</span>
                                                        })}
                                                    </td>
                                                    <td class="mono request">{request_label(&r)}</td>
                                                    <td>{r.status}</td>
                                                    <td><span class=class>{r.reason.clone()}</span></td>
                                                    <td class="nowrap">{format!("{:.1} ms", r.latency_us as f64 / 1000.0)}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any(),
            }}
        </section>
    }
}

/// The last step before production: a real call through the gateway with this
/// profile's own credential, showing what the gateway decided (`tested`, after the post).
#[component]
fn TestAccess(profile_id: String, tested: Option<Tested>) -> impl IntoView {
    let run = ServerAction::<crate::api::TestAccess>::new();
    let open = tested.is_some();
    // After a call, the form asks the same again: the answer below says what it was.
    let (method, path) = tested
        .as_ref()
        .map_or(("GET".to_owned(), "/gw/accounts/accounts".to_owned()), |t| (t.method.clone(), t.path.clone()));
    // The form's answer comes back to this element (`#test-…`), not to the page's top.
    let anchor = format!("test-{profile_id}");
    view! {
        <details class="test-access" data-testid="test-access" id=anchor open=open>
            <summary>"Test access"</summary>
            <p class="muted">"Runs a real request through the gateway with a token issued for this profile's own client secret. It is audited like any other."</p>
            <ActionForm action=run attr:class="inline-form">
                <input type="hidden" name="profile_id" value=profile_id/>
                <select name="method" aria-label="Method">
                    {["GET", "POST", "PUT", "PATCH", "DELETE"].into_iter().map(|m| view! { <option value=m selected=m == method>{m}</option> }).collect_view()}
                </select>
                <input name="path" value=path aria-label="Gateway path" size="40" required/>
                <button type="submit" class="btn btn-primary btn-small">"Run"</button>
            </ActionForm>
            {tested.map(|tested| match tested.result {
                Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                Ok(r) => {
                    let class = if r.outcome == "allowed" { "badge badge-approved" } else { "badge badge-rejected" };
                    view! {
                        <div class="test-result" data-testid="test-result">
                            <dl class="kv">
                                <dt>"Decision"</dt><dd><span class=class>{r.outcome.clone()}</span></dd>
                                <dt>"Status"</dt><dd>{r.status}</dd>
                                <dt>"Request ID"</dt><dd class="mono">{r.request_id.clone()}</dd>
                                <dt>"Audit row"</dt><dd><a data-testid="test-audit-link" href=format!("/audit/requests/{}", r.request_id)>"Open the audit event"</a></dd>
                                <dt>"Rate limit"</dt><dd>{r.rate_limit.clone().unwrap_or_else(|| "—".into())}</dd>
                            </dl>
                            <pre class="code">{r.body.clone()}</pre>
                        </div>
                    }.into_any()
                }
            })}
        </details>
    }
}
