//! Liveness and readiness for orchestrators and load balancers.
//!
//! Ready means the gateway can do its whole job: the database answers, the audit trail
//! can take rows (its writer is writing, and its queue has room) and, when limits are
//! shared, Redis answers. A load balancer that reads `/readyz` stops sending traffic to a
//! replica that would refuse it — or, for Redis, that would count limits on its own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use portcullis_domain::audit_writer::AuditSink;
use portcullis_domain::store::Store;

use crate::shared_limits::SharedLimits;

#[derive(Clone)]
struct Health {
    store: Store,
    audit: AuditSink,
    shared_limits: Option<SharedLimits>,
}

pub fn router<S: Clone + Send + Sync + 'static>(
    store: Store,
    audit: AuditSink,
    shared_limits: Option<SharedLimits>,
) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready).with_state(Health { store, audit, shared_limits }))
}

async fn ready(State(h): State<Health>) -> (StatusCode, String) {
    let audit = h.audit.health(h.store.now());
    if let Some(ms) = audit.failing_for_ms {
        tracing::warn!(failing_ms = ms, error = ?audit.last_error, "readiness: the audit writer cannot write");
        return (StatusCode::SERVICE_UNAVAILABLE, format!("audit writer failing for {} s", ms / 1000));
    }
    if audit.is_full() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("audit queue full ({} rows)", audit.capacity));
    }
    if let Some(shared) = &h.shared_limits {
        if let Err(e) = shared.health().await {
            tracing::warn!(error = %e, "readiness: Redis (shared rate limits) unreachable");
            return (StatusCode::SERVICE_UNAVAILABLE, format!("redis unreachable: {e}"));
        }
    }
    match h.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => {
            tracing::error!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable".into())
        }
    }
}
