//! Liveness and readiness for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use portcullis_domain::store::Store;

pub fn router<S: Clone + Send + Sync + 'static>(store: Store) -> Router<S> {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(ready).with_state(store))
}

async fn ready(State(store): State<Store>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::error!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}
