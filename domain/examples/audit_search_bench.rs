//! Audit search at scale: loads N gateway-request rows into `audit_events` (SQLite or
//! PostgreSQL) and times the security team's searches through the real path,
//! `Store::search_audit`, with the portal's page size.
//!
//! ```sh
//! cargo run --release -p portcullis-domain --example audit_search_bench -- \
//!     --database-url sqlite:bench/.data/audit_search_10000000.db --rows 10000000
//! ```
//!
//! The rows are generated inside the database (`INSERT … SELECT` over a recursive CTE
//! on SQLite, over `generate_series` on PostgreSQL), a million per transaction, in time
//! order as the gateway writes them. A re-run over the same database reuses the rows
//! (and finishes an interrupted load); use a fresh database for a different `--rows`.
//!
//! The data: ~2,000 clients with a skewed share each (the heaviest ~8% of all rows, the
//! lightest ~0.015%), spread evenly over 400 days; channels rest/mcp/oauth; eight
//! products with five endpoints each; ~10% refusals (rate limits, bad tokens, scopes).
//! The store's clock is set to the newest row, so `since=30d` means the last 30 days of
//! data however long ago the rows were loaded.
//!
//! `--plans` adds, after the measured table, the plan and time of the keyset condition
//! written three ways on pages 2 and 100. `--no-stats` (SQLite) measures without
//! planner statistics, as the server runs SQLite; by default the file is `ANALYZE`d.
//!
//! `--aggregates` also times the security console's reads over the last 30 days on the
//! same rows — `security_dashboard`, `client_activity` for the heaviest and the lightest
//! client, `access_review` — after giving every bench client profiles, credentials and
//! grants (see `console_fixtures`); with `--plans`, each of their queries alone, explained,
//! and variants of them. `--no-searches` skips the searches.

use std::error::Error;
use std::time::Instant;

use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::audit_search::DEFAULT_PAGE;
use portcullis_domain::clock::Clock;
use portcullis_domain::model::{AuditFilter, ReviewFlag, Role, ACTIVITY_DAYS};
use portcullis_domain::secrets::ServerSecret;
use portcullis_domain::store::{Backend, Policy, Store};
use portcullis_domain::time::{format_iso, DAY, MINUTE};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

type Res<T> = Result<T, Box<dyn Error>>;

const EMAIL: &str = "bench-security@portcullis.local";
const PASSWORD: &str = "bench-audit-search-Passw0rd-2026!";
const SECRET: &str = "audit-search-bench-secret-0123456789-abcdefghijklmnop";
/// How far back the rows go: a retention-like year and a bit.
const SPAN_DAYS: i64 = 400;
const CLIENTS: i64 = 2000;
/// Rows per generating statement (and transaction).
const CHUNK: i64 = 1_000_000;

struct Args {
    url: String,
    rows: i64,
    samples: usize,
    /// Also show plans and times of the keyset condition written three ways.
    plans: bool,
    /// SQLite only: measure without planner statistics, as the server runs SQLite
    /// (nothing in it runs `ANALYZE`). The default measures after `ANALYZE`.
    no_stats: bool,
    /// Time the searches (`--no-searches` skips them).
    searches: bool,
    /// Also time the security console's 30-day aggregates.
    aggregates: bool,
}

