//! Per-key state whose memory has a hard bound, whatever keys callers make up.
//!
//! Keys come from callers (an email typed at sign-in, an address, a client id named in
//! a token request), so each structure here caps a key's length and the number of keys
//! it holds, and forgets keys after their window.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Longest key kept; longer ones are cut (a made-up key gains nothing by its length).
pub const MAX_KEY: usize = 256;

fn capped(key: &str) -> &str {
    let mut end = key.len().min(MAX_KEY);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    key.get(..end).unwrap_or("")
}

/// Says yes to the first occurrence of a key in each window: an event repeated by a
/// flood (a throttled sign-in, a refused token) is recorded once per window, not once
/// per attempt.
pub struct OncePer {
    seen: moka::sync::Cache<String, ()>,
}

impl OncePer {
    pub fn new(window: Duration, max_keys: u64) -> Self {
        Self { seen: moka::sync::Cache::builder().max_capacity(max_keys).time_to_live(window).build() }
    }

    /// Whether `key` is new in this window (and from now on, it is not).
    pub fn first(&self, key: &str) -> bool {
        self.seen.entry(capped(key).to_owned()).or_insert(()).is_fresh()
    }
}

/// A rate limit per key (GCRA, governor), for keys callers choose: at most `max_keys`
/// buckets, each forgotten after a quiet period as long as it takes to refill. A flood
/// of new keys evicts old buckets rather than growing memory; what bounds a flood is
/// the per-address limit in front of it, whose keys are addresses.
pub struct Limiter<K: Hash + Eq + Send + Sync + 'static> {
    quota: Quota,
    buckets: moka::sync::Cache<K, Arc<DefaultDirectRateLimiter>>,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> Limiter<K> {
    /// `per_minute` requests a minute with `burst` at once.
    pub fn new(per_minute: u32, burst: u32, max_keys: u64) -> Self {
        let nz = |n: u32| std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = Quota::per_minute(nz(per_minute)).allow_burst(nz(burst));
        // Idle longer than a full refill, a bucket is as good as new: forgetting it is free.
        let refill = quota.replenish_interval().saturating_mul(burst.max(1));
        let buckets = moka::sync::Cache::builder().max_capacity(max_keys).time_to_idle(refill).build();
        Self { quota, buckets }
    }

    /// Takes one from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let bucket = self.buckets.get_with_by_ref(key, || Arc::new(RateLimiter::direct(self.quota)));
        bucket.check().map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))
        })
    }

    pub fn len(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a source address: IPv4 as it is, IPv6 by its /64 (one subscriber usually
/// holds a whole /64, so counting single IPv6 addresses would count nothing).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A fixed-size key for an identity (an email, a client id) seen from a source: the
/// first 16 bytes of SHA-256, so a long made-up identity costs no more than a short one.
pub fn identity_key(identity: &str, source: IpAddr) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(identity.trim().to_lowercase().as_bytes())
        .chain_update([0u8])
        .chain_update(source_key(source).to_string().as_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_first_once_per_window_and_long_keys_are_one_key() {
        let once = OncePer::new(Duration::from_secs(60), 100);
        assert!(once.first("198.51.100.7"));
        assert!(!once.first("198.51.100.7"));
        assert!(once.first("198.51.100.8"));
        let long = "x".repeat(10_000);
        assert!(once.first(&long));
        assert!(!once.first(&format!("{long}y")), "cut to the same key");
    }

    #[test]
    fn buckets_are_per_key_and_their_number_is_bounded() {
        let limiter: Limiter<[u8; 16]> = Limiter::new(60, 2, 1000);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let mine = identity_key("ada@example.com", ip);
        assert!(limiter.check(&mine).is_ok() && limiter.check(&mine).is_ok());
        assert!(limiter.check(&mine).is_err(), "the burst is spent");
        assert_eq!(identity_key(" ADA@example.com", ip), mine, "one identity, however typed");
        assert!(limiter.check(&identity_key("ada@example.com", "203.0.113.1".parse().unwrap())).is_ok(), "elsewhere");
        for i in 0..5000 {
            let _ = limiter.check(&identity_key(&format!("{i}{}", "x".repeat(1000)), ip));
        }
        assert!(limiter.len() <= 1000, "{}", limiter.len());
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_eq!(source_key("::ffff:198.51.100.7".parse().unwrap()).to_string(), "198.51.100.7");
    }
}
