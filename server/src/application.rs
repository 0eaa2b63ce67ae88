//! Builds the whole server from its configuration: store, sessions, router, listener.
//! `build` binds the listener itself, so tests ask for port 0 and read the real port.

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderValue, Request};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, handle_server_fns_with_context, AxumRouteListing, LeptosRoutes};
use portcullis_app::ssr::{LoginThrottle, PortalState};
use portcullis_app::{shell, App};
use portcullis_domain::audit_writer::{
    replay_spill, AuditConfig, AuditMonitor, AuditSink, AuditWriter, Durability, WhenFull,
};
use portcullis_domain::clock::Clock;
use portcullis_domain::enforcement::TokenSettings;
use portcullis_domain::secrets::ServerSecret;
use portcullis_domain::seed::{seed_demo, DemoSeed};
use portcullis_domain::store::Store;
use portcullis_domain::DomainError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::config::{ServeArgs, StoreArgs};
use crate::sessions::SessionBackend;
use crate::{csrf, health, sample_upstream};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    /// Shown to the operator starting the server, so with the database's own words
    /// (which `DomainError` keeps from people using the portal).
    #[error("store: {}", operator_detail(.0))]
    Store(#[from] DomainError),
    #[error("session store: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn operator_detail(e: &DomainError) -> String {
    match e {
        DomainError::Storage(cause) => cause.to_string(),
        DomainError::Migration(cause) => format!("migration: {cause}"),
        other => other.to_string(),
    }
}

/// The largest body the portal and the management API read (an OpenAPI document to import
/// is the largest thing people send).
const PORTAL_MAX_BODY: usize = 8 * 1024 * 1024;

/// The stem of the wasm, its JS glue and the stylesheet (the workspace's `output-name`).
const OUTPUT_NAME: &str = "portcullis";

#[derive(Clone, FromRef)]
struct ServerState {
    leptos_options: LeptosOptions,
    portal: PortalState,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Store,
    /// Portal sessions' own pool, closed with the store's when the server stops.
    sessions: SessionBackend,
    demo: Option<DemoSeed>,
    audit_writer: AuditWriter,
    /// The writer's progress, without keeping it alive (see `Application::audit`).
    audit: AuditMonitor,
    sources: crate::sources::Sources,
    bounds: crate::listener::Bounds,
    origins: crate::listener::Origins,
    shutdown_timeout: std::time::Duration,
    /// The listener's https configuration, with `--tls-cert`.
    tls: Option<Arc<crate::tls::ListenerTls>>,
    tls_reloader: Option<crate::tls::Reloader>,
    /// The metrics listener's address and task, with `--metrics-addr`.
    metrics: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
}

/// The server secret, with the one it replaces during a rotation.
pub fn resolve_secret(store: &StoreArgs, demo: bool) -> Result<ServerSecret, StartError> {
    let secret = resolve_current_secret(store, demo)?;
    let Some(file) = &store.previous_secret_file else { return Ok(secret) };
    let text = crate::config::read_value_file(file)?;
    let previous = ServerSecret::parse(&text).map_err(|e| StartError::Config(format!("{}: {e}", file.display())))?;
    secret.with_previous(previous).map_err(|e| StartError::Config(format!("{}: {e}", file.display())))
}

/// The server secret: given, or (demo mode only) generated once and kept in the data dir.
fn resolve_current_secret(store: &StoreArgs, demo: bool) -> Result<ServerSecret, StartError> {
    if let Some(given) = &store.secret {
        return ServerSecret::parse(given).map_err(|e| StartError::Config(format!("PORTCULLIS_SECRET: {e}")));
    }
    if let Some(file) = &store.secret_file {
        let text = crate::config::read_value_file(file)?;
        return ServerSecret::parse(&text).map_err(|e| StartError::Config(format!("{}: {e}", file.display())));
    }
    let file = store.demo_secret_file();
    if file.exists() {
        let text = std::fs::read_to_string(&file)?;
        return ServerSecret::parse(&text).map_err(|e| StartError::Config(format!("{}: {e}", file.display())));
    }
    if !demo {
        return Err(StartError::Config(
            "no server secret: set PORTCULLIS_SECRET (or --secret), or PORTCULLIS_SECRET_FILE (or \
             --secret-file) to a file holding it, to 32+ random characters; \
             `portcullis generate-secret` prints one. Only --demo generates its own."
                .into(),
        ));
    }
    std::fs::create_dir_all(&store.data_dir)?;
    let text = ServerSecret::generate_text();
    write_private(&file, &text)?;
    ServerSecret::parse(&text).map_err(|e| StartError::Config(e.to_string()))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())
}

