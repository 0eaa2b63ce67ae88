//! Rate limits (GCRA, governor), checked in turn: the caller's profile, the product it
//! calls (every caller together), and the whole gateway. Limiters live outside the
//! policy snapshot so that reloading it does not refill everyone's buckets; a limiter
//! is replaced only when its own policy changes.

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
/// A policy (requests per minute, burst) and the limiter built for it.
type Entry = ((i64, i64), Arc<Limiter>);

/// Which limit refused a request: it names the audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Profile,
    Product,
    Global,
}

/// What a check decided, with what the caller is told in `RateLimit-*` headers.
pub enum Verdict {
    Allowed { limit: u64, remaining: u64 },
    Limited { limit: u64, retry_after_secs: u64 },
}

fn nz(n: i64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n.max(1)).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

fn verdict(limiter: &Limiter, burst: i64) -> Verdict {
    let limit = u64::try_from(burst.max(1)).unwrap_or(1);
    match limiter.check() {
        Ok(state) => Verdict::Allowed { limit, remaining: u64::from(state.remaining_burst_capacity()) },
        Err(not_until) => {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default()));
            Verdict::Limited { limit, retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        }
    }
}

/// Limiters by key (a profile id, or a product id), each for its current policy.
#[derive(Default)]
struct Keyed {
    limiters: RwLock<HashMap<String, Entry>>,
}

impl Keyed {
    fn check(&self, key: &str, rate_per_minute: i64, burst: i64) -> Verdict {
        let policy = (rate_per_minute, burst);
        let cached =
            self.limiters.read().ok().and_then(|m| m.get(key).filter(|(p, _)| *p == policy).map(|e| e.1.clone()));
        let limiter = cached.unwrap_or_else(|| {
            let quota = Quota::per_minute(nz(rate_per_minute)).allow_burst(nz(burst));
            let limiter = Arc::new(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>());
            if let Ok(mut map) = self.limiters.write() {
                map.insert(key.to_owned(), (policy, limiter.clone()));
            }
            limiter
        });
        verdict(&limiter, burst)
    }
}

pub struct Limits {
    profiles: Keyed,
    products: Keyed,
    /// Requests per second for the whole gateway, when set.
    global: Option<(i64, Limiter)>,
}

impl Limits {
    /// `global_per_second`: 0 for no gateway-wide limit.
    pub fn new(global_per_second: u32) -> Self {
        let global = (global_per_second > 0).then(|| {
            let n = i64::from(global_per_second);
            let quota = Quota::per_second(nz(n)).allow_burst(nz(n));
            (n, RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
        });
        Self { profiles: Keyed::default(), products: Keyed::default(), global }
    }

    /// The profile's verdict (its figures go into the caller's `RateLimit-*` headers),
    /// or the first limit that refuses.
    pub fn check(
        &self,
        profile: (&str, i64, i64),
        product: (&str, Option<i64>),
    ) -> Result<(u64, u64), (Scope, u64, u64)> {
        let (limit, remaining) = match self.profiles.check(profile.0, profile.1, profile.2) {
            Verdict::Allowed { limit, remaining } => (limit, remaining),
            Verdict::Limited { limit, retry_after_secs } => return Err((Scope::Profile, limit, retry_after_secs)),
        };
        if let (id, Some(rate)) = product {
            // Ten seconds' worth of the product's rate may arrive at once.
            if let Verdict::Limited { limit, retry_after_secs } = self.products.check(id, rate, (rate / 6).max(1)) {
                return Err((Scope::Product, limit, retry_after_secs));
            }
        }
        if let Some((n, global)) = &self.global {
            if let Verdict::Limited { limit, retry_after_secs } = verdict(global, *n) {
                return Err((Scope::Global, limit, retry_after_secs));
            }
        }
        Ok((limit, remaining))
    }
}