impl Args {
    fn parse() -> Res<Self> {
        let mut url = std::env::var("BENCH_DATABASE_URL").ok();
        let mut rows = 10_000_000;
        let mut samples = 100;
        let mut plans = false;
        let mut no_stats = false;
        let mut searches = true;
        let mut aggregates = false;
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut v = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--database-url" => url = Some(v()?),
                "--rows" => rows = v()?.replace('_', "").parse()?,
                "--samples" => samples = v()?.parse()?,
                "--plans" => plans = true,
                "--no-stats" => no_stats = true,
                "--no-searches" => searches = false,
                "--aggregates" => aggregates = true,
                "-h" | "--help" => {
                    println!(
                        "audit_search_bench --database-url URL [--rows N (10000000)] [--samples N (100)] [--plans] [--no-stats] \
                         [--aggregates] [--no-searches]"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        let url = url.ok_or("--database-url (or BENCH_DATABASE_URL) is required")?;
        Ok(Self { url, rows, samples: samples.max(10), plans, no_stats, searches, aggregates })
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let args = Args::parse()?;
    let backend = Backend::from_url(&args.url)?;
    let secret = ServerSecret::parse(SECRET)?;

    // Migrations and the security user, through the store as the server does it.
    let store = Store::connect(&args.url, &secret, Clock::system(), Policy::default()).await?;
    let user = match store.user_by_email(EMAIL).await? {
        Some(u) => u,
        None => store.create_user(EMAIL, PASSWORD.into(), Role::Security, None, Channel::Cli).await?,
    };
    store.close().await;

    let load = load(&args, backend, &user.id).await?;
    let fixtures = if args.aggregates {
        Some(
            console_fixtures(&args.url, backend, &user.id, load.t_end, !(backend == Backend::Sqlite && args.no_stats))
                .await?,
        )
    } else {
        None
    };

    // Everything runs at the newest row's time, through the real store.
    let clock = Clock::system();
    clock.advance(load.t_end - clock.now());
    let store = Store::connect(&args.url, &secret, clock, Policy::default()).await?;
    let actor = Actor::new(user, Channel::Cli);
    println!();
    let variant = if backend == Backend::Sqlite && args.no_stats { ", no planner statistics" } else { "" };
    println!("## {} — {} rows{variant}", backend_name(backend), thousands(load.rows));
    println!();
    println!("- generation: {}", load.generation);
    println!("- size: {}", load.size);
    println!("- planner statistics: {}", load.stats);
    println!("- data: {} clients over {SPAN_DAYS} days ending {}", CLIENTS, &format_iso(load.t_end)[..16]);
    if let Some(f) = &fixtures {
        println!("- console fixtures: {f}");
    }
    if args.searches {
        searches(&store, &actor, &args, backend, load.t_end).await?;
    }
    if args.aggregates {
        aggregates(&store, &actor, &args, backend, load.t_end).await?;
    }
    store.close().await;
    Ok(())
}

async fn searches(store: &Store, actor: &Actor, args: &Args, backend: Backend, t_end: i64) -> Res<()> {
    let target = match backend {
        Backend::Sqlite => 100.0,
        Backend::Postgres => 50.0,
    };
    let results = measure(store, actor, args, t_end).await?;
    println!();
    println!("Page size {DEFAULT_PAGE}; one search at a time; times are `Store::search_audit` calls, in ms.");
    println!("Target: p95 ≤ {target:.0} ms.");
    println!();
    println!("| search | samples | rows/page | p50 | p95 | p99 | max | p95 ≤ {target:.0} ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut all_met = true;
    for r in results.iter().filter(|r| !r.ms.is_empty()) {
        let (p50, p95, p99, max) = (r.pct(50.0), r.pct(95.0), r.pct(99.0), r.pct(100.0));
        let met = p95 <= target;
        all_met &= met;
        println!(
            "| {} | {} | {:.0} | {p50:.2} | {p95:.2} | {p99:.2} | {max:.2} | {} |",
            r.name,
            r.ms.len(),
            r.rows as f64 / r.ms.len() as f64,
            if met { "met" } else { "**not met**" }
        );
    }
    println!();
    println!("{}: p95 target {}", backend_name(backend), if all_met { "met by every search" } else { "NOT met" });
    if args.plans {
        plans(&args.url, backend, t_end).await?;
    }
    Ok(())
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    }
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Loading

struct Loaded {
    rows: i64,
    t_end: i64,
    generation: String,
    size: String,
    stats: String,
}

async fn load(args: &Args, backend: Backend, owner: &str) -> Res<Loaded> {
    sqlx::any::install_default_drivers();
    let pool: AnyPool = AnyPoolOptions::new().max_connections(1).connect(&args.url).await?;
    // Request rows are the only ones with a request id (administrative rows have none).
    let done: i64 =
        sqlx::query("SELECT COUNT(request_id) AS n FROM audit_events").fetch_one(&pool).await?.try_get("n")?;
    let span = SPAN_DAYS * DAY;
    let t0 = if done > 0 {
        // Row 0 is the oldest; the timestamps follow from it, so a resumed load continues them.
        sqlx::query("SELECT MIN(occurred_at) AS t FROM audit_events WHERE request_id IS NOT NULL")
            .fetch_one(&pool)
            .await?
            .try_get::<i64, _>("t")?
    } else {
        let now = Clock::system().now();
        now - now % MINUTE - span
    };
    let t_end = t0 + span;
    let n = args.rows;
    let generation = if done >= n {
        println!("{} rows already loaded; not generating", thousands(done));
        format!("reused the {} rows already loaded", thousands(done))
    } else {
        if done > 0 {
            println!("resuming the load at row {}", thousands(done));
        }
        let started = Instant::now();
        match backend {
            Backend::Sqlite => {
                // Bulk-load settings for this connection only; the server's WAL comes back after.
                pool.execute(
                    "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576;
                     PRAGMA temp_store = MEMORY;",
                )
                .await?;
            }
            Backend::Postgres => {
                pool.execute("SET synchronous_commit = off; SET work_mem = '256MB'").await?;
            }
        }
        pool.execute(clients_sql(backend, owner, t0).as_str()).await?;
        let mut start = done;
        while start < n {
            let end = (start + CHUNK).min(n);
            let chunk = Instant::now();
            let mut tx = pool.begin().await?;
            tx.execute(rows_sql(backend, start, end, n, t0, span).as_str()).await?;
            tx.commit().await?;
            println!(
                "  rows {:>11} – {:>11}: {:.1} s ({:.1} s so far)",
                thousands(start),
                thousands(end),
                chunk.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
            start = end;
        }
        let inserted = started.elapsed().as_secs_f64();
        let analyze = Instant::now();
        pool.execute("ANALYZE").await?;
        let analyzed = analyze.elapsed().as_secs_f64();
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let total = started.elapsed().as_secs_f64();
        println!("generated in {inserted:.0} s, ANALYZE {analyzed:.0} s");
        format!(
            "{} rows in {inserted:.0} s ({:.0} rows/s){}, then ANALYZE {analyzed:.0} s; {total:.0} s in all",
            thousands(n - done),
            (n - done) as f64 / inserted,
            if done > 0 { " (resumed)" } else { "" }
        )
    };
    let rows = done.max(n);
    let stats = match backend {
        Backend::Sqlite => sqlite_stats(&pool, !args.no_stats).await?,
        Backend::Postgres => "ANALYZE after the load (autovacuum keeps them current)".to_owned(),
    };
    let size = size(&pool, backend, &args.url).await?;
    pool.close().await;
    Ok(Loaded { rows, t_end, generation, size, stats })
}

/// Puts the SQLite file's planner statistics in the state asked for: `sqlite_stat1` from
/// `ANALYZE`, or none at all (what the server's own database has).
async fn sqlite_stats(pool: &AnyPool, wanted: bool) -> Res<String> {
    let table: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'sqlite_stat1'")
        .fetch_one(pool)
        .await?
        .try_get("n")?;
    let have = table > 0
        && sqlx::query("SELECT COUNT(*) AS n FROM sqlite_stat1 WHERE tbl = 'audit_events'")
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?
            > 0;
    Ok(match (wanted, have) {
        (true, true) => "ANALYZE (sqlite_stat1)".to_owned(),
        (true, false) => {
            let started = Instant::now();
            pool.execute("ANALYZE").await?;
            format!("ANALYZE (sqlite_stat1), run now in {:.0} s", started.elapsed().as_secs_f64())
        }
        (false, _) => {
            if table > 0 {
                pool.execute("DELETE FROM sqlite_stat1").await?;
            }
            "none: sqlite_stat1 emptied, as in the server's database (nothing there runs ANALYZE)".to_owned()
        }
    })
}

async fn size(pool: &AnyPool, backend: Backend, url: &str) -> Res<String> {
    let gb = |b: i64| b as f64 / 1e9;
    Ok(match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            let file = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
            let wal = std::fs::metadata(format!("{path}-wal")).map(|m| m.len() as i64).unwrap_or(0);
            format!("database file {:.2} GB (WAL {:.2} GB)", gb(file), gb(wal))
        }
        Backend::Postgres => {
            let r = sqlx::query(
                "SELECT pg_database_size(current_database()) AS db, pg_relation_size('audit_events') AS heap,
                    pg_indexes_size('audit_events') AS idx",
            )
            .fetch_one(pool)
            .await?;
            format!(
                "database {:.2} GB (audit_events: table {:.2} GB, indexes {:.2} GB)",
                gb(r.try_get("db")?),
                gb(r.try_get("heap")?),
                gb(r.try_get("idx")?)
            )
        }
    })
}

/// Zero-padded decimal and hexadecimal, in each dialect.
fn dec(b: Backend, e: &str, w: usize) -> String {
    match b {
        Backend::Sqlite => format!("printf('%0{w}d', {e})"),
        Backend::Postgres => format!("lpad(({e})::text, {w}, '0')"),
    }
}

fn hex(b: Backend, e: &str, w: usize) -> String {
    match b {
        Backend::Sqlite => format!("printf('%0{w}x', {e})"),
        Backend::Postgres => format!("lpad(to_hex({e}), {w}, '0')"),
    }
}

/// The bench's clients, so the search's join to `clients` finds names as in production.
fn clients_sql(b: Backend, owner: &str, t0: i64) -> String {
    let seq = match b {
        Backend::Sqlite => {
            format!("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {CLIENTS}) ")
        }
        Backend::Postgres => String::new(),
    };
    let from = match b {
        Backend::Sqlite => "s".to_owned(),
        Backend::Postgres => format!("generate_series(0, {}) AS s(i)", CLIENTS - 1),
    };
    format!(
        "{seq}INSERT INTO clients (id, owner_id, name, kind, description, suspended, created_at)
         SELECT 'cl_bench' || {id}, '{owner}', 'Bench client ' || i,
                CASE i % 3 WHEN 0 THEN 'ai_agent' WHEN 1 THEN 'application' ELSE 'service' END, '', 0, {t0}
         FROM {from} WHERE true ON CONFLICT (id) DO NOTHING",
        id = dec(b, "i", 27),
    )
}

const PRODUCTS: [&str; 8] = ["accounts", "payments", "cards", "loans", "customers", "fx", "statements", "kyc"];

/// `INSERT … SELECT` of rows `start..end` of `n`. Every random draw is made once per
/// row in a materialised CTE (otherwise SQLite re-evaluates `random()` at each use);
/// three 15-digit draws are cut into independent fields.
fn rows_sql(b: Backend, start: i64, end: i64, n: i64, t0: i64, span: i64) -> String {
    const R: &str = "1000000000000000";
    let draws = match b {
        Backend::Sqlite => format!(
            "WITH RECURSIVE seq(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < {end}),
             d AS MATERIALIZED (SELECT i, (random() & 9223372036854775807) % {R} AS r1,
                 (random() & 9223372036854775807) % {R} AS r2, (random() & 9223372036854775807) % {R} AS r3
                 FROM seq),"
        ),
        Backend::Postgres => format!(
            "WITH d AS MATERIALIZED (SELECT i, floor(random() * {R})::bigint AS r1,
                 floor(random() * {R})::bigint AS r2, floor(random() * {R})::bigint AS r3
                 FROM generate_series({start}::bigint, {last}::bigint) AS i),",
            last = end - 1
        ),
    };
    // Client: u³ of a uniform u in [0, 1) picks among CLIENTS, so low numbers are heavy.
    let x = format!(
        "x AS MATERIALIZED (SELECT i, {t0} + i * {span} / {n} AS t,
             (r1 % 1000000) * (r1 % 1000000) / 1000000 * (r1 % 1000000) / 1000000 * {CLIENTS} / 1000000 AS ci,
             (r1 / 1000000) % 1000 AS ud, (r1 / 1000000000) % 1000 AS uch, (r1 / 1000000000000) % 1000 AS um,
             (r2 % 1000) * (r2 % 1000) / 1000 / 125 AS pi, (r2 / 1000) % 5 AS ue, (r2 / 10000) % 10 AS env,
             (r2 / 100000) % 100000 AS rid, (r2 / 10000000000) % 1000 AS ut, r3
           FROM d)"
    );
    let slug = format!(
        "CASE pi {} END",
        PRODUCTS.iter().enumerate().map(|(k, p)| format!("WHEN {k} THEN '{p}'")).collect::<Vec<_>>().join(" ")
    );
    // Channel: 75% REST, 15% MCP (80% of it execute_endpoint), 10% the token endpoint.
    let rest = "uch < 750";
    let mcp = "(uch >= 750 AND uch < 900)";
    let routed = "(uch < 750 OR (uch < 900 AND ut < 800))";
    let no_client = "ud >= 995";
    let pad = |e: &str| dec(b, e, 27);
    let profile = "ci * 2 + CASE WHEN env < 8 THEN 1 ELSE 0 END";
    format!(
        "{draws} {x}
        INSERT INTO audit_events (occurred_at, request_id, channel, action, client_id, profile_id, client_type,
            credential_id, product, endpoint, tool, method, path, status, decision, reason, latency_us, bytes_in,
            bytes_out, client_ip, user_agent)
        SELECT t,
          {h1} || '-' || {h2} || '-7' || {h3} || '-' || {h4} || '-' || {h5} || {h6},
          CASE WHEN {rest} THEN 'rest' WHEN {mcp} THEN 'mcp' ELSE 'oauth' END,
          'request',
          CASE WHEN {no_client} THEN NULL ELSE 'cl_bench' || {client} END,
          CASE WHEN {no_client} THEN NULL ELSE 'pr_bench' || {profile_id} END,
          CASE WHEN {no_client} THEN NULL WHEN ci % 3 = 0 THEN 'ai_agent' WHEN ci % 3 = 1 THEN 'application'
               ELSE 'service' END,
          CASE WHEN {no_client} THEN NULL ELSE 'cr_bench' || {profile_id} END,
          CASE WHEN {routed} THEN {slug} END,
          CASE WHEN {routed} THEN CASE ue WHEN 0 THEN '/' || {slug} WHEN 1 THEN '/' || {slug} || '/{{id}}'
               WHEN 2 THEN '/' || {slug} || '/{{id}}/transactions' WHEN 3 THEN '/' || {slug} || '/search'
               ELSE '/' || {slug} || '/{{id}}/documents' END END,
          CASE WHEN {mcp} THEN CASE WHEN ut < 800 THEN 'execute_endpoint' WHEN ut < 900 THEN 'list_endpoints'
               WHEN ut < 950 THEN 'endpoint_details' ELSE 'list_collections' END END,
          CASE WHEN NOT {routed} OR ue = 3 THEN 'POST' WHEN um < 700 OR ue <> 1 THEN 'GET'
               WHEN um < 900 THEN 'PUT' ELSE 'DELETE' END,
          CASE WHEN {routed} THEN CASE ue WHEN 0 THEN '/' || {slug} WHEN 1 THEN '/' || {slug} || '/' || rid
               WHEN 2 THEN '/' || {slug} || '/' || rid || '/transactions' WHEN 3 THEN '/' || {slug} || '/search'
               ELSE '/' || {slug} || '/' || rid || '/documents' END
               WHEN {mcp} THEN '/mcp' ELSE '/oauth/token' END,
          CASE WHEN ud < 800 THEN 200 WHEN ud < 840 THEN 201 WHEN ud < 870 THEN 404 WHEN ud < 890 THEN 500
               WHEN ud < 900 THEN 502 WHEN ud < 930 THEN 429 WHEN ud < 960 THEN 401 WHEN ud < 990 THEN 403
               WHEN ud < 995 THEN 404 ELSE 401 END,
          CASE WHEN ud < 900 THEN 'allowed' ELSE 'refused' END,
          CASE WHEN ud < 900 THEN 'allowed' WHEN ud < 930 THEN 'rate_limited' WHEN ud < 960 THEN 'invalid_token'
               WHEN ud < 980 THEN 'insufficient_scope' WHEN ud < 990 THEN 'not_granted'
               WHEN ud < 995 THEN 'unknown_endpoint' ELSE 'missing_credential' END,
          CASE WHEN ud < 900 THEN 1500 + r3 % 120000 ELSE 40 + r3 % 400 END,
          CASE WHEN NOT {routed} OR ue = 3 OR um >= 700 THEN 100 + (r3 / 1000) % 4000 ELSE 0 END,
          200 + (r3 / 7) % 30000,
          '10.' || (ci % 250) || '.' || (ci / 250) || '.' || (1 + (r3 / 13) % 250),
          CASE ci % 4 WHEN 0 THEN 'portcullis-agent/1.4 (mcp)' WHEN 1 THEN 'python-httpx/0.27.0'
               WHEN 2 THEN 'okhttp/4.12.0' ELSE 'curl/8.5.0' END
        FROM x ORDER BY i",
        h1 = hex(b, "t / 65536", 8),
        h2 = hex(b, "t % 65536", 4),
        h3 = hex(b, "r3 % 4096", 3),
        h4 = hex(b, "32768 + (r3 / 4096) % 16384", 4),
        h5 = hex(b, "(r3 / 67108864) % 16777216", 6),
        h6 = hex(b, "i % 16777216", 6),
        client = pad("ci"),
        profile_id = pad(profile),
    )
}

// ---------------------------------------------------------------------------------------
// Measuring

struct Timings {
    name: String,
    ms: Vec<f64>,
    rows: usize,
}

impl Timings {
    fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ms: Vec::new(), rows: 0 }
    }

    /// Nearest-rank percentile.
    fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