/// Opens the store for the command line, the way `serve` would.
pub async fn open_store(args: &StoreArgs) -> Result<Store, StartError> {
    let secret = resolve_secret(args, false)?;
    let url = args.database_url()?;
    ensure_sqlite_dir(&url)?;
    Ok(Store::connect(&url, &secret, Clock::system(), args.policy()).await?)
}

fn ensure_sqlite_dir(url: &str) -> std::io::Result<()> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
    }
    Ok(())
}

impl Application {
    pub async fn build(args: ServeArgs, clock: Clock) -> Result<Self, StartError> {
        let secret = resolve_secret(&args.store, args.demo)?;
        // Before anything is opened or written: a bad certificate stops the start here.
        let tls = listener_tls(&args)?;
        let upstream_tls = upstream_tls(&args)?;
        let upstream_tls_names = upstream_tls.names();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = args.store.database_url()?;
        ensure_sqlite_dir(&url)?;
        let store = Store::connect(&url, &secret, clock, args.store.policy()).await?;
        let sessions = SessionBackend::connect(&url).await?;
        sessions.spawn_cleanup();

        let listener = TcpListener::bind(args.addr).await?;
        let local = listener.local_addr()?;
        let demo = if args.demo {
            let sample_base = sample_upstream::spawn_loopback().await?;
            seed_demo(&store, &sample_base).await?
        } else {
            None
        };

        // Rows a previous run could not write before it stopped come first.
        let spill_path = args.store.audit_spill_file();
        match replay_spill(&store, spill_path.clone()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "audit rows from the last run's spill file written"),
            Err(e) => tracing::error!(error = %e, file = %spill_path.display(), "audit spill file not replayed; kept"),
        }
        // Counted only when someone scrapes them: no per-request work otherwise.
        let metrics = args.metrics_addr.map(|addr| (addr, crate::metrics::Metrics::new()));
        let audit_config = AuditConfig {
            capacity: args.audit_queue,
            when_full: match args.audit_when_full {
                crate::config::AuditWhenFull::BackPressure => WhenFull::BackPressure,
                crate::config::AuditWhenFull::FailClosed => WhenFull::FailClosed,
            },
            durability: match args.audit_durability {
                crate::config::AuditDurability::Queued => Durability::Queued,
                crate::config::AuditDurability::Committed => Durability::Committed,
            },
            spill_path,
            observer: metrics.as_ref().map(|(_, m)| m.observer()),
        };
        let shared_limits = match args.redis_url()? {
            Some(url) => {
                // `rediss://` asks rustls for the process's provider: the one reqwest uses.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let limits = crate::shared_limits::SharedLimits::new(&url)
                    .map_err(|e| StartError::Config(format!("redis URL: {e}")))?;
                if let Err(e) = limits.warm().await {
                    tracing::error!(error = %e, "shared rate limits: Redis unavailable at start; limits are per replica until it answers");
                }
                Some(limits)
            }
            None => None,
        };
        let (audit, audit_writer) = AuditSink::start(store.clone(), audit_config);
        let audit_monitor = audit.monitor();
        let metrics_server = match metrics {
            Some((addr, metrics)) => {
                metrics.attach(audit.monitor(), store.clone(), shared_limits.clone());
                let listener = TcpListener::bind(addr).await?;
                Some((listener.local_addr()?, metrics.serve(listener)))
            }
            None => None,
        };
        let issuer = args
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("{scheme}://{}", loopback(local)));
        // Tokens are for this gateway: the audience is the issuer itself.
        let tokens = TokenSettings { audience: issuer.clone(), issuer };
        let sources = crate::sources::Sources::new(args.source_refusal_limit);
        sources.spawn_reporter(store.clone());
        // Whether a request can come with a client certificate: the listener asks for
        // one, or a proxy in front forwards it. The metadata then offers RFC 8705.
        let client_certificates =
            args.tls_client_ca.is_some() || args.tls_self_signed_clients || args.trust_client_cert_header;
        let gateway = crate::gateway::Gateway::new(
            store.clone(),
            tokens.clone(),
            audit.clone(),
            sources.clone(),
            crate::gateway::GatewayLimits {
                upstream_timeout: std::time::Duration::from_secs(args.upstream_timeout_secs),
                global_rate_per_second: args.global_rate_limit,
                shared_limits: shared_limits.clone(),
                max_body: args.max_body,
                upstream_tls,
                client_certificates,
                jwks_min_interval: std::time::Duration::from_secs(args.issuer_jwks_min_interval_secs),
            },
        )
        .map_err(|e| StartError::Config(format!("upstream TLS: {e}")))?;
        let oauth = crate::oauth::OAuthServer::new(
            store.clone(),
            tokens.clone(),
            audit.clone(),
            sources.clone(),
            args.token_rate_limit,
            shared_limits.clone(),
            gateway.issuer_keys().clone(),
        )
        .accepting_certificates(client_certificates, args.tls_client_ca.is_some());
        spawn_policy_watch(store.clone());
        if secret.has_previous() {
            let store = store.clone();
            tokio::spawn(async move { store.run_rekeys().await });
        }
        spawn_key_rotation(store.clone(), i64::from(args.signing_key_days) * portcullis_domain::time::DAY);
        spawn_audit_retention(store.clone(), i64::from(args.audit_retention_days) * portcullis_domain::time::DAY);

        // People reach us over https when the public URL says so, or, without one, when
        // the listener itself speaks nothing else.
        let secure_cookies = tokens.issuer.starts_with("https://");
        let hashes = crate::portal_assets::SiteHashes::read(&args.site_root, OUTPUT_NAME)?;
        let leptos_options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(args.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(local)
            .hash_files(hashes.hash_file().is_some())
            .hash_file(Arc::<str>::from(
                hashes.hash_file().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
            ))
            .build();
        let portal = PortalState {
            store: store.clone(),
            throttle: Arc::new(LoginThrottle::default()),
            tokens: tokens.clone(),
            gateway_base: format!("{scheme}://{}", loopback(local)),
            http: test_access_client(tls.as_ref())?,
            upstream_tls: upstream_tls_names.clone(),
            issuer_http: gateway.issuer_keys().http(),
        };
        let mcp = crate::mcp::McpServer::new(gateway.clone(), portal.clone(), &secret);
        mcp.follow_ended_sessions().await?;
        let state = ServerState { leptos_options: leptos_options.clone(), portal: portal.clone() };
        let routes = portal_routes();

        let session_layer = SessionManagerLayer::new(sessions.clone())
            .with_name("portcullis_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure_cookies)
            .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::hours(12)));

        let context = {
            let portal = portal.clone();
            move || {
                provide_context(portal.clone());
                // The nonce the page's policy names (`page_policy`), in place of the
                // one Leptos made for this render.
                let nonce = use_context::<axum::http::request::Parts>()
                    .and_then(|p| p.extensions.get::<crate::page_policy::PageNonce>().cloned());
                if let Some(crate::page_policy::PageNonce(nonce)) = nonce {
                    provide_context(leptos::nonce::Nonce::from_value(nonce));
                }
            }
        };
        let router = Router::new()
            .nest("/api/v1", crate::api_v1::router(portal.clone()))
            .route("/api/{*fn_name}", post(server_fn_handler))
            .nest_service("/pkg", crate::portal_assets::router(&args.site_root, hashes))
            .leptos_routes_with_context(&state, routes, context.clone(), {
                let options = leptos_options.clone();
                move || shell(options.clone())
            })
            .fallback(leptos_axum::file_and_error_handler_with_context::<ServerState, _>(context, shell))
            .with_state(state)
            .layer(axum::middleware::from_fn(csrf::verify_origin))
            .layer(axum::middleware::from_fn(crate::page_policy::content_security_policy))
            .layer(session_layer)
            // Forms, server functions and API calls; the gateway, MCP and OAuth bound
            // their own bodies.
            .layer(tower_http::limit::RequestBodyLimitLayer::new(PORTAL_MAX_BODY))
            // Pages (and server-function and API answers) are someone's own, can show a
            // secret once, and name this build's hashed files: no cache keeps them. /pkg
            // sets its own policy.
            .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .merge(crate::gateway::router(gateway))
            .merge(crate::mcp::router(mcp))
            .merge(crate::oauth::router(oauth))
            .merge(health::router(store.clone(), audit, shared_limits))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            // Pages set their own policy (with the response's script nonce) and the
            // gateway its `sandbox`; everything else (JSON, errors, files) may run nothing.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                // Only behind https: over plain http the header is meaningless, and on a
                // plain loopback demo it would pin the browser to https for the host.
                secure_cookies.then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains")),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ));

        let shutdown_timeout = std::time::Duration::from_secs(args.shutdown_timeout_secs);
        let bounds = crate::listener::Bounds {
            header_read_timeout: std::time::Duration::from_secs(args.header_read_timeout_secs),
            max_connections: args.max_connections,
        };
        let origins = crate::listener::Origins {
            trusted_proxies: crate::client_ip::TrustedProxies::new(args.trusted_proxies.clone()),
            client_cert_header: args.trust_client_cert_header,
        };
        Ok(Self {
            listener,
            router,
            store,
            sessions,
            demo,
            audit_writer,
            audit: audit_monitor,
            sources,
            bounds,
            origins,
            shutdown_timeout,
            tls_reloader: tls.as_ref().map(crate::tls::ListenerTls::reloader),
            tls,
            metrics: metrics_server,
        })
    }

    /// Where `/metrics` is served, when `--metrics-addr` was given.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// `https` with `--tls-cert`, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The audit writer's health, counts and watermark (`AuditMonitor::settled`).
    pub fn audit(&self) -> AuditMonitor {
        self.audit.clone()
    }

    /// What the first demo start seeded (the admin password, printed once).
    pub fn take_demo_seed(&mut self) -> Option<DemoSeed> {
        self.demo.take()
    }

    /// Serves until `shutdown` resolves, then stops in two bounded steps: requests in
    /// flight get the shutdown timeout to finish, then the audit writer gets it again to
    /// write every row; what it cannot write by then is spilled to the local file.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let store = self.store.clone();
        let timeout = self.shutdown_timeout;
        let (stopping, stop_asked) = tokio::sync::oneshot::channel::<()>();
        let reloader = self.tls_reloader.map(crate::tls::Reloader::spawn);
        let serve =
            crate::listener::serve(self.listener, self.router, self.bounds, self.origins, self.tls, async move {
                shutdown.await;
                let _ = stopping.send(());
            });
        let overdue = async move {
            if stop_asked.await.is_ok() {
                tokio::time::sleep(timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serve => {}
            () = overdue => {
                // Their rows are still written: a request cut off here records itself as
                // 499 when its handler is dropped.
                tracing::warn!(timeout_secs = timeout.as_secs(), "requests still running at the shutdown timeout are cut off");
            }
        }
        // What floods were turned away since the last report, then every queued row.
        self.sources.report(&store).await;
        self.audit_writer.finish(timeout).await;
        if let Some((_, task)) = self.metrics {
            task.abort();
        }
        if let Some(task) = reloader {
            task.abort();
        }
        store.close().await;
        self.sessions.close().await;
        Ok(())
    }
}

