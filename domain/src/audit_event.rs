//! One request's audit row, as the gateway, MCP and OAuth fill it in and the writer
//! stores it (`audit_writer`), or spills it at shutdown (`audit_spill`).

use serde::{Deserialize, Serialize};

use crate::audit_text::{cap, AuditText};
use crate::model::{ClientKind, Decision, Reason, RequestChannel};

/// What is known about one request when its row is written. Every caller-controlled
/// string is an [`AuditText`], so nothing unstorable or unbounded can reach the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestEvent {
    pub request_id: String,
    pub occurred_at: i64,
    pub channel: RequestChannel,
    /// The MCP tool called (`execute_endpoint`, …), or the JSON-RPC method of another
    /// MCP message (`initialize`, `tools/list`, …); `None` for REST and OAuth.
    pub tool: Option<AuditText>,
    /// The authenticated client, profile and credential: never taken from what a caller
    /// merely claims.
    pub client_id: Option<AuditText>,
    pub profile_id: Option<AuditText>,
    pub client_type: Option<ClientKind>,
    pub credential_id: Option<AuditText>,
    /// The client id a refused request named (a failed token request, say): kept apart
    /// from `client_id` so nobody can write into another client's record.
    pub attempted_client_id: Option<AuditText>,
    /// The person on whose behalf the request was made (portal Test access).
    pub actor_user_id: Option<AuditText>,
    pub product: Option<AuditText>,
    pub endpoint: Option<AuditText>,
    pub method: AuditText,
    /// The path as routed (for an authorized call, the canonical path forwarded), never
    /// with a credential in it.
    pub path: AuditText,
    /// What the caller was answered; 499 when it went away before the whole answer.
    pub status: u16,
    /// What the upstream answered, when the request reached one.
    pub upstream_status: Option<u16>,
    pub decision: Decision,
    pub reason: Reason,
    pub latency_us: i64,
    /// Bytes read from the caller and sent to it, counted as they pass.
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub client_ip: Option<AuditText>,
    pub user_agent: Option<AuditText>,
    /// The W3C trace the request belongs to (the caller's, or one started for it).
    #[serde(default)]
    pub trace_id: Option<AuditText>,
    /// The key the request proved it holds (`dpop:<thumbprint>`), when its token is
    /// bound to one; at the token endpoint, the key the issued token is bound to.
    #[serde(default)]
    pub sender_key: Option<AuditText>,
    /// The task a per-task token serves (RFC 9396 `portcullis_task`): the audit trail
    /// groups a task's requests by it.
    #[serde(default)]
    pub task_id: Option<AuditText>,
    /// A delegated token's subject (RFC 8693): the client on whose behalf it acts.
    #[serde(default)]
    pub subject_id: Option<AuditText>,
    /// A delegated token's actors, the acting client first, space-separated.
    #[serde(default)]
    pub actor_chain: Option<AuditText>,
    /// Time from arrival until the request left for its upstream (what the gateway adds),
    /// and the upstream's time to answer with headers (what it waits for). For metrics;
    /// not stored with the row.
    #[serde(default)]
    pub forwarded_after_us: Option<i64>,
    #[serde(default)]
    pub upstream_us: Option<i64>,
}

/// The status nginx made the convention for "client closed request".
pub const CLIENT_CLOSED_STATUS: u16 = 499;
/// The path of a row stored in reduced form.
pub const REDUCED_PATH: &str = "[reduced: the database refused this row as recorded]";

/// An empty row, refused until decided; nothing allocated, no id. What a delivered row
/// leaves behind in its `PendingRow`, and the base of every new one.
impl Default for RequestEvent {
    fn default() -> Self {
        Self {
            request_id: String::new(),
            occurred_at: 0,
            channel: RequestChannel::Rest,
            tool: None,
            client_id: None,
            profile_id: None,
            client_type: None,
            credential_id: None,
            attempted_client_id: None,
            actor_user_id: None,
            product: None,
            endpoint: None,
            method: AuditText::default(),
            path: AuditText::default(),
            status: 0,
            upstream_status: None,
            decision: Decision::Refused,
            reason: Reason::Undecided,
            latency_us: 0,
            bytes_in: 0,
            bytes_out: 0,
            client_ip: None,
            user_agent: None,
            trace_id: None,
            sender_key: None,
            task_id: None,
            subject_id: None,
            actor_chain: None,
            forwarded_after_us: None,
            upstream_us: None,
        }
    }
}

impl RequestEvent {
    /// A row for a new request on `channel`, with a fresh request id.
    pub fn new(channel: RequestChannel, occurred_at: i64, method: &str, path: &str) -> Self {
        Self {
            request_id: uuid::Uuid::now_v7().to_string(),
            occurred_at,
            channel,
            method: AuditText::new(method, cap::METHOD),
            path: AuditText::new(path, cap::PATH),
            ..Self::default()
        }
    }

    pub fn allowed(&mut self) {
        self.decision = Decision::Allowed;
        self.reason = Reason::Allowed;
    }

    pub fn refused(&mut self, reason: Reason) {
        self.decision = Decision::Refused;
        self.reason = reason;
    }

    /// What is kept of a row the database refused: who, when, the outcome and why, but
    /// none of the free text that may have been the trouble.
    pub(crate) fn reduced(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            occurred_at: self.occurred_at,
            channel: self.channel,
            client_id: self.client_id.clone(),
            profile_id: self.profile_id.clone(),
            client_type: self.client_type,
            credential_id: self.credential_id.clone(),
            actor_user_id: self.actor_user_id.clone(),
            method: AuditText::new(self.method.as_str().get(..8).unwrap_or("?"), cap::METHOD),
            path: AuditText::new(REDUCED_PATH, cap::PATH),
            status: self.status,
            upstream_status: self.upstream_status,
            decision: self.decision,
            reason: self.reason,
            latency_us: self.latency_us,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            ..Self::default()
        }
    }
}