fn client(ci: i64) -> String {
    format!("cl_bench{ci:027}")
}

/// `2026-11-23T10:00`, the form people type.
fn minute(ms: i64) -> String {
    format_iso(ms - ms % MINUTE)[..16].to_owned()
}

/// One timed search; returns its `next` cursor.
async fn search(store: &Store, actor: &Actor, f: &AuditFilter, into: &mut Timings) -> Res<Option<String>> {
    let started = Instant::now();
    let page = store.search_audit(actor, f, DEFAULT_PAGE).await?;
    into.ms.push(started.elapsed().as_secs_f64() * 1000.0);
    into.rows += page.events.len();
    Ok(page.next)
}

fn by_client(ci: i64, since: Option<&str>, window: Option<(i64, i64)>) -> AuditFilter {
    AuditFilter {
        client: Some(client(ci)),
        since: since.map(str::to_owned),
        from: window.map(|w| minute(w.0)),
        to: window.map(|w| minute(w.1)),
        ..Default::default()
    }
}

async fn measure(store: &Store, actor: &Actor, args: &Args, t_end: i64) -> Res<Vec<Timings>> {
    let n = args.samples;
    let spread: Vec<i64> = (0..2 * n as i64).map(|k| (k * CLIENTS / (2 * n as i64)).min(CLIENTS - 1)).collect();
    let heavy: Vec<i64> = (0..10).collect();
    let light: Vec<i64> = (0..n as i64).map(|k| CLIENTS - 1 - k % (CLIENTS / 2)).collect();
    // A 7-day window somewhere in the past year, different for each search.
    let week = |k: i64| {
        let to = t_end - (31 + (k * 37) % 330) * DAY - (k * 7919 % 1440) * MINUTE;
        (to - 7 * DAY, to)
    };

    // Warm-up: connections, prepared statements, the top of the indexes.
    let mut warm = Timings::new("warm-up");
    for ci in [0, 1, 500, 1999] {
        search(store, actor, &by_client(ci, Some("30d"), None), &mut warm).await?;
        search(store, actor, &by_client(ci, None, Some(week(ci))), &mut warm).await?;
    }
    search(store, actor, &AuditFilter { since: Some("30d".into()), ..Default::default() }, &mut warm).await?;

    let mut out = Vec::new();

    let mut t = Timings::new(format!("client + since=30d, first page, {} clients across the skew", spread.len()));
    for &ci in &spread {
        search(store, actor, &by_client(ci, Some("30d"), None), &mut t).await?;
    }
    out.push(t);

    let mut t = Timings::new("client + since=30d, first page, the 10 heaviest clients");
    for k in 0..n {
        search(store, actor, &by_client(heavy[k % heavy.len()], Some("30d"), None), &mut t).await?;
    }
    out.push(t);

    let mut t =
        Timings::new(format!("client + since=30d, first page, the {} lightest clients", n.min(CLIENTS as usize / 2)));
    for &ci in &light {
        search(store, actor, &by_client(ci, Some("30d"), None), &mut t).await?;
    }
    out.push(t);

    let mut t = Timings::new(format!(
        "client + exact from/to (7 days, within the last year), first page, {} clients",
        spread.len()
    ));
    for (k, &ci) in spread.iter().enumerate() {
        search(store, actor, &by_client(ci, None, Some(week(k as i64))), &mut t).await?;
    }
    out.push(t);

    // Deep pages: follow the cursor 100 pages, timing every page, then fetch page 20 and
    // page 100 again from their cursors. With `since=30d` the five heaviest clients
    // (each has 140+ pages in 30 days); with a 7-day from/to the heaviest client (~270
    // pages a week) in ten different weeks.
    for (what, window) in [("since=30d", false), ("exact 7-day from/to", true)] {
        let name = |range: &str| {
            let who = if window { "heaviest client (10 weeks)" } else { "5 heaviest clients" };
            Timings::new(format!("{who} + {what}, {range}"))
        };
        let mut early = name("pages 2–20 while following the cursor");
        let mut late = name("pages 21–100 while following the cursor");
        let mut p20 = name("page 20 (from its cursor)");
        let mut p100 = name("page 100 (from its cursor)");
        let walks: Vec<AuditFilter> = if window {
            (0..10).map(|k| by_client(0, None, Some(week(k * 3 + 1)))).collect()
        } else {
            (0..5).map(|ci| by_client(ci, Some("30d"), None)).collect()
        };
        let (mut at20, mut at100) = (Vec::new(), Vec::new());
        for mut f in walks {
            let mut first = Timings::new("page 1");
            f.cursor = search(store, actor, &f, &mut first).await?;
            for page in 2..=100 {
                match page {
                    20 => at20.push(f.clone()),
                    100 => at100.push(f.clone()),
                    _ => {}
                }
                let into = if page <= 20 { &mut early } else { &mut late };
                f.cursor = search(store, actor, &f, into).await?;
                if f.cursor.is_none() {
                    println!("note: {} has only {page} pages (too few rows loaded)", f.to_query(false));
                    break;
                }
            }
        }
        for k in 0..n {
            if !at20.is_empty() {
                search(store, actor, &at20[k % at20.len()], &mut p20).await?;
            }
            if !at100.is_empty() {
                search(store, actor, &at100[k % at100.len()], &mut p100).await?;
            }
        }
        out.extend([early, late, p20, p100]);
    }

    // Time range only.
    let mut t = Timings::new("since=30d, no other filter, first page");
    for _ in 0..n {
        search(store, actor, &AuditFilter { since: Some("30d".into()), ..Default::default() }, &mut t).await?;
    }
    out.push(t);

    let mut t = Timings::new("exact 1-hour from/to, no other filter, first page (windows across 400 days)");
    for k in 0..2 * n as i64 {
        let to = t_end - (1 + (k * 7919) % (SPAN_DAYS * 24 - 2)) * 60 * MINUTE;
        let f = AuditFilter { from: Some(minute(to - 60 * MINUTE)), to: Some(minute(to)), ..Default::default() };
        search(store, actor, &f, &mut t).await?;
    }
    out.push(t);

    let mut t = Timings::new(format!("since=24h, no other filter, pages 2–{} while following the cursor", n + 1));
    let mut f = AuditFilter { since: Some("24h".into()), ..Default::default() };
    let mut first = Timings::new("page 1");
    f.cursor = search(store, actor, &f, &mut first).await?;
    while t.ms.len() < n && f.cursor.is_some() {
        f.cursor = search(store, actor, &f, &mut t).await?;
    }
    out.push(t);

    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Plans: the keyset condition as `audit_search.rs` first built it (f0f33fb), as it
// builds it since ea26745, and as a row value, on pages 2 and 100. A copy of that
// module's SQL, kept for this comparison only; the measured table above always goes
// through the real module.

const COLUMNS: &str = "e.id, e.occurred_at, e.request_id, e.channel, e.action, u.email AS actor_email, e.target_type,
    e.target_id, e.summary, e.client_id, c.name AS client_name, e.profile_id, e.client_type, e.credential_id,
    e.product, e.endpoint, e.tool, e.method, e.path, e.status, e.decision, e.reason, e.latency_us, e.bytes_in,
    e.bytes_out, e.client_ip, e.user_agent";
const FROM: &str =
    "FROM audit_events e LEFT JOIN users u ON u.id = e.actor_user_id LEFT JOIN clients c ON c.id = e.client_id";

#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

fn bound<'q>(text: &'q str, binds: &[Bind]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(text);
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

/// The keyset condition, three ways.
#[derive(Clone, Copy, PartialEq)]
enum Keyset {
    /// `(t < $a OR (t = $a AND id < $b))`, as first written (f0f33fb).
    Or,
    /// `t <= $a AND (t < $a OR (t = $a AND id < $b))`, as of ea26745.
    BoundedOr,
    /// `(t, id) < ($a, $b)`.
    RowValue,
}

impl Keyset {
    fn label(self) -> &'static str {
        match self {
            Keyset::Or => "OR alone `(t < $a OR (t = $a AND id < $b))` (f0f33fb)",
            Keyset::BoundedOr => "`t <= $a AND (t < $a OR (t = $a AND id < $b))` (ea26745)",
            Keyset::RowValue => "row value `(t, id) < ($a, $b)`",
        }
    }
}

