//! Sessions of the 2025 protocol revisions: created by `initialize`, named by the
//! `Mcp-Session-Id` header, bound to the profile that created them, ended by `DELETE`
//! or 24 hours after they began.
//!
//! A session id is self-contained: it is sealed with a key derived from the server secret
//! and carries everything a replica needs to serve it, so any replica with the same secret
//! accepts it and no load balancer has to route by it. Nothing is kept per session. The
//! one fact a sealed id cannot carry is that it was ended: ends are recorded in the store
//! (a hash of the id) and every replica keeps the ended hashes in memory, refreshed
//! every second by reading the rows after the last one it saw (`refresh`). A request
//! never queries the database; an end therefore reaches other replicas within about a
//! second.
//!
//! The id, before base64url (no padding):
//!
//! ```text
//! format (1) = 1 | protocol version (1) | issued at, Unix ms (8, big endian)
//!   | nonce (16) | profile id length (1) | profile id | HMAC-SHA256 of all before (32)
//! ```
//!
//! It is authenticated, not encrypted: whoever sees an id (it travels in a header, like
//! the bearer token beside it) learns the profile id it is bound to, the negotiated
//! protocol version and when the session began. None of that grants anything — every
//! request is authenticated anew and the session must belong to the caller's profile —
//! and the profile id is no secret (clients send it as `X-Profile-ID`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use portcullis_domain::mcp_sessions::EndedSession;
use portcullis_domain::secrets::ServerSecret;
use portcullis_domain::store::Store;
use portcullis_domain::DomainError;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::RwLock;
use std::time::{Duration, Instant};

type HmacSha256 = Hmac<Sha256>;

/// How long a session lasts from `initialize`, however busy. Idle expiry would need every
/// request to write the session's last use where all replicas can read it; an absolute
/// lifetime is decided by the id alone. A day outlasts any agent's working session, and a
/// client whose session ends simply initializes again (the spec's answer to a 404).
pub const LIFETIME_MS: i64 = 24 * portcullis_domain::time::HOUR;

/// The id's layout version: a replica refuses layouts it does not know.
const FORMAT_V1: u8 = 1;
/// 128 random bits: two sessions of one profile begun in the same millisecond still
/// differ, and ids (hence ended hashes) never collide.
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 32;
/// Profile ids are 35 characters (`pf_` and a UUID); the bound leaves room, no more.
const MAX_PROFILE_ID: usize = 128;
const HEAD_LEN: usize = 1 + 1 + 8 + NONCE_LEN + 1;
const MAX_SEALED: usize = HEAD_LEN + MAX_PROFILE_ID + TAG_LEN;
/// The longest id we could have issued; anything longer is refused before decoding.
const MAX_ID_CHARS: usize = (MAX_SEALED * 4).div_ceil(3);

/// The key that seals session ids: one purpose, one key, derived from the server secret.
struct SealKey([u8; 32]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length, so this is never `Err`; a fresh key-less MAC
        // would only make every id fail to verify, never pass.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_mac())
    }
}

#[allow(clippy::expect_used)]
fn unreachable_mac() -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

/// Protocol versions as carried in an id. Codes are fixed forever: replicas of different
/// releases must read each other's ids.
fn version_code(version: &str) -> Option<u8> {
    match version {
        "2025-03-26" => Some(1),
        "2025-06-18" => Some(2),
        "2025-11-25" => Some(3),
        _ => None,
    }
}

fn version_of(code: u8) -> Option<&'static str> {
    match code {
        1 => Some("2025-03-26"),
        2 => Some("2025-06-18"),
        3 => Some("2025-11-25"),
        _ => None,
    }
}

/// A session a request named, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub protocol_version: &'static str,
    pub expires_at: i64,
    /// SHA-256 of the sealed bytes: how an end is recorded and looked up.
    fingerprint: [u8; 32],
}

/// Why a session id was not accepted: answered 404 so the client starts a new session.
/// Tampered, truncated, foreign, expired, ended and made-up ids are told apart nowhere,
/// so an answer reveals nothing about which check failed.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownSession;

/// A session that cannot be sealed: a profile id beyond the layout's bound or a version
/// without a code. Neither happens with ids this server makes.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsealable;

#[derive(Debug)]
pub enum EndError {
    /// Unknown, foreign, expired or already ended: 404.
    Unknown,
    /// The end could not be recorded, so it would not reach the other replicas.
    Store(DomainError),
}

