//! Rate limits shared across replicas through Redis (`--redis-url`), tried the hard way:
//! two real server processes hit at once, the Redis connection cut mid-run, a Redis that
//! accepts connections and never answers. Needs `TEST_REDIS_URL` (`.ci/run` sets it);
//! without it these tests say so and pass.

use crate::helpers::{agent_for, poll_audit, Agent, Cable, Server, TestApp, TestUpstream};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

fn redis_url() -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379); shared limits need a real Redis");
    }
    url
}

/// An agent on its own product, limited to `per_minute` with `burst`, and the app
/// shut down so that only real server processes serve its store.
async fn limited_agent(per_minute: i64, burst: i64) -> (TestApp, Agent, TestUpstream) {
    let mut app = TestApp::spawn().await;
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let admin = app.operator_admin().await;
    app.store.set_rate_limit(&admin, &a.reg.secret.profile_id, per_minute, burst).await.unwrap();
    app.shut_down().await;
    (app, a, upstream)
}

/// Sends `n` requests at once, alternating between the replicas; returns per replica
/// how many were admitted (200) and refused as rate limited (429).
async fn flood(bases: &[&str], key: &str, n: usize) -> Vec<(usize, usize)> {
    let http = reqwest::Client::new();
    let calls = (0..n).map(|i| {
        let (http, base) = (http.clone(), bases[i % bases.len()].to_owned());
        let key = key.to_owned();
        async move {
            let res = http.get(format!("{base}/gw/bank/fast")).header("x-api-key", key).send().await.unwrap();
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
            }
            (i % bases.len(), res.status())
        }
    });
    let mut tally = vec![(0, 0); bases.len()];
    for (replica, status) in futures_util::future::join_all(calls).await {
        match status {
            StatusCode::OK => tally[replica].0 += 1,
            StatusCode::TOO_MANY_REQUESTS => tally[replica].1 += 1,
            other => panic!("unexpected {other}"),
        }
    }
    tally
}

#[tokio::test]
async fn two_replicas_admit_one_limit_between_them() {
    let Some(redis) = redis_url() else { return };
    // N = 10 a minute (one every 6 s) with a burst of 5; 3N requests at once.
    let (n, burst) = (10, 5);
    let (app, a, _upstream) = limited_agent(n, burst).await;

    // Without Redis each replica counts alone: twice the burst gets through. This is
    // what the shared limit has to prevent (and shows the test can tell).
    let (first, second) = (Server::start(&app, &[]).await, Server::start(&app, &[]).await);
    let alone = flood(&[&first.base, &second.base], &a.key.secret, 3 * n as usize).await;
    assert_eq!(alone.iter().map(|t| t.0).sum::<usize>(), 2 * burst as usize, "{alone:?}");
    first.kill();
    second.kill();

    // A new profile limit (fresh buckets), the same store, now through Redis.
    let (app, a, _upstream) = limited_agent(n, burst).await;
    let flags = ["--redis-url", redis.as_str()];
    let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
    let started = Instant::now();
    let shared = flood(&[&first.base, &second.base], &a.key.secret, 3 * n as usize).await;
    let admitted: usize = shared.iter().map(|t| t.0).sum();
    // One more every 6 s may be earned while the flood runs.
    let earned = (started.elapsed().as_secs() / 6) as usize;
    assert!(admitted >= burst as usize && admitted <= burst as usize + earned, "{shared:?} in {:?}", started.elapsed());
    assert!(admitted <= (n + burst) as usize, "the issue's bound: at most N + burst");
    assert!(shared.iter().all(|t| t.1 > 0), "both replicas refuse once the shared limit is spent: {shared:?}");
    eprintln!("shared limit: {shared:?} (admitted, refused) per replica, {:?}", started.elapsed());

    // Refusals are audited with the reason the limit gives.
    let rows = poll_audit(
        &app.database_url,
        &format!("profile_id = '{}' AND reason = 'rate_limited'", a.reg.secret.profile_id),
        3 * n as usize - admitted,
    )
    .await;
    assert_eq!(rows.len(), 3 * n as usize - admitted);
}

