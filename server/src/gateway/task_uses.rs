//! How many calls each per-task token with a `max_uses` has made: in this process and,
//! with `--redis-url`, across every replica (one atomic count in Redis per call). When
//! Redis cannot answer, this replica's own count decides, as for the one-use checks: at
//! worst a task token gets its calls once per replica while Redis is away.

use portcullis_domain::enforcement::AccessClaims;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::shared_limits::SharedLimits;

pub struct TaskUses {
    /// By token (`jti`); a token lives at most an hour.
    local: moka::sync::Cache<[u8; 32], Arc<AtomicU64>>,
    shared: Option<SharedLimits>,
}

impl TaskUses {
    pub fn new(shared: Option<SharedLimits>) -> Self {
        let local =
            moka::sync::Cache::builder().max_capacity(200_000).time_to_live(Duration::from_secs(3600 + 60)).build();
        Self { local, shared }
    }

    /// Spends one of the token's calls; false when none is left. Tokens without a
    /// `max_uses` are not counted at all.
    pub async fn spend(&self, token: &AccessClaims, now_secs: i64) -> bool {
        let Some(max) = token.task().and_then(|t| t.max_uses) else { return true };
        let key: [u8; 32] = Sha256::digest(format!("task-use:{}", token.jti)).into();
        let here = self.local.get_with(key, || Arc::new(AtomicU64::new(0))).fetch_add(1, Ordering::Relaxed) + 1;
        // Counted until the token has expired for certain (its leeway included).
        let ttl = Duration::from_secs(u64::try_from(token.exp - now_secs).unwrap_or(0) + 60);
        let count = match &self.shared {
            Some(shared) => shared.count_use(&key, ttl).await.unwrap_or(here),
            None => here,
        };
        count <= u64::from(max)
    }
}
