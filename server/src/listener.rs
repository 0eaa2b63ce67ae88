//! Serving the router over TCP with the bounds a public listener needs and `axum::serve`
//! does not set: a client must send a request's headers within a deadline (else its
//! connection is closed: slow-header clients hold nothing for long), and at most a fixed
//! number of connections is served at once (the next ones wait in the accept queue).
//! Stopping is graceful: no new connections, each open one finishes its request.

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis_app::ssr::ClientIp;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::client_ip::TrustedProxies;

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// What every request is told about where it came from, before any handler runs.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub trusted_proxies: TrustedProxies,
}

/// Serves `router` until `shutdown` resolves, then until every open connection is done.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    bounds: Bounds,
    origins: Origins,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(bounds.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(bounds.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((slot, stream, remote)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let trusted = origins.trusted_proxies.clone();
        // The peer, and the client's address as `--trusted-proxies` decides it: limits
        // and audit rows on every route use the latter.
        let service = router.clone().map_request(move |mut req: Request<Incoming>| {
            let client = trusted.client(remote.ip(), req.headers());
            req.extensions_mut().insert(ConnectInfo(remote));
            req.extensions_mut().insert(ClientIp(client));
            req
        });
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, client = %remote, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
