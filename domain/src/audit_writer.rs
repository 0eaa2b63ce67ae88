//! One audit row per gateway request, written off the request path.
//!
//! Requests hand their event to a bounded queue; one writer task drains it and inserts
//! each batch inside a single transaction (and records when each credential was last
//! used). When the queue is full the gateway either waits for room (back-pressure, the
//! default) or refuses the request with 503 (fail closed). No event is ever dropped:
//! a failed batch is retried until it is written, and shutdown drains the queue.

use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::{Backend, Store};

/// What the gateway knows about one request when it answers.
#[derive(Debug, Clone, Default)]
pub struct RequestEvent {
    pub request_id: String,
    pub occurred_at: i64,
    pub channel: &'static str,
    /// The MCP tool that made the request (`execute_endpoint`, …); `None` for REST.
    pub tool: Option<String>,
    pub client_id: Option<String>,
    pub profile_id: Option<String>,
    pub client_type: Option<&'static str>,
    pub credential_id: Option<String>,
    pub product: Option<String>,
    pub endpoint: Option<String>,
    pub method: String,
    /// The path as routed, never with a credential in it.
    pub path: String,
    pub status: u16,
    pub decision: &'static str,
    pub reason: &'static str,
    pub latency_us: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The request waits for room in the queue.
    BackPressure,
    /// The request is refused with 503 rather than wait.
    FailClosed,
}

/// The queue was full and the gateway is configured to fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditUnavailable;

#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<RequestEvent>,
    when_full: WhenFull,
}

const BATCH: usize = 500;

impl AuditSink {
    /// Starts the writer. It stops, after writing everything queued, once every
    /// `AuditSink` clone has been dropped.
    pub fn start(store: Store, capacity: usize, when_full: WhenFull) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = tokio::spawn(write_loop(store, rx));
        (Self { tx, when_full }, handle)
    }

    pub async fn record(&self, event: RequestEvent) -> Result<(), AuditUnavailable> {
        match self.when_full {
            WhenFull::BackPressure => self.tx.send(event).await.map_err(|_| AuditUnavailable),
            WhenFull::FailClosed => self.tx.try_send(event).map_err(|_| AuditUnavailable),
        }
    }

    /// Whether the queue has room now: the gateway checks it before forwarding, so a
    /// fail-closed refusal happens before the upstream is called.
    pub fn has_room(&self) -> bool {
        self.when_full == WhenFull::BackPressure || self.tx.capacity() > 0
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<RequestEvent>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut delay = Duration::from_millis(50);
        while let Err(e) = store.insert_request_events(&batch).await {
            tracing::error!(error = %e, rows = batch.len(), "audit batch not written; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        // A partial batch means the queue ran dry: rather than one transaction per
        // request at low rates, let rows gather for a moment. Requests never wait for
        // this; only the rows' arrival in the table does.
        if batch.len() < BATCH {
            tokio::time::sleep(LINGER).await;
        }
        batch.clear();
    }
}

/// How long the writer lets rows gather after a partial batch.
const LINGER: Duration = Duration::from_millis(5);

/// The columns of one request row, in the order `insert_request_events` binds them.
const REQUEST_COLUMNS: [&str; 20] = [
    "occurred_at",
    "request_id",
    "channel",
    "client_id",
    "profile_id",
    "client_type",
    "credential_id",
    "product",
    "endpoint",
    "method",
    "path",
    "status",
    "decision",
    "reason",
    "latency_us",
    "bytes_in",
    "bytes_out",
    "client_ip",
    "user_agent",
    "tool",
];

/// Rows per `INSERT`: one statement per row made the SQLite worker thread hand off
/// every row (a sixth of the gateway's CPU at saturation, perf); 40 rows keep a
/// statement's 800 parameters far under both databases' limits.
const ROWS_PER_INSERT: usize = 40;

/// `INSERT … VALUES (…), (…)` for `rows` rows. SQLite gets anonymous `?` placeholders:
/// with numbered ones it looks each name up in a list, and 800 of them made binding
/// quadratic (a quarter of the CPU, perf). PostgreSQL needs `$n`.
fn insert_sql(backend: Backend, rows: usize) -> String {
    let n = REQUEST_COLUMNS.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=n)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", r * n + c),
                })
                .collect();
            format!("({}, 'request')", params.join(", "))
        })
        .collect();
    format!("INSERT INTO audit_events ({}, action) VALUES {}", REQUEST_COLUMNS.join(", "), values.join(", "))
}

impl Store {
    async fn insert_request_events(&self, events: &[RequestEvent]) -> crate::error::Result<()> {
        let mut tx = self.begin().await?;
        let mut last_used: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        // (profile, product slug) → newest allowed request: when each grant was last used.
        let mut grant_used: std::collections::HashMap<(&str, &str), i64> = std::collections::HashMap::new();
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(self.backend, chunk.len());
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(e.occurred_at)
                    .bind(&e.request_id)
                    .bind(e.channel)
                    .bind(&e.client_id)
                    .bind(&e.profile_id)
                    .bind(e.client_type)
                    .bind(&e.credential_id)
                    .bind(&e.product)
                    .bind(&e.endpoint)
                    .bind(&e.method)
                    .bind(&e.path)
                    .bind(i64::from(e.status))
                    .bind(e.decision)
                    .bind(e.reason)
                    .bind(e.latency_us)
                    .bind(e.bytes_in)
                    .bind(e.bytes_out)
                    .bind(&e.client_ip)
                    .bind(&e.user_agent)
                    .bind(&e.tool);
                if let Some(c) = &e.credential_id {
                    let t = last_used.entry(c).or_insert(e.occurred_at);
                    *t = (*t).max(e.occurred_at);
                }
                if let (Some(profile), Some(product), "allowed") = (&e.profile_id, &e.product, e.decision) {
                    let t = grant_used.entry((profile, product)).or_insert(e.occurred_at);
                    *t = (*t).max(e.occurred_at);
                }
            }
            query.execute(&mut *tx).await?;
        }
        for (credential, at) in last_used {
            sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
                .bind(at)
                .bind(credential)
                .execute(&mut *tx)
                .await?;
        }
        for ((profile, product), at) in grant_used {
            sqlx::query(
                "UPDATE grants SET last_used_at = $1
                 WHERE profile_id = $2 AND status = 'approved' AND product_id IN (SELECT id FROM products WHERE slug = $3)
                   AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(at)
            .bind(profile)
            .bind(product)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
