//! Per-key state whose memory has a hard bound, whatever keys callers make up.
//!
//! Keys come from callers (an email typed at sign-in, an address, a client id named in
//! a token request), so each structure here caps a key's length and the number of keys
//! it holds, and forgets keys after their window.

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
}