/// Sealing and opening session ids, and the ends this replica knows of.
pub struct Sessions {
    key: SealKey,
    /// During a server-secret rotation, ids sealed before it stay valid until they expire.
    previous: Option<SealKey>,
    /// Hashes of ended sessions, with when each would have expired (to forget it then).
    ended: RwLock<HashMap<[u8; 32], i64>>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").field("ended", &self.ended_count()).finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(secret: &ServerSecret) -> Self {
        const PURPOSE: &str = "mcp-session-id/v1";
        Self {
            key: SealKey(secret.derive(PURPOSE)),
            previous: secret.derive_previous(PURPOSE).map(SealKey),
            ended: RwLock::default(),
        }
    }

    /// A new session id for `profile_id` at `protocol_version`, begun at `now`.
    pub fn start(&self, profile_id: &str, protocol_version: &str, now: i64) -> Result<String, Unsealable> {
        let code = version_code(protocol_version).ok_or(Unsealable)?;
        let profile = profile_id.as_bytes();
        let profile_len = u8::try_from(profile.len()).ok().filter(|n| usize::from(*n) <= MAX_PROFILE_ID);
        let profile_len = profile_len.ok_or(Unsealable)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(HEAD_LEN + profile.len() + TAG_LEN);
        sealed.push(FORMAT_V1);
        sealed.push(code);
        sealed.extend_from_slice(&now.to_be_bytes());
        sealed.extend_from_slice(&nonce);
        sealed.push(profile_len);
        sealed.extend_from_slice(profile);
        let mut mac = self.key.mac();
        mac.update(&sealed);
        sealed.extend_from_slice(&mac.finalize().into_bytes());
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The session `id` names, if it was sealed with our key, belongs to `profile_id`,
    /// has not expired at `now` and was not ended.
    pub fn resume(&self, id: &str, profile_id: &str, now: i64) -> Result<Session, UnknownSession> {
        let session = self.open(id, profile_id, now)?;
        if self.is_ended(&session.fingerprint) {
            return Err(UnknownSession);
        }
        Ok(session)
    }

    /// Verifies an id without consulting the ended set. The MAC is checked before any
    /// field is believed, in constant time (`verify_slice`).
    fn open(&self, id: &str, profile_id: &str, now: i64) -> Result<Session, UnknownSession> {
        // Bounded before decoding: a hostile header costs no allocation beyond this.
        if id.len() > MAX_ID_CHARS {
            return Err(UnknownSession);
        }
        let sealed = URL_SAFE_NO_PAD.decode(id).map_err(|_| UnknownSession)?;
        let tag_at = sealed.len().checked_sub(TAG_LEN).ok_or(UnknownSession)?;
        let (body, tag) = sealed.split_at_checked(tag_at).ok_or(UnknownSession)?;
        let verifies = |key: &SealKey| {
            let mut mac = key.mac();
            mac.update(body);
            mac.verify_slice(tag).is_ok()
        };
        if !verifies(&self.key) && !self.previous.as_ref().is_some_and(verifies) {
            return Err(UnknownSession);
        }

        let (&format, rest) = body.split_first().ok_or(UnknownSession)?;
        if format != FORMAT_V1 {
            return Err(UnknownSession);
        }
        let (&code, rest) = rest.split_first().ok_or(UnknownSession)?;
        let protocol_version = version_of(code).ok_or(UnknownSession)?;
        let (issued, rest) = rest.split_first_chunk::<8>().ok_or(UnknownSession)?;
        let issued_at = i64::from_be_bytes(*issued);
        let (_nonce, rest) = rest.split_first_chunk::<NONCE_LEN>().ok_or(UnknownSession)?;
        let (&len, bound_profile) = rest.split_first().ok_or(UnknownSession)?;
        if bound_profile.len() != usize::from(len) || bound_profile != profile_id.as_bytes() {
            return Err(UnknownSession);
        }
        let expires_at = issued_at.saturating_add(LIFETIME_MS);
        if now >= expires_at {
            return Err(UnknownSession);
        }
        Ok(Session { protocol_version, expires_at, fingerprint: Sha256::digest(&sealed).into() })
    }

    /// Ends the session `id` names on every replica: recorded in the store, known here at
    /// once, elsewhere at their next refresh. An id already ended anywhere is unknown.
    pub async fn end(&self, store: &Store, id: &str, profile_id: &str, now: i64) -> Result<(), EndError> {
        let session = self.resume(id, profile_id, now).map_err(|_| EndError::Unknown)?;
        let first = store
            .end_mcp_session(&session.fingerprint, profile_id, session.expires_at)
            .await
            .map_err(EndError::Store)?;
        self.learn(&[EndedSession { hash: session.fingerprint, expires_at: session.expires_at }], now);
        if first {
            Ok(())
        } else {
            Err(EndError::Unknown)
        }
    }

    fn is_ended(&self, fingerprint: &[u8; 32]) -> bool {
        self.ended.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(fingerprint)
    }

    fn ended_count(&self) -> usize {
        self.ended.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Adds ends to the set; those past their expiry are not worth a slot (the id is
    /// refused for its age anyway).
    fn learn(&self, ended: &[EndedSession], now: i64) {
        if ended.iter().all(|e| e.expires_at <= now) {
            return;
        }
        let mut set = self.ended.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for e in ended.iter().filter(|e| e.expires_at > now) {
            set.insert(e.hash, e.expires_at);
        }
    }

    /// Forgets ends of sessions that have expired since.
    pub fn forget_expired(&self, now: i64) {
        self.ended.write().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|_, expires_at| *expires_at > now);
    }

    /// Reads the ends recorded since `cursor`'s position and adds them to the set.
    /// Returns how many rows were read.
    pub async fn refresh(&self, store: &Store, cursor: &mut EndedCursor) -> Result<usize, DomainError> {
        let mut after = cursor.start(Instant::now());
        let mut read = 0usize;
        loop {
            let page = store.ended_mcp_sessions_after(after, REFRESH_PAGE).await?;
            self.learn(&page.sessions, store.now());
            read += page.sessions.len();
            let Some(last) = page.last_id else { break };
            after = last;
            cursor.saw(after);
            if !page.full {
                break;
            }
        }
        cursor.read_at(Instant::now());
        Ok(read)
    }
}

/// Ends past their expiry are deleted from the store this long after it: replicas' clocks
/// differ a little, and one whose clock runs behind must still find the row when it starts.
const PURGE_GRACE_MS: i64 = portcullis_domain::time::HOUR;
/// Refreshes between two purges of expired ends (one an hour).
const PURGE_EVERY: u32 = 3_600;
/// Less than the hour between a replica's purges, so its own next turn always finds the
/// period over, whatever the others' timers.
const PURGE_CLAIM_MS: i64 = 50 * portcullis_domain::time::MINUTE;

/// Reads every end recorded so far, then refreshes every second in the background (and
/// purges expired ends hourly) until the store closes.
pub async fn follow(sessions: std::sync::Arc<Sessions>, store: Store) -> Result<(), DomainError> {
    let mut cursor = EndedCursor::default();
    sessions.refresh(&store, &mut cursor).await?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since_purge = PURGE_EVERY;
        while !store.is_closed() {
            tick.tick().await;
            if let Err(e) = sessions.refresh(&store, &mut cursor).await {
                tracing::error!(error = %e, "ended MCP sessions not refreshed");
            }
            since_purge += 1;
            if since_purge >= PURGE_EVERY {
                since_purge = 0;
                let now = store.now();
                sessions.forget_expired(now);
                // Every replica forgets in its own memory; one of them deletes the rows
                // (the hourly jobs' claim, as for the audit retention purge).
                match store.claim_run("mcp_ended_sessions_purge", PURGE_CLAIM_MS).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "expired MCP session ends: cannot claim this hour's purge");
                        continue;
                    }
                }
                match store.purge_ended_mcp_sessions(now.saturating_sub(PURGE_GRACE_MS)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "expired MCP session ends purged"),
                    Err(e) => tracing::error!(error = %e, "expired MCP session ends not purged"),
                }
            }
        }
    });
    Ok(())
}

