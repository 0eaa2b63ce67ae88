//! The HTTP side of the audit trail: the row every `/gw`, `/mcp` and `/oauth` request
//! starts with, and the two ways a row is finished with its answer.
//!
//! - [`answer`]: for answers held in memory (refusals, OAuth, MCP): the row takes the
//!   status and the body's length, and under committed durability the answer waits for
//!   the row's commit.
//! - [`AuditedBody`]: for upstream answers streamed through the gateway: the row is
//!   written when the last byte has gone out, with the bytes counted, or — if the caller
//!   goes away first — as `499 client_closed_request` with the upstream's status.

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use portcullis_domain::audit_event::RequestEvent;
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::audit_writer::PendingRow;
use portcullis_domain::model::{Reason, RequestChannel};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::body::BytesIn;

/// A new row for a request as it arrived: the caller's address and user agent (capped
/// and made storable like everything a caller sends).
pub fn event(
    channel: RequestChannel,
    now: i64,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    client: IpAddr,
) -> RequestEvent {
    let mut e = RequestEvent::new(channel, now, method.as_str(), path);
    e.client_ip = Some(AuditText::new(&client.to_string(), cap::ADDRESS));
    e.user_agent =
        headers.get(axum::http::header::USER_AGENT).map(|v| AuditText::from_bytes(v.as_bytes(), cap::USER_AGENT));
    e.trace_id = Some(AuditText::new(&crate::trace::Trace::of(headers).trace_id, cap::ID));
    e
}

/// Finishes `row` with an answer whose body is in memory, and hands the answer back once
/// the row is as durable as the server is configured to make it. The row keeps a status
/// already set (an MCP tool's own, say); otherwise it takes the answer's.
pub async fn answer(mut row: PendingRow, response: Response) -> Response {
    if row.event.status == 0 {
        row.event.status = response.status().as_u16();
    }
    row.event.bytes_out = exact_len(response.body());
    row.finish().wait().await;
    response
}

pub fn exact_len(body: &Body) -> i64 {
    body.size_hint().exact().and_then(|n| i64::try_from(n).ok()).unwrap_or(0)
}

/// An upstream answer on its way to the caller, carrying the request's row.
pub struct AuditedBody {
    inner: Body,
    row: Option<PendingRow>,
    sent: u64,
    /// The answer's `Content-Length`, if it has one: the connection stops polling a body
    /// once that many bytes are out, so reaching it is how a whole answer is recognised.
    declared: Option<u64>,
    bytes_in: BytesIn,
}

impl AuditedBody {
    /// `row` already holds the status the caller is answered with and the upstream's.
    pub fn new(inner: Body, declared: Option<u64>, row: PendingRow, bytes_in: BytesIn) -> Self {
        Self { inner, row: Some(row), sent: 0, declared, bytes_in }
    }

    fn all_sent(&self) -> bool {
        self.inner.is_end_stream() || self.declared.is_some_and(|n| self.sent >= n)
    }

    fn counts(&mut self) -> Option<PendingRow> {
        let mut row = self.row.take()?;
        row.event.bytes_out = i64::try_from(self.sent).unwrap_or(i64::MAX);
        row.event.bytes_in = self.bytes_in.get();
        Some(row)
    }

    /// The whole answer has been handed to the connection.
    fn complete(&mut self) {
        if let Some(row) = self.counts() {
            // Streamed answers finish only under queued durability (see the gateway).
            let _ = row.finish();
        }
    }

    /// The upstream's body broke off: the caller got a cut answer.
    fn broken(&mut self) {
        if let Some(mut row) = self.counts() {
            row.event.status = 502;
            row.event.reason = Reason::UpstreamUnavailable;
            let _ = row.finish();
        }
    }
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if this.all_sent() {
                    this.complete();
                }
            }
            Poll::Ready(None) => this.complete(),
            Poll::Ready(Some(Err(_))) => this.broken(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if self.all_sent() {
            // Everything was sent, though the last poll never came: the answer is whole.
            self.complete();
        }
        // Otherwise the row's own drop records that the caller went away (499), with
        // the upstream's status it already holds.
        let _ = self.counts();
    }
}
