//! Certificate-bound tokens and certificate client authentication (RFC 8705) against
//! the real https listener: an agent's own self-signed certificate binds the tokens it
//! gets, and a copied token is refused without that certificate at `/gw` and `/mcp`; a
//! certificate whose key the developer registered stands in for the secret; a profile
//! can require certificate-bound tokens; a certificate the listener's authority issued
//! authenticates the agent by its subject, and no other certificate claiming that
//! subject does; and behind a TLS-terminating proxy, the
//! proxy's `Client-Cert` header (RFC 9440) is believed only from a trusted proxy that
//! the operator said sets it.

use crate::helpers::tempdir::TempDir;
use crate::helpers::{agent_for, poll_audit, stateless_tool, Agent, TestApp, TestUpstream};
use crate::management::Script;
use crate::upstream_tls::{write, TestCa};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use portcullis::config::ServeArgs;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose::ServerAuth;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// An agent's own certificate: self-signed, made on the agent's machine.
struct AgentCert {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
    /// The public key as the developer registers it.
    jwk: Value,
}

impl AgentCert {
    /// A certificate an authority issued (its key is not registered: no JWK).
    fn from_leaf(leaf: crate::upstream_tls::Leaf) -> Self {
        Self { der: leaf.der.to_vec(), pem: leaf.cert_pem, key_pem: leaf.key_pem, jwk: Value::Null }
    }

    fn new(alg: &'static rcgen::SignatureAlgorithm) -> Self {
        Self::with_key(alg, rcgen::KeyPair::generate_for(alg).unwrap())
    }

    /// Another certificate for the same key, as a renewal makes.
    fn reissued(&self) -> Self {
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        Self::with_key(alg, rcgen::KeyPair::from_pem_and_sign_algo(&self.key_pem, alg).unwrap())
    }