/// The search's SQL for a first-page filter plus a cursor, placeholders in the order
/// `audit_search.rs` binds them: [client], from, then the cursor's, then the limit.
fn keyset_sql(client: bool, keyset: Keyset) -> String {
    let mut n = 0;
    let mut p = || {
        n += 1;
        format!("${n}")
    };
    let mut w = Vec::new();
    if client {
        w.push(format!("e.client_id = {}", p()));
    }
    w.push(format!("e.occurred_at >= {}", p()));
    match keyset {
        Keyset::RowValue => {
            let (a, b) = (p(), p());
            w.push(format!("(e.occurred_at, e.id) < ({a}, {b})"));
        }
        Keyset::Or => {
            let (a, b, a2) = (p(), p(), p());
            w.push(format!("(e.occurred_at < {a} OR (e.occurred_at = {a2} AND e.id < {b}))"));
        }
        Keyset::BoundedOr => {
            let (a, b, a2, a3) = (p(), p(), p(), p());
            w.push(format!("e.occurred_at <= {a3}"));
            w.push(format!("(e.occurred_at < {a} OR (e.occurred_at = {a2} AND e.id < {b}))"));
        }
    }
    let l = p();
    format!("SELECT {COLUMNS} {FROM} WHERE {} ORDER BY e.occurred_at DESC, e.id DESC LIMIT {l}", w.join(" AND "))
}