/// The upstream TLS settings: the server-wide flags and the profiles of
/// `--upstream-tls-dir`, every file read and checked.
fn upstream_tls(args: &ServeArgs) -> Result<crate::gateway::upstream_tls::UpstreamTlsProfiles, StartError> {
    use crate::gateway::upstream_tls::{UpstreamTls, UpstreamTlsProfiles};
    let failed = |e| StartError::Config(format!("upstream TLS: {e}"));
    let default = UpstreamTls::load(
        args.upstream_ca_file.as_deref(),
        args.upstream_client_cert.as_deref().zip(args.upstream_client_key.as_deref()),
    )
    .map_err(failed)?;
    let profiles = UpstreamTlsProfiles::load(default, args.upstream_tls_dir.as_deref()).map_err(failed)?;
    if let Some(dir) = &args.upstream_tls_dir {
        let names: Vec<&str> = profiles.named.keys().map(|n| n.as_str()).collect();
        tracing::info!(dir = %dir.display(), profiles = %names.join(", "), "upstream TLS profiles loaded");
    }
    Ok(profiles)
}

/// The listener's https configuration, when `--tls-cert` and `--tls-key` are given.
fn listener_tls(args: &ServeArgs) -> Result<Option<Arc<crate::tls::ListenerTls>>, StartError> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
        (Some(cert), Some(key), _) => (cert.clone(), key.clone()),
        (None, None, None) => return Ok(None),
        _ => {
            return Err(StartError::Config(
                "--tls-cert and --tls-key go together (and --tls-client-ca with them)".into(),
            ))
        }
    };
    let files = crate::tls::TlsFiles {
        cert,
        key,
        client_ca: args.tls_client_ca.clone(),
        self_signed_clients: args.tls_self_signed_clients,
    };
    let tls = crate::tls::ListenerTls::load(files).map_err(|e| StartError::Config(format!("https listener: {e}")))?;
    Ok(Some(Arc::new(tls)))
}