/// Rows per read of ended sessions; a backlog is read in several.
const REFRESH_PAGE: i64 = 1_000;

/// How long a row id stays "recent": rows above the last id seen this long ago are read
/// again on every refresh. Row ids are assigned when an insert begins, not when it
/// commits, so on PostgreSQL an end committed a moment after a higher one would be
/// passed over by a cursor that only moves forward. Re-reading a few seconds' worth of
/// rows (a handful; the set ignores repeats) catches any end whose insert took less than
/// this to commit. SQLite writes one transaction at a time, in id order.
const RECENT: Duration = Duration::from_secs(5);

/// Where a replica's reads of ended sessions start.
#[derive(Debug, Default)]
pub struct EndedCursor {
    /// The highest id seen at least `RECENT` ago: every id up to it has committed.
    settled: i64,
    /// The highest id seen by each recent read, oldest first.
    recent: VecDeque<(Instant, i64)>,
    /// The highest id seen by the read under way.
    highest: i64,
}

impl EndedCursor {
    fn start(&mut self, now: Instant) -> i64 {
        while let Some(&(at, id)) = self.recent.front() {
            if now.saturating_duration_since(at) < RECENT {
                break;
            }
            self.settled = self.settled.max(id);
            self.recent.pop_front();
        }
        self.settled
    }

