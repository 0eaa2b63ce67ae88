//! Floods of refused requests, stopped at the door.
//!
//! Every refused request on `/gw`, `/mcp` and `/oauth` (a bad credential, a forbidden
//! path, a transport fault) counts against its source address. A source past its budget
//! is refused for a while **before** authentication, with 429 and `Retry-After`, and
//! those refusals are not written one row each: they are counted, and the counts are
//! written as one `requests.suppressed` event per source and minute. So a flood of
//! refusals cannot fill the audit table or its queue, and nothing it did goes unsaid.
//!
//! Every structure here is bounded: sources are keyed by address (an IPv6 /64), at most
//! `MAX_SOURCES` are tracked, and the unreported counts of at most `MAX_REPORTED`; more
//! are reported together.

use portcullis_domain::keyed::{source_key, Limiter};
use portcullis_domain::model::{Reason, RequestChannel};
use portcullis_domain::store::Store;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_SOURCES: u64 = 100_000;
const MAX_REPORTED: usize = 10_000;
/// How often suppressed counts are written.
const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Sources(Arc<Inner>);

struct Inner {
    /// `None` when the limit is off.
    refusals: Option<Limiter<IpAddr>>,
    /// Sources refused at the door, and until when.
    blocked: moka::sync::Cache<IpAddr, Instant>,
    /// When the last block ends (ms after `since`): until then `admit` looks sources up,
    /// after it, nobody is turned away and it need not look.
    last_block_ends: AtomicU64,
    since: Instant,
    /// Refusals not written as rows since the last report, per source and channel;
    /// `None` as the source collects sources beyond `MAX_REPORTED`.
    suppressed: Mutex<HashMap<(Option<IpAddr>, RequestChannel), u64>>,
}

impl Sources {
    /// `per_minute` refusals a source may earn (half of them at once); 0 turns it off.
    pub fn new(per_minute: u32) -> Self {
        let refusals = (per_minute > 0).then(|| Limiter::new(per_minute, per_minute.div_ceil(2), MAX_SOURCES));
        let blocked =
            moka::sync::Cache::builder().max_capacity(MAX_SOURCES).time_to_live(Duration::from_secs(60)).build();
        Self(Arc::new(Inner {
            refusals,
            blocked,
            last_block_ends: AtomicU64::new(0),
            since: Instant::now(),
            suppressed: Mutex::new(HashMap::new()),
        }))
    }

    /// Before anything else: whether `ip` may be heard. A source past its budget gets the
    /// seconds it must wait, and this request is counted instead of written.
    pub fn admit(&self, ip: IpAddr, channel: RequestChannel) -> Result<(), u64> {
        // The common case, nobody turned away lately, costs one atomic load.
        if self.0.since.elapsed().as_millis() as u64 >= self.0.last_block_ends.load(Ordering::Relaxed) {
            return Ok(());
        }
        let key = source_key(ip);
        let Some(until) = self.0.blocked.get(&key) else { return Ok(()) };
        let now = Instant::now();
        if until <= now {
            self.0.blocked.invalidate(&key);
            return Ok(());
        }
        let mut suppressed = self.0.suppressed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = if suppressed.len() < MAX_REPORTED || suppressed.contains_key(&(Some(key), channel)) {
            Some(key)
        } else {
            None
        };
        *suppressed.entry((slot, channel)).or_insert(0) += 1;
        let wait = until.duration_since(now);
        Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    /// A request from `ip` was refused (and written) for `reason`: it counts against the
    /// source when the reason says the caller is at fault (`Reason::counts_against_caller`:
    /// never the store, the audit trail, an upstream or a bug, which must not get anyone
    /// turned away, nor being told to use a DPoP nonce).
    pub fn refused(&self, ip: IpAddr, reason: Reason) {
        if !reason.counts_against_caller() {
            return;
        }
        let Some(refusals) = &self.0.refusals else { return };
        let key = source_key(ip);
        if let Err(wait) = refusals.check(&key) {
            // Refused at the door until the budget has room for one again.
            let until = Instant::now() + wait.max(Duration::from_secs(1));
            let ends = until.duration_since(self.0.since).as_millis() as u64;
            self.0.last_block_ends.fetch_max(ends, Ordering::Relaxed);
            self.0.blocked.insert(key, until);
            tracing::warn!(source = %key, wait_ms = wait.as_millis() as u64, "source refused at the door for its refusals");
        }
    }

    /// Writes the suppressed counts as events, one per source: every minute, and once more
    /// when the server stops.
    pub async fn report(&self, store: &Store) {
        let counts: Vec<_> = {
            let mut suppressed = self.0.suppressed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            suppressed.drain().collect()
        };
        let mut by_source: HashMap<Option<IpAddr>, serde_json::Map<String, serde_json::Value>> = HashMap::new();
        for ((source, channel), n) in counts {
            by_source.entry(source).or_default().insert(channel.as_str().to_owned(), n.into());
        }
        for (source, channels) in by_source {
            let target = source.map_or_else(|| "other sources".to_owned(), |s| s.to_string());
            if let Err(e) = store.record_suppressed(&target, serde_json::Value::Object(channels)).await {
                tracing::error!(error = %e, source = %target, "suppressed refusals not recorded");
            }
        }
    }

    pub fn spawn_reporter(&self, store: Store) {
        let sources = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPORT_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                sources.report(&store).await;
            }
        });
    }
}
