//! The keys of trusted issuers that publish a JWKS URL: fetched over https, cached, and
//! fetched again only at a bounded rate, so that neither a flood of tokens naming keys
//! that do not exist nor a slow issuer can turn the gateway into its load generator.
//!
//! - The first token of an issuer waits for its keys (one fetch, however many callers).
//! - A token naming a `kid` the cached set lacks may be a rotation: the keys are fetched
//!   again, at most once per `min_interval` per issuer; within it, the token is refused.
//! - Keys older than [`REFRESH_AFTER`] are fetched again in the background while the
//!   cached ones keep serving.
//! - A fetch that fails keeps the last good keys (the issuer's outage is not ours).
//!
//! - A token that verified is remembered by its digest, as the gateway's own are: a
//!   signature check per token rather than per request. Its expiry is checked on every
//!   request, and it is verified afresh once its issuer no longer publishes the key
//!   that signed it (or the issuer was disabled and registered again).
//!
//! The client is the upstreams' default TLS (system roots plus `--upstream-ca-file`),
//! https only, no redirects, a timeout, and a cap on the document's size.

use portcullis_domain::enforcement::{
    parse_jwks, verify_external, ExternalError, ExternalToken, IssuerEntry, IssuerKeySet, IssuerKeys, MAX_JWKS_BYTES,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Cached keys are fetched again in the background once this old.
pub const REFRESH_AFTER: Duration = Duration::from_secs(600);
/// A fetch gives up after this long; callers waiting for it are refused.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct IssuerKeyCache(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    /// Fetches of one issuer's keys are at least this far apart.
    min_interval: Duration,
    /// By issuer id. Read-locked per request, looked up without allocating; written
    /// once per issuer, and again when its URL changes (which starts afresh).
    issuers: RwLock<HashMap<String, Arc<Cached>>>,
    /// Verified tokens by the SHA-256 of their text: the issuer's id and what it said.
    verified: moka::sync::Cache<[u8; 32], Arc<(String, Arc<ExternalToken>)>>,
}

#[derive(Default)]
struct Cached {
    /// The URL these keys come from.
    url: String,
    /// The last good keys, and when they were fetched.
    keys: Mutex<Option<(Arc<IssuerKeySet>, Instant)>>,
    /// When the last fetch started, good or not: the rate bound.
    attempted: Mutex<Option<Instant>>,
    /// One fetch at a time; whoever waits for it uses what it brought.
    fetching: tokio::sync::Mutex<()>,
}

/// Whether the caller needs keys it has not seen (a `kid` the cached set lacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Cached,
    Newer,
}

