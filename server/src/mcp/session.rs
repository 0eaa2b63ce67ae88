//! Sessions of the 2025 protocol revisions: created by `initialize`, named by the
//! `Mcp-Session-Id` header, bound to the profile that created them, ended by `DELETE`
//! or after 30 minutes idle.
//!
//! They live in this process's memory: a session holds only the negotiated protocol
//! version, nothing an attacker could use, and every request is authenticated anew.
//! Behind a load balancer with several replicas, route `/mcp` by `Mcp-Session-Id` or let
//! clients use the stateless 2026-07-28 revision, which needs no session.

use base64::Engine;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;

const IDLE_MS: i64 = 30 * 60 * 1000;
/// Sessions one profile may hold open; the least recently used is ended beyond it.
const PER_PROFILE: usize = 64;

#[derive(Debug, Clone)]
pub struct Session {
    pub profile_id: String,
    pub protocol_version: &'static str,
    last_seen: i64,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// Why a session id was not accepted: answered 404 so the client starts a new session.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownSession;

impl Sessions {
    /// Opens a session for a profile and returns its id: 256 random bits, base64url.
    pub fn open(&self, profile_id: &str, protocol_version: &'static str, now: i64) -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut map = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| now - s.last_seen < IDLE_MS);
        let mut mine: Vec<(i64, String)> =
            map.iter().filter(|(_, s)| s.profile_id == profile_id).map(|(k, s)| (s.last_seen, k.clone())).collect();
        if mine.len() >= PER_PROFILE {
            mine.sort();
            for (_, old) in mine.iter().take(mine.len() + 1 - PER_PROFILE) {
                map.remove(old);
            }
        }
        map.insert(id.clone(), Session { profile_id: profile_id.to_owned(), protocol_version, last_seen: now });
        id
    }

    /// The session, if it exists, is live and belongs to this profile (another profile's
    /// session id is as unknown as a made-up one).
    pub fn touch(&self, id: &str, profile_id: &str, now: i64) -> Result<Session, UnknownSession> {
        let mut map = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(id) {
            Some(s) if s.profile_id == profile_id && now - s.last_seen < IDLE_MS => {
                s.last_seen = now;
                Ok(s.clone())
            }
            _ => Err(UnknownSession),
        }
    }

    pub fn end(&self, id: &str, profile_id: &str) -> Result<(), UnknownSession> {
        let mut map = self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(id) {
            Some(s) if s.profile_id == profile_id => {
                map.remove(id);
                Ok(())
            }
            _ => Err(UnknownSession),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_profile_and_expire() {
        let sessions = Sessions::default();
        let id = sessions.open("pr_a", "2025-11-25", 0);
        assert!(sessions.touch(&id, "pr_a", 1_000).is_ok());
        assert_eq!(sessions.touch(&id, "pr_b", 1_000).unwrap_err(), UnknownSession);
        assert!(sessions.end(&id, "pr_b").is_err());
        assert!(sessions.touch(&id, "pr_a", 1_000 + IDLE_MS).is_err());
        let id = sessions.open("pr_a", "2025-11-25", 0);
        assert!(sessions.end(&id, "pr_a").is_ok());
        assert!(sessions.touch(&id, "pr_a", 1).is_err());
    }
}