/// The client the portal's Test access calls the gateway with, on loopback. Over https
/// it trusts the listener's own certificate (see `ListenerTls::loopback_client`).
fn test_access_client(tls: Option<&Arc<crate::tls::ListenerTls>>) -> Result<reqwest::Client, StartError> {
    // Test access shows what the gateway answered: a redirect is an answer to show, not
    // one to follow to wherever an upstream points.
    let builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(35))
        .redirect(reqwest::redirect::Policy::none());
    match tls {
        None => Ok(builder.build().unwrap_or_default()),
        Some(tls) => {
            let config = tls.loopback_client().map_err(|e| StartError::Config(format!("https listener: {e}")))?;
            builder
                .use_preconfigured_tls(config)
                .build()
                .map_err(|e| StartError::Config(format!("https listener: the portal's own client: {e}")))
        }
    }
}

/// Keeps this server's policy and keys current with the store. Changes made through this
/// process publish at once; those made elsewhere (another replica, the CLI) move the
/// policy version. On PostgreSQL every server hears of the move as it commits (`LISTEN`);
/// everywhere the version is also polled every second — one row, one query — for
/// SQLite and for notifications lost with a connection. A full reload every 30 s also
/// lets retired signing keys age out.
fn spawn_policy_watch(store: Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut changes = store.policy_changes().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot listen for policy changes; polling only");
            None
        });
        let mut since_full = 0u32;
        while !store.is_closed() {
            let changed = match next_change(&mut tick, changes.as_mut()).await {
                Some(version) => version > store.enforcement().snapshot().current().version,
                None => {
                    since_full += 1;
                    let asked_at = store.now();
                    match store.policy_version().await {
                        Ok(v) if v <= store.enforcement().snapshot().current().version => {
                            store.enforcement().snapshot().confirm(asked_at);
                            since_full >= 30
                        }
                        Ok(_) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "policy version poll failed");
                            since_full >= 30
                        }
                    }
                }
            };
            if !changed {
                continue;
            }
            since_full = 0;
            if let Err(e) = store.reload_policy().await {
                tracing::error!(error = %e, "policy snapshot reload failed");
            }
            if let Err(e) = store.reload_keys().await {
                tracing::error!(error = %e, "signing key reload failed");
            }
        }
    });
}