    fn saw(&mut self, id: i64) {
        self.highest = self.highest.max(id);
    }

    fn read_at(&mut self, at: Instant) {
        // One entry per read whose highest id moved; reads that found nothing new add none.
        if self.recent.back().is_none_or(|&(_, id)| id < self.highest) && self.highest > self.settled {
            self.recent.push_back((at, self.highest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "pf_0193a1b2c3d4e5f60718293a4b5c6d7e";
    const T0: i64 = 1_750_000_000_000;

    fn sessions(secret: &str) -> Sessions {
        Sessions::new(&ServerSecret::parse(secret).unwrap())
    }

    fn ours() -> Sessions {
        sessions("0123456789abcdefghijklmnopqrstuvwxyz")
    }

    #[test]
    fn a_sealed_id_round_trips_on_any_holder_of_the_secret() {
        let (a, b) = (ours(), ours());
        for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
            let id = a.start(PROFILE, version, T0).unwrap();
            assert!(id.len() <= MAX_ID_CHARS && !id.contains('='), "{id}");
            assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{id}");
            let s = b.resume(&id, PROFILE, T0 + 1).unwrap();
            assert_eq!((s.protocol_version, s.expires_at), (version, T0 + LIFETIME_MS));
        }
        let (one, two) = (a.start(PROFILE, "2025-11-25", T0).unwrap(), a.start(PROFILE, "2025-11-25", T0).unwrap());
        assert_ne!(one, two, "the nonce makes ids of one profile and millisecond differ");
    }

    #[test]
    fn ids_sealed_before_a_secret_rotation_stay_valid_while_the_old_secret_is_accepted() {
        let old = "0123456789abcdefghijklmnopqrstuvwxyz";
        let new = ServerSecret::parse("zyxwvutsrqponmlkjihgfedcba9876543210").unwrap();
        let before = sessions(old).start(PROFILE, "2025-11-25", T0).unwrap();
        let rotating = Sessions::new(&new.clone().with_previous(ServerSecret::parse(old).unwrap()).unwrap());
        assert!(rotating.resume(&before, PROFILE, T0 + 1).is_ok());
        let after = rotating.start(PROFILE, "2025-11-25", T0).unwrap();
        assert!(sessions(old).resume(&after, PROFILE, T0 + 1).is_err(), "new ids are sealed with the new secret");
        assert!(Sessions::new(&new).resume(&after, PROFILE, T0 + 1).is_ok());
        assert!(Sessions::new(&new).resume(&before, PROFILE, T0 + 1).is_err(), "the old secret dropped: refused");
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let s = ours();
        let id = s.start(PROFILE, "2025-11-25", T0).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&id).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                let bad = URL_SAFE_NO_PAD.encode(&bad);
                assert_eq!(s.resume(&bad, PROFILE, T0), Err(UnknownSession), "byte {i} bit {bit}");
            }
        }
        for n in 0..raw.len() {
            let cut = URL_SAFE_NO_PAD.encode(&raw[..n]);
            assert_eq!(s.resume(&cut, PROFILE, T0), Err(UnknownSession), "{n} bytes");
            assert_eq!(s.resume(&id[..n.min(id.len())], PROFILE, T0), Err(UnknownSession), "{n} chars");
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert_eq!(s.resume(&URL_SAFE_NO_PAD.encode(&longer), PROFILE, T0), Err(UnknownSession));
        // The same bytes in another spelling (padding, the standard alphabet) are not the id.
        assert!(s.resume(&format!("{id}="), PROFILE, T0).is_err());
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&raw);
        if standard != id {
            assert!(s.resume(&standard, PROFILE, T0).is_err());
        }
        // Nor does a last character that differs only in the bits base64 leaves unused.
        let (head, last) = id.split_at(id.len() - 1);
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars() {
            if c.to_string() != last {
                assert_eq!(s.resume(&format!("{head}{c}"), PROFILE, T0), Err(UnknownSession), "last char {c}");
            }
        }
    }

    #[test]
    fn another_secret_or_another_profile_does_not_open_an_id() {
        let id = ours().start(PROFILE, "2025-11-25", T0).unwrap();
        let other = sessions("zyxwvutsrqponmlkjihgfedcba9876543210");
        assert_eq!(other.resume(&id, PROFILE, T0), Err(UnknownSession));
        assert_eq!(ours().resume(&id, "pf_0193a1b2c3d4e5f60718293a4b5c6d7f", T0), Err(UnknownSession));
        assert_eq!(ours().resume(&id, "", T0), Err(UnknownSession));
        assert_eq!(ours().resume(&id, &format!("{PROFILE}x"), T0), Err(UnknownSession));
        // An id the other secret sealed for the same profile, spliced with our layout: the
        // MAC decides, not the fields.
        let theirs = other.start(PROFILE, "2025-11-25", T0).unwrap();
        assert_eq!(ours().resume(&theirs, PROFILE, T0), Err(UnknownSession));
    }