async fn plans(url: &str, backend: Backend, t_end: i64) -> Res<()> {
    let pool: AnyPool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    println!();
    println!("### Keyset condition, three ways ({}; t = e.occurred_at)", backend_name(backend));
    if backend == Backend::Postgres {
        println!();
        println!("Times: the statement prepared and run 21 times on one connection, as the store runs it");
        println!("(PostgreSQL switches to a generic plan after five runs). Plans: that generic plan");
        println!("(`plan_cache_mode = force_generic_plan`), executed.");
    }
    let heaviest = client(0);
    let cases = [
        ("client + since=30d, heaviest client", Some(&heaviest), 30 * DAY, 2),
        ("client + since=30d, heaviest client", Some(&heaviest), 30 * DAY, 100),
        ("since=24h, no other filter", None, DAY, 2),
        ("since=24h, no other filter", None, DAY, 100),
    ];
    for (label, who, span, page) in cases {
        let from = t_end - span;
        // The cursor that asks for `page`: the last row of the page before it.
        let (w, mut binds) = match who {
            Some(c) => ("e.client_id = $1 AND e.occurred_at >= $2", vec![Bind::Text(c.clone()), Bind::Int(from)]),
            None => ("e.occurred_at >= $1", vec![Bind::Int(from)]),
        };
        let at = format!(
            "SELECT e.occurred_at, e.id FROM audit_events e WHERE {w} ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1 OFFSET {}",
            (page - 1) * DEFAULT_PAGE - 1
        );
        println!();
        let Some(row) = bound(&at, &binds).fetch_optional(&pool).await? else {
            println!("{label}, page {page}: no such page (too few rows loaded)");
            continue;
        };
        let (t, id): (i64, i64) = (row.try_get("occurred_at")?, row.try_get("id")?);
        println!("{label}, page {page}:");
        let mut reference: Option<Vec<i64>> = None;
        let base = binds.len();
        for keyset in [Keyset::Or, Keyset::BoundedOr, Keyset::RowValue] {
            let sql = keyset_sql(who.is_some(), keyset);
            binds.truncate(base);
            binds.extend([Bind::Int(t), Bind::Int(id)]);
            match keyset {
                Keyset::Or => binds.push(Bind::Int(t)),
                Keyset::BoundedOr => binds.extend([Bind::Int(t), Bind::Int(t)]),
                Keyset::RowValue => {}
            }
            binds.push(Bind::Int(DEFAULT_PAGE + 1));
            let mut times = Timings::new("");
            let mut ids = Vec::new();
            for _ in 0..21 {
                let started = Instant::now();
                let rows = bound(&sql, &binds).fetch_all(&pool).await?;
                times.ms.push(started.elapsed().as_secs_f64() * 1000.0);
                ids = rows.iter().map(|r| r.try_get::<i64, _>("id")).collect::<Result<Vec<_>, _>>()?;
            }
            println!();
            let same = match &reference {
                None => String::new(),
                Some(r) if *r == ids => ", the same rows".to_owned(),
                Some(_) => ", DIFFERENT rows".to_owned(),
            };
            println!(
                "- {}: median {:.2} ms, max {:.2} ms over 21 runs, {} rows{same}",
                keyset.label(),
                times.pct(50.0),
                times.pct(100.0),
                ids.len()
            );
            reference.get_or_insert(ids);
            println!("  ```");
            let lines: Vec<String> = match backend {
                Backend::Sqlite => {
                    let rows = bound(&format!("EXPLAIN QUERY PLAN {sql}"), &binds).fetch_all(&pool).await?;
                    rows.iter().map(|r| r.try_get("detail")).collect::<Result<_, _>>()?
                }
                Backend::Postgres => {
                    let types: Vec<&str> =
                        binds.iter().map(|b| if matches!(b, Bind::Text(_)) { "text" } else { "bigint" }).collect();
                    let values: Vec<String> = binds
                        .iter()
                        .map(|b| match b {
                            Bind::Text(s) => format!("'{s}'"),
                            Bind::Int(i) => i.to_string(),
                        })
                        .collect();
                    pool.execute(format!("PREPARE audit_bench_q({}) AS {sql}", types.join(", ")).as_str()).await?;
                    pool.execute("SET plan_cache_mode = force_generic_plan").await?;
                    let rows = sqlx::query(&format!(
                        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE audit_bench_q({})",
                        values.join(", ")
                    ))
                    .fetch_all(&pool)
                    .await?;
                    pool.execute("RESET plan_cache_mode; DEALLOCATE audit_bench_q").await?;
                    rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?
                }
            };
            for line in lines {
                println!("  {line}");
            }
            println!("  ```");
        }
    }
    pool.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Console aggregates (`--aggregates`): the security dashboard, a client's activity page
// and the access review, which read the last 30 days of rows rather than one page.

/// A product granted to some profiles that no request ever names.
const UNUSED_PRODUCT: &str = "bench-unused";

/// `n` integers `i` from 0 in each dialect: a prefix for the statement and its `FROM`.
fn series(b: Backend, n: i64) -> (String, String) {
    match b {
        Backend::Sqlite => (
            format!("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {n}) "),
            "s".to_owned(),
        ),
        Backend::Postgres => (String::new(), format!("generate_series(0, {}) AS s(i)", n - 1)),
    }
}

/// What the console reads beside the audit rows, for every bench client (the clients
/// table already holds all of them for the search's join): a sandbox and a production
/// profile each, with the ids the rows carry (`pr_bench` 2i and 2i + 1); one credential
/// per profile, with the rows' `cr_bench` ids; the products by the rows' slugs; approved
/// grants — accounts on the sandbox profile, accounts, payments and cards on the
/// production one, and on every tenth client's production profile (the heaviest among
/// them) a grant of a product it never called. Idempotent (`ON CONFLICT DO NOTHING`;
/// grants only when there are none yet). `stats`: `ANALYZE` these tables after.
async fn console_fixtures(url: &str, backend: Backend, owner: &str, t_end: i64, stats: bool) -> Res<String> {
    let pool: AnyPool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    let t0 = t_end - SPAN_DAYS * DAY;
    let started = Instant::now();
    let products: Vec<String> = PRODUCTS
        .iter()
        .chain([&UNUSED_PRODUCT])
        .map(|s| {
            format!(
                "('pd_bench_{s}', '{s}', 'Bench {s}', 'http://127.0.0.1:9/{s}', 'http://127.0.0.1:9/{s}', {t0}, {t0})"
            )
        })
        .collect();
    let (seq, from) = series(backend, 2 * CLIENTS);
    let (gseq, gfrom) = series(backend, 8 * CLIENTS);
    let statements = [
        format!(
            "INSERT INTO products (id, slug, name, sandbox_url, production_url, created_at, updated_at)
             VALUES {} ON CONFLICT DO NOTHING",
            products.join(", ")
        ),
        format!(
            "{seq}INSERT INTO profiles (id, client_id, environment, rate_per_minute, burst, token_ttl_seconds, created_at)
             SELECT 'pr_bench' || {p}, 'cl_bench' || {c}, CASE WHEN i % 2 = 1 THEN 'production' ELSE 'sandbox' END,
                    600, 60, 900, {t0}
             FROM {from} WHERE true ON CONFLICT DO NOTHING",
            p = dec(backend, "i", 27),
            c = dec(backend, "i / 2", 27),
        ),
        format!(
            "{seq}INSERT INTO credentials (id, profile_id, kind, prefix, secret_hash, created_at, expires_at, last_used_at)
             SELECT 'cr_bench' || {p}, 'pr_bench' || {p}, CASE WHEN i % 2 = 1 THEN 'client_secret' ELSE 'api_key' END,
                    'pcb_' || {h}, 'bench-credential-' || i, {created}, {expires}, {t_end}
             FROM {from} WHERE true ON CONFLICT DO NOTHING",
            p = dec(backend, "i", 27),
            h = hex(backend, "i", 6),
            created = t_end - 45 * DAY,
            expires = t_end + 320 * DAY,
        ),
        // Row i: profile i / 4 (client i / 8), grant i % 4.
        format!(
            "{gseq}INSERT INTO grants (id, profile_id, product_id, scopes, status, justification, requested_by,
                 requested_at, decided_by, decided_at, expires_at)
             SELECT 'gr_bench' || {g}, 'pr_bench' || {p},
                    CASE i % 4 WHEN 0 THEN 'pd_bench_{p0}' WHEN 1 THEN 'pd_bench_{p1}' WHEN 2 THEN 'pd_bench_{p2}'
                         ELSE 'pd_bench_{UNUSED_PRODUCT}' END,
                    'read', 'approved', 'bench', '{owner}', {t0}, '{owner}', {t0}, {expires}
             FROM {gfrom}
             WHERE ((i / 4) % 2 = 0 AND i % 4 = 0) OR ((i / 4) % 2 = 1 AND (i % 4 < 3 OR (i / 8) % 10 = 0))
             ON CONFLICT DO NOTHING",
            g = dec(backend, "i", 27),
            p = dec(backend, "i / 4", 27),
            p0 = PRODUCTS[0],
            p1 = PRODUCTS[1],
            p2 = PRODUCTS[2],
            expires = t_end + 90 * DAY,
        ),
    ];
    let count = |table: &str, pattern: &str| format!("SELECT COUNT(*) AS n FROM {table} WHERE id LIKE '{pattern}%'");
    let had: i64 = sqlx::query(&count("grants", "gr_bench")).fetch_one(&pool).await?.try_get("n")?;
    let mut tx = pool.begin().await?;
    for s in &statements[..3] {
        tx.execute(s.as_str()).await?;
    }
    // New grants get `last_used_at` as migration 0008 fills it from the trail (the
    // migration itself ran before they existed); its statement, timed.
    let backfill = if had == 0 {
        tx.execute(statements[3].as_str()).await?;
        let started = Instant::now();
        tx.execute(
            "UPDATE grants SET last_used_at = (
                 SELECT e.occurred_at FROM audit_events e
                 WHERE e.profile_id = grants.profile_id
                   AND e.product = (SELECT p.slug FROM products p WHERE p.id = grants.product_id)
                   AND e.action = 'request' AND e.decision = 'allowed'
                 ORDER BY e.occurred_at DESC LIMIT 1
             ) WHERE id LIKE 'gr_bench%'",
        )
        .await?;
        format!(
            "grants' `last_used_at` filled by migration 0008's statement in {:.1} s",
            started.elapsed().as_secs_f64()
        )
    } else {
        "grants reused".to_owned()
    };
    tx.commit().await?;
    if stats {
        pool.execute("ANALYZE products; ANALYZE profiles; ANALYZE credentials; ANALYZE grants").await?;
    }
    let mut counts = Vec::new();
    for (table, pattern) in
        [("clients", "cl_bench"), ("profiles", "pr_bench"), ("credentials", "cr_bench"), ("grants", "gr_bench")]
    {
        counts.push(sqlx::query(&count(table, pattern)).fetch_one(&pool).await?.try_get::<i64, _>("n")?);
    }
    let unused: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM grants WHERE id LIKE 'gr_bench%' AND last_used_at IS NULL")
            .fetch_one(&pool)
            .await?
            .try_get("n")?;
    pool.close().await;
    Ok(format!(
        "{} clients, {} profiles, {} credentials, {} approved grants ({} never used), {} products; {backfill}; \
         {:.1} s in all",
        thousands(counts[0]),
        thousands(counts[1]),
        thousands(counts[2]),
        thousands(counts[3]),
        thousands(unused),
        PRODUCTS.len() + 1,
        started.elapsed().as_secs_f64()
    ))
}

