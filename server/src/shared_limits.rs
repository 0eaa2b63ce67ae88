//! Rate limits shared by every replica, kept in Redis (`--redis-url`).
//!
//! Each limit is a GCRA: Redis keeps one number per key, the "theoretical arrival time"
//! of the next request, in microseconds of Redis's own clock (so replicas' clocks need not
//! agree). One Lua script checks every limit of a request at once, atomically, in one
//! round trip, and spends from all of them only when all allow it: a request refused by
//! the product's limit does not also use up the caller's own.
//!
//! When Redis cannot answer (down, slow past `BUDGET`, not yet connected), the caller
//! falls back to its per-process limiters, so limits fail *open to local*: a replica
//! keeps enforcing what it alone can, and at worst the cluster admits each limit once
//! per replica. Authentication and authorization never depend on Redis. After a failure
//! Redis is asked again only a second later, so an outage costs one slow request per
//! second, not one per request. `/readyz` reports the outage meanwhile.
//!
//! The one-use checks (DPoP proofs, client assertions) and the use counts of per-task
//! tokens wait longer, `ONE_USE_BUDGET`,
//! and keep a circuit of their own: a limit check that misses its 100 ms under a burst
//! must not let a proof or an assertion be used once per replica for the next second.
//! Only when Redis fails them too does each replica fall back to its own memory.

use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest a limit check waits for Redis before deciding locally.
const BUDGET: Duration = Duration::from_millis(100);
/// The longest a one-use check waits for Redis before trusting this replica's memory
/// alone. Longer than `BUDGET`: a replay let through is worse than a slow request.
const ONE_USE_BUDGET: Duration = Duration::from_secs(1);
/// How long after a failure the limits stay local before Redis is tried again.
const RETRY_AFTER_MS: i64 = 1000;
/// Every key this module writes starts with it.
const PREFIX: &str = "portcullis:limit:";
/// Keys of what may be used once (DPoP proofs, client assertions) or a counted number of
/// times (per-task tokens), across replicas.
const USED_PREFIX: &str = "portcullis:used:";

/// KEYS: one per limit. ARGV: for each key, its emission interval and burst (µs, count).
/// Returns `{1, remaining_of_first}` when every limit allows (and then spends from all),
/// else `{0, index_of_first_refusing (1-based), retry_after_µs}`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tat = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local allow_at = tat + interval - burst * interval
  if allow_at > now then
    return {0, i, allow_at - now}
  end
  next_tat[i] = tat + interval
end
for i = 1, #KEYS do
  -- As an integer string: Lua would print 16 digits as 1.7e+15 and lose the microseconds.
  redis.call('SET', KEYS[i], string.format('%d', next_tat[i]), 'PX', math.ceil((next_tat[i] - now) / 1000) + 1000)
end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
return {1, math.floor((now - (next_tat[1] - burst * interval)) / interval)}
";

/// One limit to check: `burst` requests at once, then one per `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub key: String,
    pub interval: Duration,
    pub burst: u64,
}

impl Rule {
    /// `per_minute` requests a minute, `burst` at once, under `kind:id` (`profile:pr_…`).
    pub fn per_minute(kind: &str, id: &str, per_minute: u64, burst: u64) -> Self {
        Self::new(kind, id, Duration::from_secs(60) / u32::try_from(per_minute.max(1)).unwrap_or(u32::MAX), burst)
    }

    pub fn new(kind: &str, id: &str, interval: Duration, burst: u64) -> Self {
        Self { key: format!("{PREFIX}{kind}:{id}"), interval, burst: burst.max(1) }
    }
}

/// What Redis decided for a set of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every rule allowed it; `remaining` is what is left of the first rule's burst.
    Allowed { remaining: u64 },
    /// `rule` (an index into the rules given) refused it.
    Limited { rule: usize, retry_after: Duration },
}

#[derive(Clone)]
pub struct SharedLimits(Arc<Inner>);

struct Inner {
    redis: ConnectionManager,
    script: redis::Script,
    /// Until when (ms since the epoch) checks skip Redis after a failure; 0 when healthy.
    local_until: AtomicI64,
    /// The same for one-use checks, which fail apart from the limits.
    one_use_local_until: AtomicI64,
    /// Checks Redis decided, and checks left to the local limits (for metrics).
    answered: AtomicU64,
    fell_back: AtomicU64,
}