    #[test]
    fn an_id_expires_exactly_at_the_end_of_its_lifetime() {
        let s = ours();
        let id = s.start(PROFILE, "2025-11-25", T0).unwrap();
        assert!(s.resume(&id, PROFILE, T0 + LIFETIME_MS - 1).is_ok());
        assert_eq!(s.resume(&id, PROFILE, T0 + LIFETIME_MS), Err(UnknownSession));
        assert_eq!(s.resume(&id, PROFILE, i64::MAX), Err(UnknownSession));
        // Begun at the far end of time: no overflow, no panic.
        let late = s.start(PROFILE, "2025-11-25", i64::MAX - 5).unwrap();
        assert!(s.resume(&late, PROFILE, i64::MAX - 1).is_ok());
        assert_eq!(s.resume(&late, PROFILE, i64::MAX), Err(UnknownSession));
    }

    #[test]
    fn hostile_input_is_refused_without_a_panic() {
        let s = ours();
        let huge = "A".repeat(1 << 20);
        let cases = [
            "",
            "made-up",
            "====",
            "%%%%",
            "\u{1F600}\u{1F600}",
            "A",
            "AA",
            "AAA",
            &"A".repeat(MAX_ID_CHARS),
            &"A".repeat(MAX_ID_CHARS + 1),
            &huge,
            &"_".repeat(100),
        ];
        for c in cases {
            assert_eq!(s.resume(c, PROFILE, T0), Err(UnknownSession), "{}", c.chars().take(20).collect::<String>());
        }
        // Well-formed base64 of every length up to the bound, with a wrong MAC.
        for n in 0..=MAX_SEALED {
            let id = URL_SAFE_NO_PAD.encode(vec![1u8; n]);
            assert_eq!(s.resume(&id, PROFILE, T0), Err(UnknownSession), "{n} bytes");
        }
    }

    #[test]
    fn ids_that_cannot_be_sealed_are_refused_at_start() {
        let s = ours();
        assert_eq!(s.start(PROFILE, "2026-07-28", T0), Err(Unsealable));
        assert_eq!(s.start(&"p".repeat(MAX_PROFILE_ID + 1), "2025-11-25", T0), Err(Unsealable));
        let longest = "p".repeat(MAX_PROFILE_ID);
        let id = s.start(&longest, "2025-11-25", T0).unwrap();
        assert!(id.len() <= MAX_ID_CHARS);
        assert!(s.resume(&id, &longest, T0).is_ok());
    }

    #[test]
    fn an_ended_id_is_unknown_until_it_would_have_expired_then_forgotten() {
        let s = ours();
        let id = s.start(PROFILE, "2025-11-25", T0).unwrap();
        let session = s.resume(&id, PROFILE, T0).unwrap();
        let other = s.start(PROFILE, "2025-11-25", T0).unwrap();
        s.learn(&[EndedSession { hash: session.fingerprint, expires_at: session.expires_at }], T0);
        assert_eq!(s.resume(&id, PROFILE, T0 + 1), Err(UnknownSession));
        assert!(s.resume(&other, PROFILE, T0 + 1).is_ok(), "only that session ended");
        s.forget_expired(T0 + 1);
        assert_eq!(s.ended_count(), 1, "kept while the id could still be used");
        s.forget_expired(session.expires_at);
        assert_eq!(s.ended_count(), 0);
        // An end learnt after its expiry takes no room.
        s.learn(&[EndedSession { hash: session.fingerprint, expires_at: session.expires_at }], session.expires_at);
        assert_eq!(s.ended_count(), 0);
    }

    #[test]
    fn the_cursor_rereads_recent_ids_until_they_settle() {
        let t = Instant::now();
        let mut c = EndedCursor::default();
        assert_eq!(c.start(t), 0);
        c.saw(7);
        c.read_at(t);
        assert_eq!(c.start(t + Duration::from_secs(1)), 0, "recent rows are read again");
        c.saw(9);
        c.read_at(t + Duration::from_secs(1));
        assert_eq!(c.start(t + RECENT), 7);
        assert_eq!(c.start(t + RECENT + Duration::from_secs(1)), 9);
        c.read_at(t + RECENT + Duration::from_secs(1));
        assert!(c.recent.is_empty(), "a read that found nothing new adds nothing");
    }
}