/// One timed call.
async fn timed<T>(
    into: &mut Timings,
    call: impl std::future::Future<Output = portcullis_domain::error::Result<T>>,
) -> Res<T> {
    let started = Instant::now();
    let out = call.await?;
    into.ms.push(started.elapsed().as_secs_f64() * 1000.0);
    Ok(out)
}

async fn aggregates(store: &Store, actor: &Actor, args: &Args, backend: Backend, t_end: i64) -> Res<()> {
    let (heavy, light) = (client(0), client(CLIENTS - 1));
    let dashboard_samples = (args.samples / 10).max(10);
    let activity_samples = (args.samples / 5).max(20);

    // Warm-up: one call of each.
    let warm = Instant::now();
    store.security_dashboard(actor).await?;
    store.client_activity(actor, &heavy).await?;
    store.client_activity(actor, &light).await?;
    let warm = warm.elapsed().as_secs_f64();

    // (timings, requests the call counted)
    let mut out: Vec<(Timings, i64)> = Vec::new();
    let mut t =
        Timings::new("`security_dashboard` (refusals per day, traffic by client type, 10 most refused clients)");
    let mut counted = 0;
    for _ in 0..dashboard_samples {
        let d = timed(&mut t, store.security_dashboard(actor)).await?;
        counted = d.by_type.iter().map(|t| t.allowed + t.refused).sum();
    }
    out.push((t, counted));
    for (label, ci) in [("the heaviest client", 0), ("the lightest client", CLIENTS - 1)] {
        let id = client(ci);
        let mut t = Timings::new(format!("`client_activity`, {label} (bench client {ci})"));
        let mut counted = 0;
        for _ in 0..activity_samples {
            let a = timed(&mut t, store.client_activity(actor, &id)).await?;
            counted = a.days.iter().map(|d| d.allowed + d.refused).sum();
        }
        out.push((t, counted));
    }

    // The access review walks every client; at most 10 calls, fewer if they take long.
    let mut t = Timings::new("`access_review` (every client in the table)");
    let started = Instant::now();
    let mut review = Vec::new();
    while t.ms.len() < 10 && (t.ms.len() < 3 || started.elapsed().as_secs() < 60) {
        review = timed(&mut t, store.access_review(actor)).await?;
    }
    let grants: usize = review.iter().map(|c| c.grants.len()).sum();
    let never =
        review.iter().flat_map(|c| c.grants.iter()).filter(|g| g.flags.contains(&ReviewFlag::GrantNeverUsed)).count();
    let credentials: usize = review.iter().map(|c| c.credentials.len()).sum();
    out.push((t, 0));

    println!();
    println!(
        "### Console aggregates ({}; the last {ACTIVITY_DAYS} days of the {SPAN_DAYS}-day trail)",
        backend_name(backend)
    );
    println!();
    println!("One call at a time (warm-up: one of each first, {warm:.1} s); times are the `Store` calls the console");
    println!("pages make — each page renders when its call returns — in ms.");
    println!();
    println!("| call | requests counted | samples | p50 | p95 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (r, counted) in &out {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.name,
            if *counted > 0 { thousands(*counted) } else { "—".to_owned() },
            r.ms.len(),
            r.pct(50.0),
            r.pct(95.0),
            r.pct(99.0),
            r.pct(100.0)
        );
    }
    println!();
    println!(
        "The access review returned {} clients, {} credentials and {} approved grants ({} flagged never used).",
        thousands(review.len() as i64),
        thousands(credentials as i64),
        thousands(grants as i64),
        thousands(never as i64)
    );
    if args.plans {
        aggregate_plans(&args.url, backend, t_end).await?;
    }
    Ok(())
}

