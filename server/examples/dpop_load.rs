//! Load for `bench/dpop.sh`: DPoP needs a fresh proof per request, which no stock load
//! generator makes, so this one does, and it loads the bearer case the same way so the
//! two are compared with one tool.
//!
//! usage: dpop_load <mode> <base> <client_id> <client_secret> <path> <secs> <concurrency> [rate]
//!   mode: direct | bearer | bearer-task | dpop-es256 | dpop-eddsa | token-bearer | token-dpop-es256
//!         | token-assertion-eddsa | token-assertion-es256 (private_key_jwt: the key is
//!         registered for profile $BENCH_PROFILE with the token $BENCH_ADMIN_TOKEN, and
//!         each request carries a fresh signed assertion instead of the secret);
//!         bearer-task calls with a per-task token (RFC 9396) for the path's endpoint only,
//!         good for 10,000 calls, so every call is checked and counted;
//!         federated-es256 calls with a token of an identity provider (a trusted issuer
//!         registered with a pasted JWKS, its identity linked to $BENCH_PROFILE, both with
//!         $BENCH_ADMIN_TOKEN), the same token each time as an agent reuses it;
//!         federated-es256-each signs a new one per request: a signature check each)
//!   rate: 0 for closed-loop saturation, else an open-loop rate (requests/s) whose
//!         latencies are measured from each request's scheduled start.
//! Prints one JSON line: requests, ok, rps, p50/p99/p99.9 (ms), and the client's own CPU
//! seconds (signing proofs costs the client, not the gateway).

// A measuring tool, not the server: it stops loudly on anything it did not expect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../tests/api/dpop_key.rs"]
#[allow(dead_code)] // the tests' forging helpers
mod dpop_key;
use dpop_key::{DpopKey, ProofParts};

struct Setup {
    mode: String,
    base: String,
    client_id: String,
    secret: String,
    url: String,
    key: Option<DpopKey>,
    token: String,
    nonce: Mutex<Option<String>>,
    /// The trusted issuer's `iss` (federated modes).
    issuer: String,
}

/// The audience the bench's identity provider issues its tokens for.
const IDP_AUDIENCE: &str = "api://portcullis-bench";

