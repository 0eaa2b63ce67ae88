//! Serving the router over TCP with the bounds a public listener needs and `axum::serve`
//! does not set: a client must send a request's headers within a deadline (else its
//! connection is closed: slow-header clients hold nothing for long), and at most a fixed
//! number of connections is served at once (the next ones wait in the accept queue).
//! Stopping is graceful: no new connections, each open one finishes its request.
//! With `--tls-cert` every connection is https; the handshake counts against the same
//! deadline as the headers. A connection with no new request for that long is closed
//! gracefully too, over HTTP/2 as over HTTP/1: idle clients hold no slot for ever.

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use portcullis_app::ssr::ClientIp;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::client_ip::TrustedProxies;
use crate::tls::{ClientCertificate, ListenerTls};

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// What every request is told about where it came from, before any handler runs.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub trusted_proxies: TrustedProxies,
    /// Whether a trusted proxy's `Client-Cert` header (RFC 9440) is the client's
    /// certificate.
    pub client_cert_header: bool,
}

/// RFC 9440's header: the client certificate a TLS-terminating proxy verified.
const CLIENT_CERT: &str = "client-cert";

/// Serves `router` until `shutdown` resolves, then until every open connection is done.
/// With `tls`, every connection is https (h2 or http/1.1, as ALPN settles).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    origins: Origins,
    tls: Option<Arc<ListenerTls>>,
    shutdown: impl Future<Output = ()>,
) {
    let max_connections = u32::try_from(bounds.max_connections.max(1)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(usize::try_from(max_connections).unwrap_or(usize::MAX)));
    // Told to every connection at a stop; each then finishes what it serves.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(bounds.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((slot, stream, remote)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        // The first request's headers are due this long after the connection came,
        // whatever precedes them: a TLS handshake, HTTP/2's preface, or nothing at all
        // (hyper's own header timeout only starts once it knows the HTTP version).
        let deadline = tokio::time::Instant::now() + bounds.header_read_timeout;
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            trusted: origins.trusted_proxies.clone(),
            client_cert_header: origins.client_cert_header,
            remote,
            deadline,
            idle_after: bounds.header_read_timeout,
            stopping: stopping.clone(),
        };
        let tls = tls.clone();
        // The handshake runs here, never in the accept loop: a client that stalls it
        // delays nobody else, and it holds its slot meanwhile.
        tokio::spawn(async move {
            match tls {
                None => connection.serve(stream, None).await,
                Some(tls) => match tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let certificate = crate::tls::client_certificate(stream.get_ref().1, &tls);
                        connection.serve(stream, certificate).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, client = %remote, "TLS handshake failed"),
                    Err(_) => tracing::debug!(client = %remote, "TLS handshake not finished in time; closed"),
                },
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds its slot until it has ended, its handshake included: when
    // all slots are back, everything has been served.
    let _ = slots.acquire_many(max_connections).await;
}

/// One accepted connection, up to serving it.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    trusted: TrustedProxies,
    client_cert_header: bool,
    remote: SocketAddr,
    deadline: tokio::time::Instant,
    /// A connection with no new request for this long is closed gracefully.
    idle_after: Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn serve<S>(self, stream: S, certificate: Option<ClientCertificate>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self { builder, router, trusted, client_cert_header, remote, deadline, idle_after, mut stopping } = self;
        // Behind a proxy that ended TLS, the client's certificate is the one it forwards
        // (the connection's own is the proxy's); from anyone else the header is a claim
        // nobody checked, and is dropped before any handler sees it.
        let proxied = client_cert_header && trusted.trusts(remote.ip());
        // When the newest request began, in milliseconds after `opened` (0: none yet).
        let opened = tokio::time::Instant::now();
        let last_request = Arc::new(AtomicU64::new(0));
        let heard = last_request.clone();
        // The peer, and the client's address as `--trusted-proxies` decides it: limits
        // and audit rows on every route use the latter.
        let service = router.map_request(move |mut req: Request<Incoming>| {
            let at = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
            heard.store(at, Ordering::Relaxed);
            let client = trusted.client(remote.ip(), req.headers());
            req.extensions_mut().insert(ConnectInfo(remote));
            req.extensions_mut().insert(ClientIp(client));
            with_host(&mut req);
            let forwarded = req.headers_mut().remove(CLIENT_CERT);
            let presented = match proxied {
                true => forwarded.and_then(|v| ClientCertificate::from_header(v.as_bytes())),
                false => certificate.clone(),
            };
            if let Some(presented) = presented {
                req.extensions_mut().insert(presented);
            }
            req
        });
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connection.into_owned();
        tokio::pin!(connection);
        let mut wake = deadline;
        let ended = loop {
            tokio::select! {
                ended = &mut connection => break ended,
                // A stop (or the server gone): finish what is being served, then close.
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    break connection.await;
                }
                () = tokio::time::sleep_until(wake) => {
                    let last = last_request.load(Ordering::Relaxed);
                    if last == 0 {
                        tracing::debug!(client = %remote, "no request headers in time; closed");
                        return;
                    }
                    // HTTP/1 closes an idle keep-alive connection by itself (its header
                    // timer); HTTP/2 has no such timer. A graceful end cuts no stream in
                    // flight.
                    let idle_until = opened + Duration::from_millis(last) + idle_after;
                    if tokio::time::Instant::now() >= idle_until {
                        tracing::debug!(client = %remote, "connection idle; closed");
                        connection.as_mut().graceful_shutdown();
                        break connection.await;
                    }
                    wake = idle_until;
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, client = %remote, "connection ended with an error");
        }
    }
}

/// The next connection, once a slot is free for it.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::sync::OwnedSemaphorePermit, tokio::net::TcpStream, SocketAddr)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, remote)) => Some((slot, stream, remote)),
        Err(e) => {
            // Out of file descriptors, say: wait a little rather than spin.
            tracing::error!(error = %e, "accepting a connection failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// HTTP/2 names the host in the `:authority` pseudo-header, which hyper keeps in the
/// URI, not in a `Host` header. Every check of the host (the portal's same-origin rule,
/// the MCP routes' DNS-rebinding rule) reads `Host`, so it is made from `:authority` as
/// RFC 9113 §8.3.1 tells an intermediary to; a `Host` the client sent is kept.
fn with_host<B>(req: &mut Request<B>) {
    if req.headers().contains_key(header::HOST) {
        return;
    }
    let authority = req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(authority) = authority {
        req.headers_mut().insert(header::HOST, authority);
    }
}