/// The first millisecond of the 30-day window, as `activity.rs` computes it.
fn window_start(now: i64) -> i64 {
    (now.div_euclid(DAY) - (ACTIVITY_DAYS - 1)) * DAY
}

/// Each query of the aggregates, timed alone and explained: copies of the SQL in
/// `activity.rs` for the heaviest client, and migration 0008's per-grant backfill.
async fn aggregate_plans(url: &str, backend: Backend, t_end: i64) -> Res<()> {
    let pool: AnyPool = AnyPoolOptions::new().max_connections(1).connect(url).await?;
    let start = window_start(t_end);
    let heavy = client(0);
    let heavy_profile = format!("pr_bench{:027}", 1);
    let text = |s: &str| Bind::Text(s.to_owned());
    let cases: Vec<(&str, &str, Vec<Bind>)> = vec![
        (
            "dashboard: refusals per day",
            "SELECT (occurred_at - $1) / $2 AS d, status, COUNT(*) AS n FROM audit_events
             WHERE occurred_at >= $1 AND action = 'request' AND status IN (401, 403, 429)
             GROUP BY (occurred_at - $1) / $2, status",
            vec![Bind::Int(start), Bind::Int(DAY)],
        ),
        (
            "dashboard: traffic by client type",
            "SELECT client_type, decision, COUNT(*) AS n FROM audit_events
             WHERE occurred_at >= $1 AND action = 'request' GROUP BY client_type, decision",
            vec![Bind::Int(start)],
        ),
        (
            "dashboard: most refused clients",
            "SELECT e.client_id, MAX(c.name) AS name, MAX(e.client_type) AS client_type,
                    SUM(CASE WHEN e.decision = 'refused' THEN 1 ELSE 0 END) AS refused, COUNT(*) AS total
             FROM audit_events e LEFT JOIN clients c ON c.id = e.client_id
             WHERE e.occurred_at >= $1 AND e.action = 'request' AND e.client_id IS NOT NULL
             GROUP BY e.client_id
             HAVING SUM(CASE WHEN e.decision = 'refused' THEN 1 ELSE 0 END) > 0
             ORDER BY refused DESC, e.client_id LIMIT 10",
            vec![Bind::Int(start)],
        ),
        (
            "activity (heaviest client): requests per day",
            "SELECT (occurred_at - $2) / $3 AS d, COUNT(*) AS total,
                    SUM(CASE WHEN decision = 'allowed' THEN 1 ELSE 0 END) AS allowed
             FROM audit_events WHERE client_id = $1 AND action = 'request' AND occurred_at >= $2
             GROUP BY (occurred_at - $2) / $3",
            vec![text(&heavy), Bind::Int(start), Bind::Int(DAY)],
        ),
        (
            "activity (heaviest client): top endpoints",
            "SELECT method, product, endpoint, COUNT(*) AS n FROM audit_events
             WHERE client_id = $1 AND action = 'request' AND occurred_at >= $2 AND endpoint IS NOT NULL
             GROUP BY method, product, endpoint ORDER BY n DESC, endpoint LIMIT 10",
            vec![text(&heavy), Bind::Int(start)],
        ),
        (
            "activity (heaviest client): refusals by reason",
            "SELECT reason, COUNT(*) AS n FROM audit_events
             WHERE client_id = $1 AND action = 'request' AND occurred_at >= $2 AND decision = 'refused'
             GROUP BY reason ORDER BY n DESC, reason",
            vec![text(&heavy), Bind::Int(start)],
        ),
        (
            "activity (heaviest client): credentials used",
            "SELECT e.credential_id, c.kind, c.prefix, COUNT(*) AS n, MAX(e.occurred_at) AS last_used
             FROM audit_events e LEFT JOIN credentials c ON c.id = e.credential_id
             WHERE e.client_id = $1 AND e.action = 'request' AND e.occurred_at >= $2 AND e.credential_id IS NOT NULL
             GROUP BY e.credential_id, c.kind, c.prefix ORDER BY last_used DESC",
            vec![text(&heavy), Bind::Int(start)],
        ),
        (
            "activity (heaviest client): last seen",
            "SELECT occurred_at FROM audit_events WHERE client_id = $1 AND action = 'request'
             ORDER BY occurred_at DESC LIMIT 1",
            vec![text(&heavy)],
        ),
        (
            "migration 0008's backfill, one grant: heaviest client's production profile, a product it calls",
            GRANT_LAST_USED,
            vec![text(&heavy_profile), text(&format!("pd_bench_{}", PRODUCTS[0]))],
        ),
        (
            "migration 0008's backfill, one grant: heaviest client's production profile, a product never called",
            GRANT_LAST_USED,
            vec![text(&heavy_profile), text(&format!("pd_bench_{UNUSED_PRODUCT}"))],
        ),
    ];
    println!();
    println!("#### Each query alone ({}; heaviest client for the per-client ones)", backend_name(backend));
    println!();
    println!("Times: the statement run 7 times on one connection, as the store runs it.");
    if backend == Backend::Postgres {
        println!("Plans: `EXPLAIN (ANALYZE, BUFFERS) EXECUTE` of the statement prepared and executed six times");
        println!("first, so the plan shown is the one the plan cache settled on.");
    }
    for (label, sql, binds) in &cases {
        plan_case(&pool, backend, label, sql, binds).await?;
    }

    // What would change them, measured the same way.
    println!();
    println!("#### Variants ({})", backend_name(backend));
    let by_time = |sql: &str| {
        sql.replacen("FROM audit_events e ", "FROM audit_events e INDEXED BY audit_by_time ", 1).replacen(
            "FROM audit_events\n",
            "FROM audit_events INDEXED BY audit_by_time\n",
            1,
        )
    };
    let mut variants: Vec<(String, String, Vec<Bind>)> = Vec::new();
    if backend == Backend::Sqlite {
        for (label, sql, binds) in cases.iter().take(3) {
            let sql = by_time(sql);
            variants.push((format!("{label}, `INDEXED BY audit_by_time`"), sql, binds.clone()));
        }
    }
    // An upper bound too (the end of today): a closed range on `occurred_at`.
    let bounded = |sql: &str, binds: &[Bind]| {
        let n = binds.len() + 1;
        let sql = sql
            .replacen("e.occurred_at >= $1 AND", &format!("e.occurred_at >= $1 AND e.occurred_at < ${n} AND"), 1)
            .replacen("WHERE occurred_at >= $1 AND", &format!("WHERE occurred_at >= $1 AND occurred_at < ${n} AND"), 1);
        let mut binds = binds.to_vec();
        binds.push(Bind::Int(start + ACTIVITY_DAYS * DAY));
        (sql, binds)
    };
    for (label, sql, binds) in cases.iter().take(3) {
        let (sql, binds) = bounded(sql, binds);
        variants.push((format!("{label}, with `occurred_at < end of today` as well"), sql, binds));
    }
    let (first_bounded, first_bounded_binds) = bounded(MOST_REFUSED_FIRST, &[Bind::Int(start)]);
    let most_refused = [
        ("", MOST_REFUSED_FIRST.to_owned(), vec![Bind::Int(start)]),
        (", with `occurred_at < end of today` as well", first_bounded, first_bounded_binds),
    ];
    for (what, sql, binds) in most_refused {
        variants.push((
            format!("dashboard: most refused clients, aggregated before joining `clients`{what}"),
            sql,
            binds,
        ));
    }
    if backend == Backend::Sqlite {
        variants.push((
            "dashboard: most refused clients, aggregated before joining `clients`, `INDEXED BY audit_by_time`"
                .to_owned(),
            by_time(MOST_REFUSED_FIRST),
            vec![Bind::Int(start)],
        ));
    }
    // The access review's data in one statement per table instead of six per client.
    for (what, sql) in [
        ("clients and owners", "SELECT c.id, c.owner_id, c.name, c.kind, c.description, c.created_at, u.email AS owner_email, u.disabled FROM clients c JOIN users u ON u.id = c.owner_id ORDER BY c.name, c.id"),
        ("profiles", "SELECT id, client_id, environment, rate_per_minute, burst, token_ttl_seconds, created_at FROM profiles ORDER BY client_id, environment DESC"),
        ("credentials", "SELECT id, profile_id, kind, prefix, created_at, expires_at, rotated_at, revoked_at, last_used_at FROM credentials ORDER BY profile_id, created_at DESC, id DESC"),
        ("grants", GRANTS_ALL),
    ] {
        variants.push((format!("access review in four statements: all {what}"), sql.to_owned(), Vec::new()));
    }
    for (label, sql, binds) in &variants {
        plan_case(&pool, backend, label, sql, binds).await?;
    }
    pool.close().await;
    Ok(())
}