    fn with_key(alg: &'static rcgen::SignatureAlgorithm, key: rcgen::KeyPair) -> Self {
        let cert = rcgen::CertificateParams::new(vec!["agent.example".into()]).unwrap().self_signed(&key).unwrap();
        let raw = key.public_key_raw();
        let jwk = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            json!({ "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&raw[33..65]) })
        } else {
            Value::Null
        };
        Self { der: cert.der().to_vec(), pem: cert.pem(), key_pem: key.serialize_pem(), jwk }
    }

    fn p256() -> Self {
        Self::new(&rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// RFC 8705 §3.1 `x5t#S256`.
    fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }

    /// RFC 9440 `Client-Cert`, as a TLS-terminating proxy sets it.
    fn header(&self) -> String {
        format!(":{}:", STANDARD.encode(&self.der))
    }
}

/// A server on https asking every client for a certificate, and an agent granted
/// `bank`'s `GET /fast` and `GET /headers`.
struct Setup {
    app: TestApp,
    upstream: TestUpstream,
    a: Agent,
    ca: TestCa,
    _dir: TempDir,
}

async fn setup(configure: impl FnOnce(&mut ServeArgs)) -> Setup {
    let ca = TestCa::new("Server CA");
    let leaf = ca.issue_for(&["localhost", "127.0.0.1"], ServerAuth);
    let dir = TempDir::new();
    let (cert, key) = (write(&dir, "server.pem", &leaf.cert_pem), write(&dir, "server.key", &leaf.key_pem));
    let mut app = TestApp::spawn_configured(|a| {
        a.tls_cert = Some(cert);
        a.tls_key = Some(key);
        a.tls_self_signed_clients = true;
        configure(a);
    })
    .await;
    app.trusted_cas.push(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast"), ("GET", "/headers")]).await;
    Setup { app, upstream, a, ca, _dir: dir }
}

impl Setup {
    /// An https client trusting the server, presenting `cert` when asked.
    fn client(&self, cert: Option<&AgentCert>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap())
            .pool_max_idle_per_host(0);
        if let Some(c) = cert {
            b = b.identity(reqwest::Identity::from_pem(format!("{}{}", c.pem, c.key_pem).as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    /// A token for the agent with its secret, over a connection presenting `cert`.
    async fn token_with_secret(&self, cert: Option<&AgentCert>) -> (StatusCode, Value) {
        let res = self
            .client(cert)
            .post(format!("{}/oauth/token", self.app.base))
            .basic_auth(&self.a.reg.client_id, Some(&self.a.reg.secret.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    /// A token for `client_id` with no secret and no assertion: only the certificate.
    async fn token_with_certificate(&self, client_id: &str, cert: Option<&AgentCert>) -> (StatusCode, Value) {
        let res = self
            .client(cert)
            .post(format!("{}/oauth/token", self.app.base))
            .form(&[("grant_type", "client_credentials"), ("client_id", client_id)])
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    /// The authorization server's metadata (RFC 8414).
    async fn metadata(&self) -> Value {
        let url = format!("{}/.well-known/oauth-authorization-server", self.app.base);
        self.client(None).get(url).send().await.unwrap().json().await.unwrap()
    }

    async fn gw(&self, token: &str, cert: Option<&AgentCert>) -> (StatusCode, Value) {
        let res =
            self.client(cert).get(format!("{}/gw/bank/fast", self.app.base)).bearer_auth(token).send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }

    async fn mcp(&self, token: &str, cert: Option<&AgentCert>) -> StatusCode {
        let endpoint = self.app.store.enforcement().snapshot().current().products["bank"].endpoints[0].id.clone();
        let auth = format!("Bearer {token}");
        let res = stateless_tool(
            &self.app,
            &self.client(cert),
            ("authorization", &auth),
            "execute_endpoint",
            json!({ "endpoint_id": endpoint }),
        )
        .await
        .unwrap();
        res.status()
    }
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn a_token_requested_with_a_certificate_works_only_with_that_certificate_at_gw_and_mcp() {
    let s = setup(|_| ()).await;
    let meta = s.metadata().await;
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt", "self_signed_tls_client_auth"])
    );
    let resource: Value = s
        .client(None)
        .get(format!("{}/.well-known/oauth-protected-resource/mcp", s.app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["tls_client_certificate_bound_access_tokens"], true);

    let mine = AgentCert::p256();
    let (status, issued) = s.token_with_secret(Some(&mine)).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["token_type"], "Bearer", "RFC 8705 tokens keep the bearer scheme");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token)["cnf"], json!({ "x5t#S256": mine.thumbprint() }));

    let (status, body) = s.gw(&token, Some(&mine)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.upstream.hits(), 1);
    assert_eq!(s.mcp(&token, Some(&mine)).await, 200);
    assert_eq!(s.upstream.hits(), 2);

    // Whoever copied the token: no certificate, or a certificate of their own.
    let stranger = AgentCert::p256();
    for (cert, what) in [(None, "no certificate"), (Some(&stranger), "another certificate")] {
        let res = s.client(cert).get(format!("{}/gw/bank/fast", s.app.base)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with(r#"Bearer realm="portcullis", error="invalid_token""#), "{challenge}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "certificate_mismatch", "{what}: {body}");
        assert_eq!(s.mcp(&token, cert).await, 401, "{what} at /mcp");
    }
    assert_eq!(s.upstream.hits(), 2, "nothing reached the upstream without the certificate");

    // The stranger's own token is bound to the stranger's certificate, not the agent's.
    let (_, theirs) = s.token_with_secret(Some(&stranger)).await;
    let theirs = theirs["access_token"].as_str().unwrap().to_owned();
    assert_eq!(s.gw(&theirs, Some(&mine)).await.0, 401);
    assert_eq!(s.gw(&theirs, Some(&stranger)).await.0, 200);

    // Without a certificate the token is a bearer token, as before.
    let (_, unbound) = s.token_with_secret(None).await;
    let unbound = unbound["access_token"].as_str().unwrap().to_owned();
    assert!(claims_of(&unbound).get("cnf").is_none());
    assert_eq!(s.gw(&unbound, Some(&stranger)).await.0, 200);

    // Introspection shows the binding; the audit trail shows which certificate was proven.
    let res = s
        .client(None)
        .post(format!("{}/oauth/introspect", s.app.base))
        .basic_auth(&s.a.reg.client_id, Some(&s.a.reg.secret.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let introspected: Value = res.json().await.unwrap();
    assert_eq!(introspected["cnf"], json!({ "x5t#S256": mine.thumbprint() }), "{introspected}");
    assert_eq!(introspected["token_type"], "Bearer");
    let proven = format!("x5t#S256:{}", mine.thumbprint());
    let rows = poll_audit(
        &s.app.database_url,
        &format!("client_id = '{}' AND sender_key = '{proven}' AND decision = 'allowed'", s.a.reg.client_id),
        3,
    )
    .await;
    let channels: Vec<&str> = rows.iter().map(|r| r["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["oauth", "rest", "mcp"], "the token request and both calls name the certificate");
    let refused = poll_audit(&s.app.database_url, "reason = 'certificate_mismatch'", 4).await;
    assert!(refused.iter().all(|r| r["attempted_client_id"].as_str() == Some(s.a.reg.client_id.as_str())));

    // The client's activity counts, per credential, the calls that came with the
    // certificate their token is bound to.
    let security = s.app.user_with_role(portcullis_domain::model::Role::Security).await.personal_token(None).await;
    let (status, activity) =
        Script::new(&s.app, &security).get(&format!("/clients/{}/activity", s.a.reg.client_id)).await;
    assert_eq!(status, 200, "{activity}");
    let secret = activity["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["credential_id"] == s.a.reg.secret.credential_id)
        .unwrap();
    // Two token requests (the agent's, the stranger's) and three calls made with the
    // certificate their token is bound to; the refused calls are not the client's own.
    assert_eq!((secret["certificate_requests"].as_i64(), secret["proven_requests"].as_i64()), (Some(5), Some(0)));
}

#[tokio::test]
async fn a_certificate_carrying_a_registered_key_authenticates_the_agent_and_nothing_else_does() {
    let s = setup(|_| ()).await;
    let mine = AgentCert::p256();
    let owner = Script::new(&s.app, &s.a.dev.personal_token(None).await);
    let (status, registered) =
        owner.post(&format!("/profiles/{}/public-keys", s.a.reg.secret.profile_id), json!({ "jwk": mine.jwk })).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let (status, _) = owner.post(&format!("/credentials/{}/revoke", s.a.reg.secret.credential_id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the secret is gone: the key is the only credential");

    let (status, issued) = s.token_with_certificate(&s.a.reg.client_id, Some(&mine)).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["cid"], registered["credential_id"], "obtained with the key's credential");
    assert_eq!(claims["cnf"]["x5t#S256"], mine.thumbprint(), "and bound to the certificate");
    assert_eq!(s.gw(&token, Some(&mine)).await.0, 200);

    // The same key in another certificate (renewed) authenticates too: the key is the
    // credential, and the new token is bound to the new certificate.
    let renewed = mine.reissued();
    assert_ne!(renewed.thumbprint(), mine.thumbprint());
    let (status, issued) = s.token_with_certificate(&s.a.reg.client_id, Some(&renewed)).await;
    assert_eq!(status, 200, "{issued}");
    let renewed_token = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(s.gw(&renewed_token, Some(&renewed)).await.0, 200);
    assert_eq!(s.gw(&renewed_token, Some(&mine)).await.0, 401, "bound to the certificate, not to the key");

    // Refused, each with invalid_client: a certificate with an unregistered key; a
    // registered key for another client id; no certificate; another curve.
    let stranger = AgentCert::p256();
    let other = crate::helpers::agent(&s.app, &[]).await;
    let p384 = AgentCert::new(&rcgen::PKCS_ECDSA_P384_SHA384);
    for (client_id, cert, what) in [
        (&s.a.reg.client_id, Some(&stranger), "an unregistered key"),
        (&other.reg.client_id, Some(&mine), "another client's id"),
        (&s.a.reg.client_id, None, "no certificate"),
        (&s.a.reg.client_id, Some(&p384), "a P-384 key"),
        (&"cl_nobody".to_owned(), Some(&mine), "an unknown client"),
    ] {
        let (status, body) = s.token_with_certificate(client_id, cert).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{what}");
        if what == "a P-384 key" {
            assert!(body["error_description"].as_str().unwrap().contains("P-256"), "{body}");
        } else {
            assert_eq!(body["error_description"], "client authentication failed", "{what} tells nothing more");
        }
    }

    // Revoking the key ends its tokens and its certificate logins on the next request.
    let credential = registered["credential_id"].as_str().unwrap();
    let (status, _) = owner.post(&format!("/credentials/{credential}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(s.gw(&token, Some(&mine)).await.0, 401);
    let (status, _) = s.token_with_certificate(&s.a.reg.client_id, Some(&mine)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_profile_that_requires_certificate_bound_tokens_refuses_everything_else_on_every_channel() {
    let s = setup(|_| ()).await;
    let mine = AgentCert::p256();
    let (_, old) = s.token_with_secret(None).await;
    let old_bearer = old["access_token"].as_str().unwrap().to_owned();
    let admin_pat = s.app.user_with_role(portcullis_domain::model::Role::Admin).await.personal_token(None).await;
    let admin = Script::new(&s.app, &admin_pat);
    let constraint = format!("/profiles/{}/sender-constraint", s.a.reg.secret.profile_id);
    assert_eq!(admin.put(&constraint, json!({ "sender_constraint": "mtls" })).await.0, 204);

    let (status, body) = s.token_with_secret(None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("certificate-bound"), "{body}");
    for (what, res) in [
        (
            "an API key",
            s.client(Some(&mine))
                .get(format!("{}/gw/bank/fast", s.app.base))
                .header("x-api-key", &s.a.key.secret)
                .send()
                .await
                .unwrap(),
        ),
        (
            "a bearer token issued before",
            s.client(Some(&mine))
                .get(format!("{}/gw/bank/fast", s.app.base))
                .bearer_auth(&old_bearer)
                .send()
                .await
                .unwrap(),
        ),
    ] {
        assert_eq!(res.status(), 401, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "sender_constraint_required", "{what}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("certificate-bound"), "{body}");
    }
    assert_eq!(s.mcp(&old_bearer, Some(&mine)).await, 401, "and on /mcp");

    let (status, issued) = s.token_with_secret(Some(&mine)).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap();
    assert_eq!(s.gw(token, Some(&mine)).await.0, 200);
    assert_eq!(s.mcp(token, Some(&mine)).await, 200);
    assert_eq!(s.upstream.hits(), 2, "only the bound calls reached the upstream");
    let refused = poll_audit(&s.app.database_url, "reason = 'sender_constraint_required'", 4).await;
    let channels: Vec<&str> = refused.iter().map(|r| r["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["oauth", "rest", "rest", "mcp"]);
}

/// The subject Acme's authority writes in the billing agent's certificates (DER order:
/// least specific first).
const BILLING: [(DnType, &str); 2] = [(DnType::OrganizationName, "Acme"), (DnType::CommonName, "Billing-Agent")];

/// A server whose listener verifies client certificates against `clients` (an
/// enterprise CA), and the file it reads them from.
async fn setup_with_client_ca(clients: &TestCa) -> (Setup, TempDir) {
    let dir = TempDir::new();
    let ca = write(&dir, "clients-ca.pem", &clients.pem());
    let s = setup(|a| {
        a.tls_self_signed_clients = false;
        a.tls_client_ca = Some(ca);
    })
    .await;
    (s, dir)
}

#[tokio::test]
async fn a_certificate_the_trusted_authority_issued_authenticates_the_agent_by_its_subject_and_no_other_does() {
    let enterprise = TestCa::new("Acme Agents CA");
    let (s, _dir) = setup_with_client_ca(&enterprise).await;
    let meta = s.metadata().await;
    let methods = meta["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.contains(&json!("tls_client_auth")), "{methods:?}");

    // The developer registers the subject as an older tool writes it, a space after
    // each comma.
    let owner = Script::new(&s.app, &s.a.dev.personal_token(None).await);
    let subjects = format!("/profiles/{}/certificate-subjects", s.a.reg.secret.profile_id);
    let (status, registered) = owner.post(&subjects, json!({ "subject": "CN=billing-agent, O=Acme" })).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["subject"], "CN=billing-agent,O=Acme");
    let credential = registered["credential_id"].as_str().unwrap().to_owned();
    let (status, _) = owner.post(&format!("/credentials/{}/revoke", s.a.reg.secret.credential_id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the secret is gone: the certificate is the only credential");

    // The authority's certificate for that subject (its CN in another case), with only
    // the client id.
    let billing = AgentCert::from_leaf(enterprise.issue_client(&BILLING));
    let (status, issued) = s.token_with_certificate(&s.a.reg.client_id, Some(&billing)).await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["cid"], credential, "obtained with the subject's credential");
    assert_eq!(claims["cnf"]["x5t#S256"], billing.thumbprint(), "and bound to the certificate");
    assert_eq!(s.gw(&token, Some(&billing)).await.0, 200);
    assert_eq!(s.mcp(&token, Some(&billing)).await, 200);
    let allowed = poll_audit(
        &s.app.database_url,
        &format!("channel = 'oauth' AND decision = 'allowed' AND credential_id = '{credential}'"),
        1,
    )
    .await;
    assert_eq!(allowed[0]["client_id"].as_str(), Some(s.a.reg.client_id.as_str()));

    // Refused with invalid_client, telling nothing: the authority's certificate for
    // another subject; the right certificate naming another client; none at all.
    let other_agent = AgentCert::from_leaf(
        enterprise.issue_client(&[(DnType::OrganizationName, "Acme"), (DnType::CommonName, "other-agent")]),
    );
    let other = crate::helpers::agent(&s.app, &[]).await;
    for (client_id, cert, what) in [
        (&s.a.reg.client_id, Some(&other_agent), "another subject"),
        (&other.reg.client_id, Some(&billing), "another client's id"),
        (&s.a.reg.client_id, None, "no certificate"),
        (&"cl_nobody".to_owned(), Some(&billing), "an unknown client"),
    ] {
        let (status, body) = s.token_with_certificate(client_id, cert).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{what}");
        assert_eq!(body["error_description"], "client authentication failed", "{what} tells nothing more");
    }
    // Each refusal left its audit row.
    poll_audit(&s.app.database_url, "channel = 'oauth' AND decision = 'refused' AND reason = 'invalid_client'", 4)
        .await;

    // A certificate with the same subject that the authority did not issue never gets
    // as far as a request: the handshake refuses it.
    let impostor = AgentCert::from_leaf(TestCa::new("Impostor CA").issue_client(&BILLING));
    let refused = s
        .client(Some(&impostor))
        .post(format!("{}/oauth/token", s.app.base))
        .form(&[("grant_type", "client_credentials"), ("client_id", s.a.reg.client_id.as_str())])
        .send()
        .await;
    assert!(refused.is_err(), "another authority's certificate ends the handshake: {refused:?}");

    // Revoking the subject ends its tokens and its logins on the next request.
    let (status, _) = owner.post(&format!("/credentials/{credential}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(s.gw(&token, Some(&billing)).await.0, 401);
    assert_eq!(s.token_with_certificate(&s.a.reg.client_id, Some(&billing)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_subject_names_nobody_in_a_self_signed_certificate_or_one_a_proxy_forwards() {
    // The listener accepts any certificate that proves its key: a self-signed one can
    // write any subject, so none authenticates by it.
    let s = setup(|_| ()).await;
    let owner = Script::new(&s.app, &s.a.dev.personal_token(None).await);
    let subjects = format!("/profiles/{}/certificate-subjects", s.a.reg.secret.profile_id);
    let (status, registered) = owner.post(&subjects, json!({ "subject": "CN=Billing-Agent,O=Acme" })).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let meta = s.metadata().await;
    let methods = meta["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(!methods.contains(&json!("tls_client_auth")), "{methods:?}");
    let forged = AgentCert::from_leaf(TestCa::new("Acme Agents CA").issue_client(&BILLING));
    let self_signed = {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in BILLING {
            params.distinguished_name.push(t, v);
        }
        let cert = params.self_signed(&key).unwrap();
        AgentCert { der: cert.der().to_vec(), pem: cert.pem(), key_pem: key.serialize_pem(), jwk: Value::Null }
    };
    for (cert, what) in [(&forged, "signed by an authority the listener does not know"), (&self_signed, "self-signed")]
    {
        let (status, body) = s.token_with_certificate(&s.a.reg.client_id, Some(cert)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{what}");
    }

    // Behind a proxy: the header's certificate binds tokens, but its chain is not ours to
    // check, so its subject authenticates nobody either.
    let (app, _upstream, a) = behind_proxy("127.0.0.1/32", true).await;
    let owner = Script::new(&app, &a.dev.personal_token(None).await);
    let subjects = format!("/profiles/{}/certificate-subjects", a.reg.secret.profile_id);
    assert_eq!(owner.post(&subjects, json!({ "subject": "CN=Billing-Agent,O=Acme" })).await.0, StatusCode::CREATED);
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .header("client-cert", forged.header())
        .form(&[("grant_type", "client_credentials"), ("client_id", a.reg.client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
}

#[tokio::test]
async fn a_subject_is_registered_once_per_profile_by_its_owner_and_a_bad_one_is_refused_with_the_format() {
    let s = setup(|_| ()).await;
    let owner = Script::new(&s.app, &s.a.dev.personal_token(None).await);
    let subjects = format!("/profiles/{}/certificate-subjects", s.a.reg.secret.profile_id);
    for bad in [json!({ "subject": "billing-agent" }), json!({ "subject": "" }), json!({ "subject": "CN=a\nO=b" })] {
        let (status, body) = owner.post(&subjects, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("RFC 4514"), "{body}");
    }
    // openssl's default output names the subject backwards: refused, saying what to do.
    let (status, body) = owner.post(&subjects, json!({ "subject": "subject=C = GB, O = Acme, CN = agent" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("-nameopt RFC2253"), "{body}");
    let (status, body) = owner.post(&subjects, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "subject is required: {body}");
    assert!(body.to_string().contains("subject"), "{body}");

    // Two registrations of one subject race: one wins, the other is told it exists.
    let (first, second) = tokio::join!(
        owner.post(&subjects, json!({ "subject": "CN=billing-agent,O=Acme" })),
        owner.post(&subjects, json!({ "subject": "cn=Billing-Agent, o=ACME" })),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{first:?} {second:?}");
    // The same subject once more (another spelling) is refused; another is fine.
    assert_eq!(owner.post(&subjects, json!({ "subject": "CN=BILLING-AGENT,O=acme" })).await.0, StatusCode::CONFLICT);
    assert_eq!(owner.post(&subjects, json!({ "subject": "CN=billing-agent-2,O=Acme" })).await.0, StatusCode::CREATED);

    // The client's production profile cannot take a subject its sandbox has: the token
    // request names the client, and the certificate must mean one environment.
    let (status, production) =
        owner.post(&format!("/clients/{}/profiles", s.a.reg.client_id), json!({ "environment": "production" })).await;
    assert_eq!(status, StatusCode::CREATED, "{production}");
    let production_subjects = format!("/profiles/{}/certificate-subjects", production["profile_id"].as_str().unwrap());
    let (status, body) = owner.post(&production_subjects, json!({ "subject": "CN=billing-agent,O=Acme" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("sandbox profile already"), "{body}");
    assert_eq!(
        owner.post(&production_subjects, json!({ "subject": "CN=billing-agent,OU=Production,O=Acme" })).await.0,
        StatusCode::CREATED
    );

    // Another developer cannot register one on this profile, nor learn it exists.
    let mallory = crate::helpers::agent(&s.app, &[]).await;
    let theirs = Script::new(&s.app, &mallory.dev.personal_token(None).await);
    let (status, body) = theirs.post(&subjects, json!({ "subject": "CN=mallory,O=Acme" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let listed = s.app.store.enforcement().snapshot().current().client_subjects.get(&s.a.reg.client_id).map(Vec::len);
    assert_eq!(listed, Some(3), "the three registered subjects are enforced, nothing of Mallory's");
}

/// A plain-http server behind a "proxy" on loopback, with `--trusted-proxies` and
/// `--trust-client-cert-header` as given.
async fn behind_proxy(trusted: &str, header_trusted: bool) -> (TestApp, TestUpstream, Agent) {
    let trusted = trusted.parse().unwrap();
    let app = TestApp::spawn_configured(|a| {
        a.trusted_proxies = vec![trusted];
        a.trust_client_cert_header = header_trusted;
    })
    .await;
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast"), ("GET", "/headers")]).await;
    (app, upstream, a)
}

async fn proxied_token(app: &TestApp, a: &Agent, client_cert: Option<&str>) -> Value {
    let mut req = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(h) = client_cert {
        req = req.header("client-cert", h);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn proxied_call(app: &TestApp, path: &str, token: &str, client_cert: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(format!("{}/gw/bank{path}", app.base)).bearer_auth(token);
    if let Some(h) = client_cert {
        req = req.header("client-cert", h);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn behind_a_trusted_proxy_its_client_cert_header_binds_tokens_and_from_anyone_else_it_is_ignored() {
    let mine = AgentCert::p256();
    let (app, upstream, a) = behind_proxy("127.0.0.1/32", true).await;
    let meta = crate::helpers::get_json(&format!("{}/.well-known/oauth-authorization-server", app.base)).await;
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);
    let issued = proxied_token(&app, &a, Some(&mine.header())).await;
    let token = issued["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token)["cnf"]["x5t#S256"], mine.thumbprint());
    let (status, echoed) = proxied_call(&app, "/headers", &token, Some(&mine.header())).await;
    assert_eq!(status, 200, "{echoed}");
    assert!(
        echoed.to_string().find("client-cert").is_none(),
        "the certificate header never reaches the upstream: {echoed}"
    );
    let stranger = AgentCert::p256();
    for (h, what) in [
        (None, "no header"),
        (Some(stranger.header()), "another certificate"),
        (Some(":not base64!:".to_owned()), "a broken header"),
        (Some(STANDARD.encode(&mine.der)), "not a structured-field byte sequence"),
    ] {
        let (status, body) = proxied_call(&app, "/fast", &token, h.as_deref()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("certificate_mismatch")), "{what}");
    }
    assert_eq!(upstream.hits(), 1);

    // The operator did not say the proxy sets the header: it binds nothing, and a
    // token bound elsewhere cannot be used by naming a certificate in it.
    let (app, _upstream, a) = behind_proxy("127.0.0.1/32", false).await;
    let meta = crate::helpers::get_json(&format!("{}/.well-known/oauth-authorization-server", app.base)).await;
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], false);
    assert_eq!(meta["token_endpoint_auth_methods_supported"].as_array().unwrap().len(), 3);
    let issued = proxied_token(&app, &a, Some(&mine.header())).await;
    assert!(claims_of(issued["access_token"].as_str().unwrap()).get("cnf").is_none(), "{issued}");

    // The header is trusted, but this caller is not the trusted proxy.
    let (app, _upstream, a) = behind_proxy("10.0.0.0/8", true).await;
    let issued = proxied_token(&app, &a, Some(&mine.header())).await;
    assert!(claims_of(issued["access_token"].as_str().unwrap()).get("cnf").is_none(), "{issued}");
}

/// `server/tests/mcp_clients/mtls_client.py` as the agent of `s`: with its own
/// self-signed certificate, or with one `authority` issues it. What holds either way is
/// checked here: the certificate alone got a token with the credential registered, bound
/// to the certificate, and an MCP session ran with it, but not without it.
async fn python_agent(s: &Setup, authority: Option<&TestCa>) -> Value {
    use crate::mcp_clients::{clients_dir, installed, root, run_json};
    let python = installed(root().join(".tools/mcp-sdk1/bin/python"));
    let work = TempDir::new();
    let ca = write(&work, "server-ca.pem", &s.ca.pem());
    let mut cmd = std::process::Command::new(python);
    cmd.arg(clients_dir().join("mtls_client.py"))
        .arg(&s.app.base)
        .arg(&ca)
        .arg(s.a.dev.personal_token(None).await)
        .arg(&s.a.reg.secret.profile_id)
        .arg(&s.a.reg.client_id)
        .arg(&work.0);
    if let Some(authority) = authority {
        cmd.arg(write(&work, "clients-ca.pem", &authority.pem())).arg(write(
            &work,
            "clients-ca.key",
            &authority.key_pem(),
        ));
    }
    let out = run_json(cmd).await;
    assert_eq!(out["registration_status"], 201, "{out}");
    assert_eq!(out["token_status"], 200, "{out}");
    let claims = claims_of(out["token_body"]["access_token"].as_str().unwrap());
    assert_eq!(claims["cid"], out["registered"]["credential_id"], "the certificate authenticated it");
    assert_eq!(claims["cnf"]["x5t#S256"], out["x5t"], "bound to the certificate, as Python hashes it");
    assert_eq!(out["executed"]["status"], 200, "{out}");
    assert_ne!(out["without_certificate"], "accepted", "{out}");
    assert_eq!(
        (out["copied_status"].as_i64(), out["copied_body"]["code"].as_str()),
        (Some(401), Some("certificate_mismatch"))
    );
    assert_eq!(s.upstream.hits(), 1);
    out
}

#[tokio::test]
async fn the_mcp_python_sdk_over_httpx_authenticates_with_its_self_signed_certificate_and_runs_a_session() {
    let s = setup(|_| ()).await;
    let out = python_agent(&s, None).await;
    assert_eq!(out["registered"]["thumbprint"], out["thumbprint"], "our thumbprint is joserfc's (RFC 7638)");
    assert_eq!(out["registered"]["key_type"], "RSA 2048", "{out}");
    assert!(out["auth_methods"].as_array().unwrap().contains(&json!("self_signed_tls_client_auth")));
}

#[tokio::test]
async fn the_mcp_python_sdk_over_httpx_authenticates_with_a_certificate_the_enterprise_authority_issued() {
    let enterprise = TestCa::new("Acme Agents CA");
    let (s, _dir) = setup_with_client_ca(&enterprise).await;
    let out = python_agent(&s, Some(&enterprise)).await;
    // Python writes the comma inside "Acme, Ltd" escaped; we read it back the same.
    assert_eq!(out["subject"], r"CN=python-agent,OU=Agents,O=Acme\, Ltd,C=GB");
    assert_eq!(out["registered"]["subject"], out["subject"], "{out}");
    assert!(out["auth_methods"].as_array().unwrap().contains(&json!("tls_client_auth")), "{out}");
}
