//! Reading a request body whole, within a bound: for `/mcp` and `/oauth`, whose bodies
//! are small JSON or forms. What was read is counted for the audit row either way.

use axum::body::{Body, Bytes};
use futures_util::StreamExt;

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