/// The most refused clients, grouped first and then named: one `clients` lookup per
/// result row instead of one per audit row.
const MOST_REFUSED_FIRST: &str = "SELECT r.client_id, c.name, r.client_type, r.refused, r.total FROM (
         SELECT e.client_id, MAX(e.client_type) AS client_type,
                SUM(CASE WHEN e.decision = 'refused' THEN 1 ELSE 0 END) AS refused, COUNT(*) AS total
         FROM audit_events e WHERE e.occurred_at >= $1 AND e.action = 'request' AND e.client_id IS NOT NULL
         GROUP BY e.client_id
         HAVING SUM(CASE WHEN e.decision = 'refused' THEN 1 ELSE 0 END) > 0
         ORDER BY refused DESC, e.client_id LIMIT 10
     ) r LEFT JOIN clients c ON c.id = r.client_id ORDER BY r.refused DESC, r.client_id";

/// `grants.rs`'s grant query for every grant at once.
const GRANTS_ALL: &str = "SELECT g.id, g.profile_id, p.environment, c.id AS client_id, c.name AS client_name,
        g.product_id, pr.name AS product_name, g.scopes, g.status, g.justification, ru.email AS requested_by,
        g.requested_at, g.decided_by, du.email AS decided_by_email, g.decided_at, g.decision_reason, g.expires_at,
        g.last_used_at
    FROM grants g
    JOIN profiles p ON p.id = g.profile_id
    JOIN clients c ON c.id = p.client_id
    JOIN products pr ON pr.id = g.product_id
    JOIN users ru ON ru.id = g.requested_by
    LEFT JOIN users du ON du.id = g.decided_by
    ORDER BY g.profile_id, g.requested_at DESC, g.id DESC";

/// One statement run 7 times on one connection, as the store runs it, then explained.
async fn plan_case(pool: &AnyPool, backend: Backend, label: &str, sql: &str, binds: &[Bind]) -> Res<()> {
    let mut times = Timings::new("");
    let mut rows = 0;
    for _ in 0..7 {
        let started = Instant::now();
        rows = bound(sql, binds).fetch_all(pool).await?.len();
        times.ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!();
    println!("- {label}: median {:.1} ms, max {:.1} ms over 7 runs, {rows} rows", times.pct(50.0), times.pct(100.0));
    println!("  ```");
    for line in explain(pool, backend, sql, binds).await? {
        println!("  {line}");
    }
    println!("  ```");
    Ok(())
}

/// Migration 0008's subquery for one grant (up to 887f7da the access review ran the same
/// search, `ORDER BY occurred_at DESC LIMIT 1`, for every approved grant).
/// Migration 0008's per-grant lookup (newest allowed row of the profile and product).
const GRANT_LAST_USED: &str = "SELECT e.occurred_at AS t FROM audit_events e
     WHERE e.profile_id = $1 AND e.product = (SELECT p.slug FROM products p WHERE p.id = $2)
       AND e.action = 'request' AND e.decision = 'allowed'
     ORDER BY e.occurred_at DESC LIMIT 1";

/// The plan as the store's statement gets it: `EXPLAIN QUERY PLAN` on SQLite; on
/// PostgreSQL the prepared statement executed six times, then explained with ANALYZE.
async fn explain(pool: &AnyPool, backend: Backend, sql: &str, binds: &[Bind]) -> Res<Vec<String>> {
    Ok(match backend {
        Backend::Sqlite => {
            let rows = bound(&format!("EXPLAIN QUERY PLAN {sql}"), binds).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get("detail")).collect::<Result<_, _>>()?
        }
        Backend::Postgres => {
            let types: Vec<&str> =
                binds.iter().map(|b| if matches!(b, Bind::Text(_)) { "text" } else { "bigint" }).collect();
            let values: Vec<String> = binds
                .iter()
                .map(|b| match b {
                    Bind::Text(s) => format!("'{s}'"),
                    Bind::Int(i) => i.to_string(),
                })
                .collect();
            // No parentheses at all for a statement without parameters.
            let (types, values) = match binds.is_empty() {
                true => (String::new(), String::new()),
                false => (format!("({})", types.join(", ")), format!("({})", values.join(", "))),
            };
            pool.execute(format!("PREPARE audit_bench_agg{types} AS {sql}").as_str()).await?;
            for _ in 0..6 {
                pool.execute(format!("EXECUTE audit_bench_agg{values}").as_str()).await?;
            }
            let rows = sqlx::query(&format!("EXPLAIN (ANALYZE, BUFFERS) EXECUTE audit_bench_agg{values}"))
                .fetch_all(pool)
                .await?;
            pool.execute("DEALLOCATE audit_bench_agg").await?;
            rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?
        }
    })
}