impl SharedLimits {
    /// Prepares the connection; it is made on first use and remade after failures, so a
    /// replica starts (with local limits) while Redis is away.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            // Each call bounds its own wait (`BUDGET` or `ONE_USE_BUDGET`).
            .set_response_timeout(Some(ONE_USE_BUDGET))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self(Arc::new(Inner {
            redis,
            script: redis::Script::new(GCRA),
            local_until: AtomicI64::new(0),
            one_use_local_until: AtomicI64::new(0),
            answered: AtomicU64::new(0),
            fell_back: AtomicU64::new(0),
        })))
    }

    /// Redis's decision, or `None` when it cannot give one in time (decide locally).
    pub async fn check(&self, rules: &[Rule]) -> Option<Decision> {
        let now = now_ms();
        if rules.is_empty() {
            return None;
        }
        if self.0.local_until.load(Ordering::Relaxed) > now {
            self.0.fell_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut invocation = self.0.script.prepare_invoke();
        for rule in rules {
            let interval = u64::try_from(rule.interval.as_micros()).unwrap_or(u64::MAX).max(1);
            invocation.key(&rule.key).arg(interval).arg(rule.burst);
        }
        let mut redis = self.0.redis.clone();
        let answer = tokio::time::timeout(BUDGET, invocation.invoke_async::<Vec<i64>>(&mut redis)).await;
        let reply = match answer {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return self.failed(now, e.to_string()),
            Err(_) => return self.failed(now, format!("no answer within {} ms", BUDGET.as_millis())),
        };
        if self.0.local_until.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("shared rate limits: Redis answers again");
        }
        if matches!(reply.as_slice(), [1, _] | [0, _, _]) {
            self.0.answered.fetch_add(1, Ordering::Relaxed);
        }
        match reply.as_slice() {
            [1, remaining] => Some(Decision::Allowed { remaining: u64::try_from(*remaining).unwrap_or(0) }),
            [0, rule, wait_us] => Some(Decision::Limited {
                rule: usize::try_from(*rule).unwrap_or(1).saturating_sub(1),
                retry_after: Duration::from_micros(u64::try_from(*wait_us).unwrap_or(0)),
            }),
            _ => self.failed(now, format!("unexpected answer from the limit script: {reply:?}")),
        }
    }

    /// Whether `key` is used here for the first time across every replica (remembered
    /// for `ttl`), or `None` when Redis cannot say within `ONE_USE_BUDGET`: the one-use
    /// check of DPoP proofs and client assertions, which then rests on each replica's
    /// own memory for a second.
    pub async fn first_use(&self, key: &[u8; 32], ttl: Duration) -> Option<bool> {
        self.count_use(key, ttl).await.map(|n| n == 1)
    }

    /// Counts one use of `key` across every replica and returns how many there have been
    /// (the count lives for `ttl` from the first), or `None` when Redis cannot say within
    /// `ONE_USE_BUDGET` (then for a second, to spare the requests behind). One atomic
    /// round trip: `SET key 0 NX PX ttl` then `INCR key`.
    pub async fn count_use(&self, key: &[u8; 32], ttl: Duration) -> Option<u64> {
        let now = now_ms();
        if self.0.one_use_local_until.load(Ordering::Relaxed) > now {
            self.0.fell_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut redis = self.0.redis.clone();
        let name = format!("{USED_PREFIX}{}", hex::encode(key));
        let mut count = redis::pipe();
        count
            .atomic()
            .cmd("SET")
            .arg(&name)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .ignore()
            .cmd("INCR")
            .arg(&name);
        let error = match tokio::time::timeout(ONE_USE_BUDGET, count.query_async::<(u64,)>(&mut redis)).await {
            Ok(Ok((n,))) => {
                self.0.one_use_local_until.store(0, Ordering::Relaxed);
                self.0.answered.fetch_add(1, Ordering::Relaxed);
                return Some(n);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", ONE_USE_BUDGET.as_millis()),
        };
        self.0.fell_back.fetch_add(1, Ordering::Relaxed);
        if self.0.one_use_local_until.swap(now + RETRY_AFTER_MS, Ordering::Relaxed) == 0 {
            tracing::error!(error = %error, "one-use checks: Redis unavailable; each replica remembers only its own");
        }
        None
    }

    /// The one rule for something that may be used once (a DPoP proof, a client
    /// assertion): used for the first time in this process (`first_here`, this replica's
    /// memory) and, with Redis, on every replica. When Redis cannot say, this replica's
    /// memory decides alone.
    pub async fn first_everywhere(shared: Option<&Self>, first_here: bool, key: &[u8; 32], ttl: Duration) -> bool {
        if !first_here {
            return false;
        }
        match shared {
            Some(shared) => shared.first_use(key, ttl).await.unwrap_or(true),
            None => true,
        }
    }

    /// Checks Redis decided, and checks decided locally because it could not.
    pub fn counts(&self) -> (u64, u64) {
        (self.0.answered.load(Ordering::Relaxed), self.0.fell_back.load(Ordering::Relaxed))
    }

    fn failed(&self, now: i64, error: String) -> Option<Decision> {
        self.0.fell_back.fetch_add(1, Ordering::Relaxed);
        if self.0.local_until.swap(now + RETRY_AFTER_MS, Ordering::Relaxed) == 0 {
            tracing::error!(error = %error, "shared rate limits: Redis unavailable; limits are per replica until it answers");
        }
        None
    }

    /// Connects and loads the limit script before the first request, so that the first
    /// check is one `EVALSHA` on an open connection: made lazily, the connection and the
    /// script's first load could overrun the budget and send a new replica's first
    /// requests to its local limits. A Redis that is away now only delays the start by
    /// the readiness budget; the replica then starts on local limits.
    pub async fn warm(&self) -> Result<(), String> {
        let mut redis = self.0.redis.clone();
        match tokio::time::timeout(BUDGET * 10, self.0.script.load_async(&mut redis)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", (BUDGET * 10).as_millis())),
        }
    }

    /// Whether Redis answers a `PING` now (for `/readyz`), with the reason when not.
    pub async fn health(&self) -> Result<(), String> {
        let mut redis = self.0.redis.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(BUDGET * 10, ping.query_async::<String>(&mut redis)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", (BUDGET * 10).as_millis())),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