impl Setup {
    /// A token of the bench's identity provider for the linked identity, valid 10 min.
    fn idp_token(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        self.key.as_ref().expect("key").sign(&ProofParts {
            header: json!({ "alg": "ES256", "kid": "bench", "typ": "JWT" }),
            claims: json!({ "iss": self.issuer, "sub": "bench-agent", "aud": IDP_AUDIENCE, "iat": now,
                            "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string() }),
        })
    }

    async fn one(&self, http: &reqwest::Client) -> bool {
        let token_url = format!("{}/oauth/token", self.base);
        let req = match self.mode.as_str() {
            "direct" => http.get(&self.url),
            "bearer" | "bearer-task" | "federated-es256" => http.get(&self.url).bearer_auth(&self.token),
            "federated-es256-each" => http.get(&self.url).bearer_auth(self.idp_token()),
            "dpop-es256" | "dpop-eddsa" => {
                let key = self.key.as_ref().expect("key");
                let proof = key.proof("GET", &self.url, Some(&self.token), None);
                http.get(&self.url).header("authorization", format!("DPoP {}", self.token)).header("dpop", proof)
            }
            "token-bearer" => http
                .post(&token_url)
                .basic_auth(&self.client_id, Some(&self.secret))
                .form(&[("grant_type", "client_credentials")]),
            "token-assertion-eddsa" | "token-assertion-es256" => {
                let key = self.key.as_ref().expect("key");
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let alg = if matches!(key, DpopKey::P256(_)) { "ES256" } else { "EdDSA" };
                let assertion = key.sign(&ProofParts {
                    header: json!({ "alg": alg }),
                    claims: json!({ "iss": self.client_id, "sub": self.client_id, "aud": token_url,
                                    "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 60 }),
                });
                http.post(&token_url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion.as_str()),
                ])
            }
            _ => {
                let key = self.key.as_ref().expect("key");
                let nonce = self.nonce.lock().expect("nonce").clone();
                let proof = key.proof("POST", &token_url, None, nonce.as_deref());
                http.post(&token_url)
                    .basic_auth(&self.client_id, Some(&self.secret))
                    .header("dpop", proof)
                    .form(&[("grant_type", "client_credentials")])
            }
        };
        match req.send().await {
            Ok(res) => {
                if let Some(n) = res.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()) {
                    if self.mode.starts_with("token-dpop") {
                        *self.nonce.lock().expect("nonce") = Some(n.to_owned());
                    }
                }
                let ok = res.status().is_success();
                let _ = res.bytes().await;
                ok
            }
            Err(_) => false,
        }
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let (mode, base, client_id, secret, path) = (arg(1), arg(2), arg(3), arg(4), arg(5));
    let secs: u64 = arg(6).parse().expect("secs");
    let concurrency: usize = arg(7).parse().expect("concurrency");
    let rate: u64 = arg(8).parse().unwrap_or(0);
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().expect("client");
    let key = match mode.as_str() {
        "dpop-es256" | "token-dpop-es256" | "token-assertion-es256" | "federated-es256" | "federated-es256-each" => {
            Some(DpopKey::p256())
        }
        "dpop-eddsa" | "token-assertion-eddsa" => Some(DpopKey::ed25519()),
        _ => None,
    };
    let url = if mode == "direct" { path.clone() } else { format!("{base}{path}") };
    // Each run registers an issuer of its own: issuers are unique, and a run never finds
    // another run's.
    let issuer = format!("https://idp.bench.example/{}", uuid::Uuid::new_v4());
    let mut setup =
        Setup { mode, base, client_id, secret, url, key, token: String::new(), nonce: Mutex::new(None), issuer };
    if matches!(setup.mode.as_str(), "bearer" | "bearer-task" | "dpop-es256" | "dpop-eddsa") {
        // A token the way each client gets it: bound for DPoP (after the nonce round).
        let token_url = format!("{}/oauth/token", setup.base);
        let mut nonce: Option<String> = None;
        for _ in 0..2 {
            let mut req = http
                .post(&token_url)
                .basic_auth(&setup.client_id, Some(&setup.secret))
                .form(&[("grant_type", "client_credentials")]);
            if let Some(key) = &setup.key {
                req = req.header("dpop", key.proof("POST", &token_url, None, nonce.as_deref()));
            }
            let res = req.send().await.expect("token request");
            nonce = res.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body: Value = res.json().await.expect("token json");
            if let Some(t) = body["access_token"].as_str() {
                setup.token = t.to_owned();
                break;
            }
        }
        assert!(!setup.token.is_empty(), "no token");
    }
    if setup.mode == "bearer-task" {
        // The endpoint's id, as an agent learns it from `list_endpoints`, then a token for
        // that endpoint alone.
        let listed: Value = http
            .post(format!("{}/mcp", setup.base))
            .bearer_auth(&setup.token)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "list_endpoints")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "list_endpoints", "arguments": {},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}}))
            .send()
            .await
            .expect("list_endpoints")
            .json()
            .await
            .expect("list_endpoints json");
        let path = setup.url.strip_prefix(&setup.base).unwrap_or("");
        let endpoint = listed["result"]["structuredContent"]["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .find(|e| e["method"] == "GET" && path.ends_with(e["path"].as_str().unwrap_or("?")))
            .expect("the path's endpoint")["id"]
            .clone();
        let details = json!([{ "type": "portcullis_task", "task_id": "bench", "endpoints": [endpoint],
                               "max_uses": 10_000 }]);
        let body: Value = http
            .post(format!("{}/oauth/token", setup.base))
            .basic_auth(&setup.client_id, Some(&setup.secret))
            .form(&[("grant_type", "client_credentials"), ("authorization_details", &details.to_string())])
            .send()
            .await
            .expect("task token")
            .json()
            .await
            .expect("task token json");
        setup.token = body["access_token"].as_str().expect("a task token").to_owned();
    }
    if setup.mode.starts_with("token-assertion") {
        // The agent's developer registers its public key (here the demo admin does).
        let profile = std::env::var("BENCH_PROFILE").expect("BENCH_PROFILE");
        let admin = std::env::var("BENCH_ADMIN_TOKEN").expect("BENCH_ADMIN_TOKEN");
        let jwk = setup.key.as_ref().expect("key").jwk();
        let res = http
            .post(format!("{}/api/v1/profiles/{profile}/public-keys", setup.base))
            .bearer_auth(admin)
            .json(&json!({ "jwk": jwk }))
            .send()
            .await
            .expect("key registration");
        assert!(res.status().is_success(), "key registration: {}", res.text().await.unwrap_or_default());
    }
    if setup.mode.starts_with("federated") {
        // The platform admin registers the identity provider and links the agent's
        // identity there to its profile.
        let profile = std::env::var("BENCH_PROFILE").expect("BENCH_PROFILE");
        let admin = std::env::var("BENCH_ADMIN_TOKEN").expect("BENCH_ADMIN_TOKEN");
        let mut jwk = setup.key.as_ref().expect("key").jwk();
        jwk["kid"] = json!("bench");
        let post = |path: String, body: Value| {
            let req = http.post(format!("{}/api/v1{path}", setup.base)).bearer_auth(&admin).json(&body);
            async move {
                let res = req.send().await.expect("admin request");
                let status = res.status();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                assert!(status.is_success(), "{path}: {status} {body}");
                body
            }
        };
        let registered = post(
            "/issuers".into(),
            json!({ "issuer": setup.issuer, "jwks": json!({ "keys": [jwk] }).to_string(),
                    "audiences": [IDP_AUDIENCE], "algorithms": ["ES256"] }),
        )
        .await;
        let issuer_id = registered["id"].as_str().expect("issuer id").to_owned();
        post(
            format!("/profiles/{profile}/federated-identities"),
            json!({ "issuer_id": issuer_id, "subject": "bench-agent" }),
        )
        .await;
        // The link reaches the gateway with the next policy snapshot.
        let mut linked = false;
        for _ in 0..50 {
            let t = setup.idp_token();
            if http.get(&setup.url).bearer_auth(&t).send().await.expect("probe").status().is_success() {
                linked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(linked, "the identity provider's token was never accepted");
        setup.token = setup.idp_token();
    }
    let setup = Arc::new(setup);
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu = cpu_seconds();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    if rate == 0 {
        for _ in 0..concurrency {
            let (setup, http, latencies, ok) = (setup.clone(), http.clone(), latencies.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    if setup.one(&http).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    mine.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies.lock().expect("latencies").extend(mine);
            }));
        }
    } else {
        // Open loop: request i is due at i/rate; its latency counts from then.
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let total = rate * secs;
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency * 64));
        for i in 0..total {
            let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due.into()).await;
            let permit = gate.clone().acquire_owned().await.expect("gate");
            let (setup, http, latencies, ok) = (setup.clone(), http.clone(), latencies.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                if setup.one(&http).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                latencies.lock().expect("latencies").push(due.elapsed().as_secs_f64() * 1000.0);
                drop(permit);
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().expect("latencies").clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or(0.0);
    println!(
        "{}",
        json!({
            "mode": setup.mode,
            "requests": l.len(),
            "ok": ok.load(Ordering::Relaxed),
            "rps": l.len() as f64 / elapsed,
            "p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
            "client_cpu_s": cpu_seconds() - cpu,
        })
    );
}
