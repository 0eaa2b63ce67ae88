//! Per-profile rate limits (GCRA, governor). Limiters live outside the policy snapshot
//! so that reloading the snapshot does not refill everyone's buckets; a limiter is
//! replaced only when its profile's policy changes.

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
/// A profile's (requests per minute, burst) and the limiter built for it.
type Entry = ((i64, i64), Arc<Limiter>);

#[derive(Default)]
pub struct ProfileLimits {
    limiters: RwLock<HashMap<String, Entry>>,
}

/// What a check decided, with what the caller is told in `RateLimit-*` headers.
pub enum Verdict {
    Allowed { limit: u64, remaining: u64 },
    Limited { limit: u64, retry_after_secs: u64 },
}

fn nz(n: i64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n.max(1)).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

impl ProfileLimits {
    fn limiter(&self, profile_id: &str, policy: (i64, i64)) -> Arc<Limiter> {
        if let Ok(map) = self.limiters.read() {
            if let Some((p, l)) = map.get(profile_id) {
                if *p == policy {
                    return l.clone();
                }
            }
        }
        let quota = Quota::per_minute(nz(policy.0)).allow_burst(nz(policy.1));
        let limiter = Arc::new(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>());
        if let Ok(mut map) = self.limiters.write() {
            map.insert(profile_id.to_owned(), (policy, limiter.clone()));
        }
        limiter
    }

    pub fn check(&self, profile_id: &str, rate_per_minute: i64, burst: i64) -> Verdict {
        let limit = u64::try_from(burst.max(1)).unwrap_or(1);
        match self.limiter(profile_id, (rate_per_minute, burst)).check() {
            Ok(state) => Verdict::Allowed { limit, remaining: u64::from(state.remaining_burst_capacity()) },
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&DefaultClock::default()));
                Verdict::Limited { limit, retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
            }
        }
    }
}