impl IssuerKeyCache {
    pub fn new(builder: reqwest::ClientBuilder, min_interval: Duration) -> Result<Self, reqwest::Error> {
        let http = builder
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()?;
        // A trusted issuer's token may live longer than ours; an hour in the cache, then
        // one signature check again.
        let verified =
            moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(3600)).build();
        Ok(Self(Arc::new(Inner { http, min_interval, issuers: RwLock::new(HashMap::new()), verified })))
    }

    /// Verifies a token of `issuer` with its cached keys; one naming a key the cache
    /// lacks is checked again with newer keys, when the rate bound allows a fetch. The
    /// gateway and the token endpoint (a subject token to exchange) both check here.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &IssuerEntry,
        now: i64,
    ) -> Result<Arc<ExternalToken>, ExternalError> {
        let digest = digest(token);
        let keys = self.keys(issuer, Need::Cached).await;
        if let Some(verified) = self.hit(&digest, issuer, &keys) {
            verified.check_time(now)?;
            return Ok(verified);
        }
        let verified = match verify_external(token, issuer, &keys.keys, now) {
            Err(ExternalError::UnknownKey) => {
                let keys = self.keys(issuer, Need::Newer).await;
                verify_external(token, issuer, &keys.keys, now)
            }
            other => other,
        }?;
        let verified = Arc::new(verified);
        self.0.verified.insert(digest, Arc::new((issuer.id.clone(), verified.clone())));
        Ok(verified)
    }

    /// A token of `issuer` this cache verified before and that has not expired, without
    /// fetching or checking anything: who a refused request named, never whether to let
    /// one through.
    pub fn remembered(&self, token: &str, issuer: &IssuerEntry, now: i64) -> Option<Arc<ExternalToken>> {
        let keys = match &issuer.keys {
            IssuerKeys::Static(set) => set.clone(),
            IssuerKeys::Remote(url) => self.cached(&issuer.id, url).current()?.0,
        };
        self.hit(&digest(token), issuer, &keys).filter(|v| v.check_time(now).is_ok())
    }

    /// A remembered token, while it is this issuer's (not an earlier registration's) and
    /// the issuer still publishes the key that signed it.
    fn hit(&self, digest: &[u8; 32], issuer: &IssuerEntry, keys: &IssuerKeySet) -> Option<Arc<ExternalToken>> {
        let hit = self.0.verified.get(digest)?;
        let (issuer_id, verified) = &*hit;
        let published = keys.keys.iter().any(|k| k.thumbprint == verified.key);
        (*issuer_id == issuer.id && published).then(|| verified.clone())
    }

    /// The issuer's keys: pasted ones as they are; fetched ones from the cache, fetched
    /// (again) when there are none yet or the caller needs newer ones and the rate bound
    /// allows. Empty when none could be had: every token is then refused.
    async fn keys(&self, issuer: &IssuerEntry, need: Need) -> Arc<IssuerKeySet> {
        let url = match &issuer.keys {
            IssuerKeys::Static(set) => return set.clone(),
            IssuerKeys::Remote(url) => url,
        };
        let cached = self.cached(&issuer.id, url);
        let current = cached.current();
        match (&current, need) {
            (Some((keys, at)), Need::Cached) => {
                if at.elapsed() >= REFRESH_AFTER && cached.may_attempt(self.0.min_interval) {
                    let (this, cached, url, id) = (self.clone(), cached.clone(), url.clone(), issuer.id.clone());
                    tokio::spawn(async move { this.fetch(&cached, &url, &id, None).await });
                }
                keys.clone()
            }
            _ => {
                let seen = current.as_ref().map(|(_, at)| *at);
                self.fetch(&cached, url, &issuer.id, Some(seen)).await;
                cached.current().map(|(keys, _)| keys).unwrap_or_default()
            }
        }
    }

    fn cached(&self, id: &str, url: &str) -> Arc<Cached> {
        let found = self.0.issuers.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        match found {
            Some(cached) if cached.url == url => cached,
            _ => {
                let mut issuers = self.0.issuers.write().unwrap_or_else(|e| e.into_inner());
                let entry = issuers.entry(id.to_owned()).or_default();
                if entry.url != url {
                    *entry = Arc::new(Cached { url: url.to_owned(), ..Cached::default() });
                }
                entry.clone()
            }
        }
    }

    /// Fetches the keys unless the rate bound forbids it. `waited_for`: the fetch time of
    /// the keys the caller found wanting; if another fetch brought newer ones while it
    /// waited for the lock, it uses those.
    async fn fetch(&self, cached: &Cached, url: &str, issuer: &str, waited_for: Option<Option<Instant>>) {
        let _one = cached.fetching.lock().await;
        if let Some(seen) = waited_for {
            if cached.current().map(|(_, at)| at) != seen {
                return;
            }
        }
        if !cached.try_attempt(self.0.min_interval) {
            return;
        }
        match self.download(url).await {
            Ok(set) => {
                tracing::info!(issuer, keys = set.keys.len(), skipped = set.skipped, "fetched a trusted issuer's keys");
                *cached.keys.lock().unwrap_or_else(|e| e.into_inner()) = Some((Arc::new(set), Instant::now()));
            }
            Err(why) => {
                tracing::warn!(issuer, url, %why, "could not fetch a trusted issuer's keys; keeping the last good ones")
            }
        }
    }

    async fn download(&self, url: &str) -> Result<IssuerKeySet, String> {
        let body = portcullis_app::ssr::fetch_capped(&self.0.http, url, MAX_JWKS_BYTES).await?;
        let text = String::from_utf8(body).map_err(|_| "not UTF-8".to_owned())?;
        parse_jwks(&text).map_err(|e| e.0)
    }

    /// The client that fetches issuers' keys, for reading their metadata too.
    pub fn http(&self) -> reqwest::Client {
        self.0.http.clone()
    }
}

impl Cached {
    fn current(&self) -> Option<(Arc<IssuerKeySet>, Instant)> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn may_attempt(&self, min_interval: Duration) -> bool {
        self.attempted.lock().unwrap_or_else(|e| e.into_inner()).is_none_or(|at| at.elapsed() >= min_interval)
    }

    /// Takes the next fetch slot if the rate bound allows.
    fn try_attempt(&self, min_interval: Duration) -> bool {
        let mut attempted = self.attempted.lock().unwrap_or_else(|e| e.into_inner());
        if attempted.is_some_and(|at| at.elapsed() < min_interval) {
            return false;
        }
        *attempted = Some(Instant::now());
        true
    }
}

/// What the verified tokens are remembered by.
fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}
