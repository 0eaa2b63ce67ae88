//! Rate limits (GCRA), checked in turn: the caller's profile, the product it calls
//! (every caller together), and the whole gateway. With `--redis-url` they are counted
//! across replicas in Redis; otherwise, and whenever Redis cannot answer, per process
//! (governor). Local limiters live outside the policy snapshot so that reloading it
//! does not refill everyone's buckets; a limiter is replaced only when its own policy
//! changes.

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use crate::shared_limits::{Decision, Rule, SharedLimits};

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
    let limit = count(burst);
    match limiter.check() {
        Ok(state) => Verdict::Allowed { limit, remaining: u64::from(state.remaining_burst_capacity()) },
        Err(not_until) => {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default()));
            Verdict::Limited { limit, retry_after_secs: retry_secs(wait) }
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
            let fresh = || {
                let quota = Quota::per_minute(nz(rate_per_minute)).allow_burst(nz(burst));
                Arc::new(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
            };
            let Ok(mut map) = self.limiters.write() else { return fresh() };
            // Looked up again under the write lock: requests arriving together for a new
            // key must share the first one's bucket, not each start a full burst.
            match map.get(key).filter(|(p, _)| *p == policy) {
                Some((_, limiter)) => limiter.clone(),
                None => {
                    let limiter = fresh();
                    map.insert(key.to_owned(), (policy, limiter.clone()));
                    limiter
                }
            }
        });
        verdict(&limiter, burst)
    }
}

pub struct Limits {
    profiles: Keyed,
    products: Keyed,
    /// Requests per second for the whole gateway, when set.
    global: Option<(i64, Limiter)>,
    /// With `--redis-url`: the same limits, counted across every replica. The local
    /// limiters above decide whenever Redis cannot (see `crate::shared_limits`).
    shared: Option<SharedLimits>,
}

/// A product's burst: ten seconds' worth of its rate may arrive at once.
fn product_burst(rate_per_minute: i64) -> i64 {
    (rate_per_minute / 6).max(1)
}

fn count(n: i64) -> u64 {
    u64::try_from(n.max(1)).unwrap_or(1)
}

fn retry_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Limits {
    /// `global_per_second`: 0 for no gateway-wide limit.
    pub fn new(global_per_second: u32, shared: Option<SharedLimits>) -> Self {
        let global = (global_per_second > 0).then(|| {
            let n = i64::from(global_per_second);
            let quota = Quota::per_second(nz(n)).allow_burst(nz(n));
            (n, RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
        });
        Self { profiles: Keyed::default(), products: Keyed::default(), global, shared }
    }

    /// The profile's verdict (its figures go into the caller's `RateLimit-*` headers),
    /// or the first limit that refuses.
    pub async fn check(
        &self,
        profile: (&str, i64, i64),
        product: (&str, Option<i64>),
    ) -> Result<(u64, u64), (Scope, u64, u64)> {
        if let Some(shared) = &self.shared {
            // In the order of `check_here`; a refusal names its rule by index, and the
            // scope of each index is known without keeping a second list.
            let mut rules = Vec::with_capacity(3);
            rules.push(Rule::per_minute("profile", profile.0, count(profile.1), count(profile.2)));
            if let (id, Some(rate)) = product {
                rules.push(Rule::per_minute("product", id, count(rate), count(product_burst(rate))));
            }
            if let Some((n, _)) = &self.global {
                let per_second = u32::try_from(*n).unwrap_or(u32::MAX).max(1);
                rules.push(Rule::new("gateway", "all", std::time::Duration::from_secs(1) / per_second, count(*n)));
            }
            match shared.check(&rules).await {
                Some(Decision::Allowed { remaining }) => return Ok((count(profile.2), remaining)),
                Some(Decision::Limited { rule, retry_after }) => {
                    let scope = match rule {
                        0 => Scope::Profile,
                        1 if product.1.is_some() => Scope::Product,
                        _ => Scope::Global,
                    };
                    let limit = rules.get(rule).map_or(count(profile.2), |r| r.burst);
                    return Err((scope, limit, retry_secs(retry_after)));
                }
                None => {}
            }
        }
        self.check_here(profile, product)
    }

    /// The same limits, counted in this process alone.
    fn check_here(
        &self,
        profile: (&str, i64, i64),
        product: (&str, Option<i64>),
    ) -> Result<(u64, u64), (Scope, u64, u64)> {
        let (limit, remaining) = match self.profiles.check(profile.0, profile.1, profile.2) {
            Verdict::Allowed { limit, remaining } => (limit, remaining),
            Verdict::Limited { limit, retry_after_secs } => return Err((Scope::Profile, limit, retry_after_secs)),
        };
        if let (id, Some(rate)) = product {
            if let Verdict::Limited { limit, retry_after_secs } = self.products.check(id, rate, product_burst(rate)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The first requests for a key arrive together (a new profile, a changed limit, the
    /// local fallback when Redis goes away): they share one bucket, so no more than the
    /// burst gets through however they interleave.
    #[test]
    fn requests_racing_for_a_new_key_share_one_burst() {
        for round in 0..200 {
            let keyed = Arc::new(Keyed::default());
            let start = Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (keyed, start) = (keyed.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        (0..2).filter(|_| matches!(keyed.check("pr_new", 1, 4), Verdict::Allowed { .. })).count()
                    })
                })
                .collect();
            let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
            assert_eq!(allowed, 4, "round {round}");
        }
    }
}