/// The version a notification announced, or `None` when the second's tick came first
/// (time to poll). A broken feed waits out the tick: it reconnects on its next call, and
/// meanwhile the poll reports the database's trouble.
async fn next_change(
    tick: &mut tokio::time::Interval,
    feed: Option<&mut portcullis_domain::policy::PolicyChanges>,
) -> Option<i64> {
    let Some(feed) = feed else {
        tick.tick().await;
        return None;
    };
    tokio::select! {
        _ = tick.tick() => None,
        next = feed.next() => match next {
            Ok(version) => Some(version),
            Err(e) => {
                tracing::warn!(error = %e, "policy change feed interrupted");
                tick.tick().await;
                None
            }
        },
    }
}

/// Rotates the signing key once it has signed for `max_age_ms`, checked hourly by every
/// replica; the store lets one rotation through (see `Store::rotate_signing_key_if_older`),
/// and the successor is published an hour before it signs.
fn spawn_key_rotation(store: Store, max_age_ms: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match store.rotate_signing_key_if_older(max_age_ms).await {
                Ok(Some(kid)) => tracing::info!(kid = %kid, "signing key rotated on schedule"),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "scheduled signing key rotation failed"),
            }
        }
    });
}

/// Purges audit rows past the retention period, hourly; the first check runs at start.
/// Every replica keeps the timer; one of them runs each hour's purge (the one whose
/// claim succeeds), so replicas do not delete the same rows side by side.
fn spawn_audit_retention(store: Store, retention_ms: i64) {
    // Less than the timer's hour, so a replica's own next tick always finds the period
    // over, whatever the others' timers.
    const PERIOD_MS: i64 = 50 * portcullis_domain::time::MINUTE;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match store.claim_run("audit_retention", PERIOD_MS).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "audit retention: cannot claim this hour's purge");
                    continue;
                }
            }
            match store.purge_audit(retention_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "audit rows past retention purged"),
                Err(e) => tracing::error!(error = %e, "audit retention purge failed"),
            }
        }
    });
}

/// The address the server can reach itself at (a wildcard bind is reached on loopback).
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

async fn server_fn_handler(State(portal): State<PortalState>, req: Request<Body>) -> impl IntoResponse {
    handle_server_fns_with_context(move || provide_context(portal.clone()), req).await
}

/// The portal's routes, generated once per process. While Leptos generates them it
/// raises a process-wide flag, and a page resource first polled meanwhile never loads
/// (leptos#4773): a second server started in the same process (every API test does)
/// would stall pages the first is rendering, for good.
pub fn portal_routes() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}