#[tokio::test]
async fn a_cut_redis_leaves_each_replica_its_own_limit_and_readiness_says_so() {
    let Some(redis) = redis_url() else { return };
    let target = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let cable = Cable::to(target).await;
    // One a minute after a burst of 4: nothing is earned back while the test runs.
    let (app, a, _upstream) = limited_agent(1, 4).await;
    let url = format!("redis://{}", cable.addr);
    let server = Server::start(&app, &["--redis-url", &url]).await;
    let http = reqwest::Client::new();
    let ready = || async { http.get(format!("{}/readyz", server.base)).send().await.unwrap() };
    assert_eq!(ready().await.status(), StatusCode::OK);
    let before = flood(&[&server.base], &a.key.secret, 4).await;
    assert_eq!(before, [(4, 0)], "the burst, counted in Redis");

    cable.cut();
    // Redis is gone: requests are still served, limited by this replica's own count
    // (which has seen none of the burst spent above, so it admits a burst of its own).
    let started = Instant::now();
    let during = flood(&[&server.base], &a.key.secret, 8).await;
    assert_eq!(during, [(4, 4)], "limited locally while Redis is away");
    assert!(started.elapsed() < Duration::from_secs(2), "no request waits on a dead Redis: {:?}", started.elapsed());
    let res = ready().await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.text().await.unwrap().starts_with("redis unreachable"), "readiness names Redis");

    cable.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready().await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "readiness never recovered after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back on the shared count, which still holds the burst spent before the cut.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = flood(&[&server.base], &a.key.secret, 3).await;
    assert_eq!(after, [(0, 3)], "the shared count resumes where it was");
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_no_request_more_than_a_moment() {
    let Some(_) = redis_url() else { return };
    // Accepts connections, reads, never answers: the worst kind of outage.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (app, a, _upstream) = limited_agent(600, 100).await;
    let server = Server::start(&app, &["--redis-url", &format!("redis://{addr}")]).await;
    let http = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let res = http.get(format!("{}/gw/bank/fast", server.base)).header("x-api-key", &a.key.secret).send().await;
        assert_eq!(res.unwrap().status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(900), "slowest request {slowest:?}");
    let res = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    eprintln!("silent Redis: slowest of 20 requests {slowest:?}");
}

#[tokio::test]
async fn tokens_issued_per_client_are_counted_across_replicas() {
    let Some(redis) = redis_url() else { return };
    let (app, a, _upstream) = limited_agent(600, 100).await;
    // 6 tokens a minute per client, 2 at once; each replica alone would issue 2.
    let flags = ["--redis-url", redis.as_str(), "--token-rate-limit", "6"];
    let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
    let http = reqwest::Client::new();
    let mut issued = 0;
    for i in 0..8 {
        let base = if i % 2 == 0 { &first.base } else { &second.base };
        let res = http
            .post(format!("{base}/oauth/token"))
            .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::OK => issued += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!(issued, 2, "two tokens at once for the client, across both replicas");
}

/// The metrics say who decided: Redis, or each replica alone while Redis was away.
#[tokio::test]
async fn the_metrics_count_checks_redis_decided_and_those_decided_locally() {
    let Some(redis) = redis_url() else { return };
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("redis://{}", l.local_addr().unwrap())
    };
    for (url, redis_decides) in [(redis, true), (closed, false)] {
        let app = TestApp::spawn_configured(|a| {
            a.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
            a.redis_url = Some(url.clone());
        })
        .await;
        let upstream = TestUpstream::start().await;
        let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
        let tally = flood(&[&app.base], &a.key.secret, 3).await;
        assert_eq!(tally, [(3, 0)]);
        let text = reqwest::get(app.metrics.clone().unwrap()).await.unwrap().text().await.unwrap();
        let value = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
            line.rsplit_once(' ').unwrap().1.parse().unwrap()
        };
        let (decided, fell_back) =
            (value("portcullis_shared_limit_checks_total"), value("portcullis_shared_limit_fallbacks_total"));
        if redis_decides {
            assert_eq!((decided, fell_back), (3.0, 0.0));
        } else {
            assert_eq!((decided, fell_back), (0.0, 3.0));
        }
    }
}

/// A product's limit counted in Redis refuses with the product's reason, not the
/// caller's: Redis names the refusing rule by its place, and each place has its scope.
#[tokio::test]
async fn a_product_limit_in_redis_refuses_as_the_products() {
    let Some(redis) = redis_url() else { return };
    let app = TestApp::spawn_configured(|a| a.redis_url = Some(redis.clone())).await;
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let admin = app.operator_admin().await;
    let product = app.product_id("bank").await;
    // Six a minute, one at a time; the caller's own limit is far above it.
    let policy = portcullis_domain::catalog::ProductPolicy { rate_per_minute: Some(6), ..Default::default() };
    app.store.set_product_policy(&admin, &product, policy, &Default::default()).await.unwrap();
    assert_eq!(flood(&[&app.base], &a.key.secret, 3).await, [(1, 2)]);
    let rows =
        app.wait_for_audit(&format!("profile_id = '{}' AND decision = 'refused'", a.reg.secret.profile_id), 2).await;
    assert!(rows.iter().all(|r| r["reason"] == "product_rate_limited"), "{rows:?}");
}
