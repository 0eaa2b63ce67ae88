//! Request bodies within bounds, counted for the audit row: read whole for `/mcp` and
//! `/oauth` (small JSON and forms), streamed through for `/gw`.

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the bound: refused with 413, without reading the rest.
    TooLarge,
    /// The caller stopped sending mid-body.
    Broken,
}

/// The body, if it fits in `max` bytes, and how many bytes were read.
pub async fn read(body: Body, declared: Option<u64>, max: usize) -> (Result<Bytes, BodyError>, usize) {
    if declared.is_some_and(|n| n > max as u64) {
        return (Err(BodyError::TooLarge), 0);
    }
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return (Err(BodyError::Broken), out.len()) };
        if out.len() + chunk.len() > max {
            return (Err(BodyError::TooLarge), out.len() + chunk.len());
        }
        out.extend_from_slice(&chunk);
    }
    let n = out.len();
    (Ok(Bytes::from(out)), n)
}

/// The `Content-Length` a request declares.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Bytes read from a caller's request body so far, shared with the stream that reads it,
/// and whether the body went past its limit.
#[derive(Clone, Default)]
pub struct BytesIn(Arc<(AtomicU64, AtomicBool)>);

impl BytesIn {
    fn add(&self, n: usize) -> u64 {
        self.0 .0.fetch_add(n as u64, Ordering::Relaxed) + n as u64
    }

    pub fn get(&self) -> i64 {
        i64::try_from(self.0 .0.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
    }

    pub fn over_limit(&self) -> bool {
        self.0 .1.load(Ordering::Relaxed)
    }
}

/// A caller's body on its way upstream, counted, and cut off with an error past `max`
/// bytes (which ends the upstream exchange; the gateway answers 413).
pub fn counted(body: Body, count: BytesIn, max: u64) -> reqwest::Body {
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if count.add(chunk.len()) > max {
            count.0 .1.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body over the gateway's limit"));
        }
        Ok(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}
