//! One audit row per gateway, MCP and OAuth request, written off the request path.
//!
//! A request first **reserves** its row: a slot in a bounded queue, held from before the
//! request is decided or forwarded until its row is handed over. Back-pressure (the
//! default) waits for a slot; fail-closed refuses with 503 when there is none, before
//! anything is forwarded — so an executed request always has a slot for its row. The
//! reservation is a [`PendingRow`]: finishing it queues the row, and dropping it
//! unfinished (the caller hung up, the handler was cancelled) still queues the row,
//! marked `499 client_closed_request`. No code path can lose a reserved row.
//!
//! One writer task drains the queue and inserts each batch in one transaction. What the
//! database refuses for trouble that may pass (a lost connection, a lock, a full disk)
//! is retried with bounded backoff, whole; rows are keyed by request id, so a batch whose
//! commit answer was lost is not written twice. What the database refuses for a row's
//! content is split out by halving the batch, and that row is written in a reduced form.
//! At shutdown the writer has a deadline; rows it could not write by then go to the
//! spill file (`audit_spill`), replayed at the next start.
//!
//! Durability: with `Durability::Queued` a response leaves once its row is queued (a
//! crash loses the rows still in the queue); with `Durability::Committed` it leaves only
//! after its row's batch has committed (group commit), so no answered request's row is
//! lost to a crash.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::audit_event::{RequestEvent, CLIENT_CLOSED_STATUS};
use crate::audit_spill::Spill;
use crate::audit_text::AuditText;
use crate::model::{ClientKind, Decision, Reason};
use crate::store::{Backend, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The request waits for room in the queue.
    BackPressure,
    /// The request is refused with 503 rather than wait.
    FailClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A response leaves once its row is queued.
    Queued,
    /// A response leaves once its row's batch has committed.
    Committed,
}

#[derive(Clone)]
pub struct AuditConfig {
    /// Rows that may be reserved or waiting at once: requests in flight plus rows queued.
    pub capacity: usize,
    pub when_full: WhenFull,
    pub durability: Durability,
    /// Where rows go that cannot be written before the process ends.
    pub spill_path: std::path::PathBuf,
    /// Shown every row as it leaves its request, complete (metrics count from it, so they
    /// count exactly what the trail records).
    pub observer: Option<Observer>,
}

impl std::fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditConfig")
            .field("capacity", &self.capacity)
            .field("when_full", &self.when_full)
            .field("durability", &self.durability)
            .field("spill_path", &self.spill_path)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// See [`AuditConfig::observer`]. Runs on the request's task: it must be quick.
pub type Observer = Arc<dyn Fn(&RequestEvent) + Send + Sync>;

/// What the writer has done since start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub rows_written: u64,
    /// Batches that failed for trouble that may pass, and were retried.
    pub write_failures: u64,
    pub rows_spilled: u64,
}

/// No row could be reserved: the queue is full and the gateway fails closed, or the
/// writer has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditUnavailable;

struct Queued {
    event: RequestEvent,
    /// Told when the row is committed (or spilled), for `Durability::Committed`.
    ack: Option<oneshot::Sender<()>>,
}

/// What the writer and every sink share.
struct Shared {
    capacity: usize,
    /// Requests refused with 503 for want of a row since the last `audit.overflow` event.
    overflow: AtomicU64,
    /// Requests whose callers went away while they waited for a row (back-pressure):
    /// nothing was decided or forwarded for them, and the next event counts them.
    abandoned: AtomicU64,
    /// When the writer began failing (Unix ms), 0 while it writes.
    failing_since: AtomicI64,
    last_error: Mutex<Option<String>>,
    /// `true` once the writer has passed its deadline: rows finished later go straight to
    /// the spill file. Senders hold it for reading while they hand over a row, so the
    /// writer's final drain cannot miss one.
    closed: RwLock<bool>,
    spill: Spill,
    observer: Option<Observer>,
    rows_written: AtomicU64,
    write_failures: AtomicU64,
    /// Rows reserved since start, and rows settled (written, or spilled) since start: once
    /// `settled` reaches a value `reserved` had, every row reserved before is in the trail.
    reserved: AtomicU64,
    settled: watch::Sender<u64>,
}

impl Shared {
    fn settle(&self, rows: usize) {
        self.settled.send_modify(|n| *n += rows as u64);
    }
}

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Queued>,
    when_full: WhenFull,
    durability: Durability,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").field("when_full", &self.when_full).field("durability", &self.durability).finish()
    }
}

/// The writer task; `finish` ends it once every sink is gone.
pub struct AuditWriter {
    handle: JoinHandle<()>,
    deadline: watch::Sender<bool>,
}

/// How the audit trail is doing, for `/readyz` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHealth {
    /// Rows reserved by requests in flight or waiting to be written.
    pub in_use: usize,
    pub capacity: usize,
    /// How long the writer has been unable to write, if it is failing now.
    pub failing_for_ms: Option<i64>,
    pub last_error: Option<String>,
}

impl AuditHealth {
    pub fn is_full(&self) -> bool {
        self.in_use >= self.capacity
    }
}

/// Rows per batch the writer takes from the queue.
const BATCH: usize = 500;
/// How long the writer lets rows gather after a partial batch (queued durability).
const LINGER: Duration = Duration::from_millis(5);
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(5);

impl AuditSink {
    /// Starts the writer over `store`.
    pub fn start(store: Store, config: AuditConfig) -> (Self, AuditWriter) {
        let capacity = config.capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Shared {
            capacity,
            overflow: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            failing_since: AtomicI64::new(0),
            last_error: Mutex::new(None),
            closed: RwLock::new(false),
            spill: Spill::new(config.spill_path),
            observer: config.observer,
            rows_written: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
            settled: watch::Sender::new(0),
        });
        let (deadline, deadline_rx) = watch::channel(false);
        let writer = Writer { store, shared: shared.clone(), durability: config.durability, deadline: deadline_rx };
        let handle = tokio::spawn(writer.run(rx));
        let sink = Self { tx, when_full: config.when_full, durability: config.durability, shared };
        (sink, AuditWriter { handle, deadline })
    }

    /// Reserves the row of a request that started at `started`. Back-pressure waits for
    /// room; fail-closed answers at once, and a refusal here is counted so that the trail
    /// still records, as an `audit.overflow` event, how many requests it turned away.
    pub async fn reserve(&self, event: RequestEvent, started: Instant) -> Result<PendingRow, AuditUnavailable> {
        let permit = match self.when_full {
            WhenFull::BackPressure => {
                // Counted if the caller goes away while waiting (this future is dropped).
                let waiting = Waiting(Some(&self.shared.abandoned));
                let permit = self.tx.clone().reserve_owned().await.map_err(|_| AuditUnavailable);
                waiting.done();
                permit
            }
            WhenFull::FailClosed => self.tx.clone().try_reserve_owned().map_err(|_| AuditUnavailable),
        };
        if permit.is_ok() {
            self.shared.reserved.fetch_add(1, Ordering::Relaxed);
        }
        match permit {
            Ok(permit) => Ok(PendingRow {
                permit: Some(permit),
                event,
                started,
                durability: self.durability,
                shared: self.shared.clone(),
            }),
            Err(e) => {
                self.shared.overflow.fetch_add(1, Ordering::Relaxed);
                tracing::error!(request.id = %event.request_id, "audit queue full; request refused");
                Err(e)
            }
        }
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    pub fn health(&self, now: i64) -> AuditHealth {
        health(&self.shared, &self.tx, now)
    }

    /// A view of the queue and the writer that keeps neither alive (for metrics: the
    /// writer ends once every sink is gone, and a monitor is not one).
    pub fn monitor(&self) -> AuditMonitor {
        AuditMonitor { tx: self.tx.downgrade(), shared: Arc::downgrade(&self.shared) }
    }
}

fn health(shared: &Shared, tx: &mpsc::Sender<Queued>, now: i64) -> AuditHealth {
    let since = shared.failing_since.load(Ordering::Relaxed);
    AuditHealth {
        in_use: shared.capacity.saturating_sub(tx.capacity()),
        capacity: shared.capacity,
        failing_for_ms: (since > 0).then(|| now.saturating_sub(since)),
        last_error: if since > 0 { lock(&shared.last_error).clone() } else { None },
    }
}

/// See [`AuditSink::monitor`]. `None` once the writer is gone.
#[derive(Clone)]
pub struct AuditMonitor {
    tx: mpsc::WeakSender<Queued>,
    shared: std::sync::Weak<Shared>,
}

impl std::fmt::Debug for AuditMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditMonitor")
    }
}

impl AuditMonitor {
    pub fn health(&self, now: i64) -> Option<AuditHealth> {
        let (shared, tx) = (self.shared.upgrade()?, self.tx.upgrade()?);
        Some(health(&shared, &tx, now))
    }

    /// Waits until every row reserved before this call is written (or, past the
    /// shutdown deadline, spilled): the writer's watermark. Whoever must read the trail
    /// after their own requests (the tests, above all) waits exactly as long as the writer
    /// needs, without polling. `false` when the writer is gone first.
    pub async fn settled(&self) -> bool {
        let Some(shared) = self.shared.upgrade() else { return false };
        let target = shared.reserved.load(Ordering::Relaxed);
        let mut settled = shared.settled.subscribe();
        drop(shared);
        let reached = settled.wait_for(|n| *n >= target).await.is_ok();
        reached
    }

    /// The count of rows settled since start, which moves each time the writer writes a
    /// batch: to wait for rows whose requests had not yet arrived at `settled`.
    pub fn progress(&self) -> Option<watch::Receiver<u64>> {
        Some(self.shared.upgrade()?.settled.subscribe())
    }

    pub fn counts(&self) -> Option<AuditCounts> {
        let shared = self.shared.upgrade()?;
        Some(AuditCounts {
            rows_written: shared.rows_written.load(Ordering::Relaxed),
            write_failures: shared.write_failures.load(Ordering::Relaxed),
            rows_spilled: shared.spill.spilled(),
        })
    }
}

/// A request waiting for room in the queue; dropped before `done`, it counts as abandoned.
struct Waiting<'a>(Option<&'a AtomicU64>);

impl Waiting<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(abandoned) = self.0 {
            abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A request's reserved row. Fill in `event`, then `finish`; if it is dropped instead,
/// the row is still written, as a request whose caller went away.
pub struct PendingRow {
    permit: Option<mpsc::OwnedPermit<Queued>>,
    pub event: RequestEvent,
    /// When the request arrived.
    pub started: Instant,
    durability: Durability,
    shared: Arc<Shared>,
}

/// Resolves when a finished row is committed (at once under queued durability).
#[must_use = "under committed durability the answer must wait for this"]
pub struct Committed(Option<oneshot::Receiver<()>>);

impl Committed {
    pub async fn wait(self) {
        if let Some(rx) = self.0 {
            // An error means the writer is gone without acknowledging; the row was spilled
            // or logged as lost there, and holding the answer longer would change nothing.
            let _ = rx.await;
        }
    }
}

impl PendingRow {
    /// Queues the row as it stands, with the time since the request started.
    pub fn finish(mut self) -> Committed {
        let (ack, committed) = match self.durability {
            Durability::Queued => (None, Committed(None)),
            Durability::Committed => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Committed(Some(rx)))
            }
        };
        self.deliver(ack);
        committed
    }

    /// Whether finishing must be awaited before the answer leaves.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn deliver(&mut self, ack: Option<oneshot::Sender<()>>) {
        let Some(permit) = self.permit.take() else { return };
        self.event.latency_us = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let event = std::mem::take(&mut self.event);
        if let Some(observe) = &self.shared.observer {
            observe(&event);
        }
        let closed = self.shared.closed.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *closed {
            // The writer has stopped: the file is the only place left.
            drop(permit);
            let _ = self.shared.spill.append([&event]);
            self.shared.settle(1);
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        } else {
            permit.send(Queued { event, ack });
        }
    }
}

impl Drop for PendingRow {
    fn drop(&mut self) {
        if self.permit.is_none() {
            return;
        }
        if std::thread::panicking() {
            self.event.status = 500;
            self.event.reason = Reason::InternalError;
        } else {
            self.event.status = CLIENT_CLOSED_STATUS;
            self.event.reason = Reason::ClientClosedRequest;
        }
        self.deliver(None);
    }
}

impl AuditWriter {
    /// Waits for the writer to write every row, which it does once every sink (and every
    /// reserved row) is gone. Past `grace`, what is still unwritten is spilled to the
    /// local file instead, and rows finished later go there too.
    pub async fn finish(self, grace: Duration) {
        let deadline = self.deadline;
        let timer = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = deadline.send(true);
            // Keep the sender alive: a dropped one would read as a deadline too.
            std::future::pending::<()>().await;
        });
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "audit writer ended abnormally");
        }
        timer.abort();
    }
}

struct Writer {
    store: Store,
    shared: Arc<Shared>,
    durability: Durability,
    deadline: watch::Receiver<bool>,
}

/// Why a write did not finish.
enum Interrupted {
    /// The database failed in a way that may pass; retry.
    Transient(sqlx::Error),
    /// The shutdown deadline passed.
    Deadline,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let mut batch: Vec<Queued> = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, BATCH) => n,
                _ = past(&mut self.deadline) => return self.spill_rest(batch, rx),
            };
            if received == 0 {
                self.record_overflow().await;
                return;
            }
            let mut delay = FIRST_RETRY;
            loop {
                match self.write(&batch).await {
                    Ok(()) => {
                        self.shared.failing_since.store(0, Ordering::Relaxed);
                        self.shared.rows_written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        self.shared.settle(batch.len());
                        break;
                    }
                    Err(Interrupted::Deadline) => return self.spill_rest(batch, rx),
                    Err(Interrupted::Transient(e)) => {
                        self.shared.write_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, rows = batch.len(), retry_in_ms = delay.as_millis() as u64,
                            "audit batch not written; retrying");
                        let now = self.store.now().max(1);
                        let _ =
                            self.shared.failing_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                        *lock(&self.shared.last_error) = Some(e.to_string());
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = past(&mut self.deadline) => return self.spill_rest(batch, rx),
                        }
                        delay = (delay * 2).min(LAST_RETRY);
                    }
                }
            }
            let partial = batch.len() < BATCH;
            for q in batch.drain(..) {
                if let Some(ack) = q.ack {
                    let _ = ack.send(());
                }
            }
            self.record_overflow().await;
            // A partial batch means the queue ran dry: rather than one transaction per
            // request at low rates, let rows gather for a moment. Under committed
            // durability the requests themselves wait, so rows gather during the commit.
            if partial && self.durability == Durability::Queued {
                tokio::select! {
                    _ = tokio::time::sleep(LINGER) => {}
                    _ = past(&mut self.deadline) => {}
                }
            }
        }
    }

    async fn write(&mut self, batch: &[Queued]) -> Result<(), Interrupted> {
        let rows: Vec<&RequestEvent> = batch.iter().map(|q| &q.event).collect();
        let store = self.store.clone();
        let spill = &self.shared.spill;
        tokio::select! {
            r = write_resilient(&store, spill, &rows) => r.map_err(Interrupted::Transient),
            _ = past(&mut self.deadline) => Err(Interrupted::Deadline),
        }
    }

    /// Past the deadline: no more rows into the queue, what is in it to the spill file.
    fn spill_rest(self, mut batch: Vec<Queued>, mut rx: mpsc::Receiver<Queued>) {
        {
            let mut closed = self.shared.closed.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            *closed = true;
        }
        rx.close();
        while let Ok(q) = rx.try_recv() {
            batch.push(q);
        }
        if !batch.is_empty() {
            tracing::error!(rows = batch.len(), "audit writer deadline passed; spilling unwritten rows");
            let _ = self.shared.spill.append(batch.iter().map(|q| &q.event));
        }
        self.shared.settle(batch.len());
        for q in batch {
            if let Some(ack) = q.ack {
                let _ = ack.send(());
            }
        }
        let refused = self.shared.overflow.swap(0, Ordering::Relaxed);
        let abandoned = self.shared.abandoned.swap(0, Ordering::Relaxed);
        if refused + abandoned > 0 {
            tracing::error!(
                refused,
                abandoned,
                "requests turned away for a full audit queue, not recorded as an event"
            );
        }
    }

    /// Records how many requests were turned away for want of a row since the last time:
    /// refused with 503 (fail closed), or abandoned by their callers while they waited.
    async fn record_overflow(&self) {
        let refused = self.shared.overflow.swap(0, Ordering::Relaxed);
        let abandoned = self.shared.abandoned.swap(0, Ordering::Relaxed);
        if refused == 0 && abandoned == 0 {
            return;
        }
        let event = crate::audit::AdminEvent {
            action: "audit.overflow",
            target_type: "audit",
            target_id: "queue",
            summary: serde_json::json!({
                "refused_requests": refused,
                "abandoned_requests": abandoned,
                "capacity": self.shared.capacity,
            }),
        };
        if let Err(e) = crate::audit::record(&self.store.pool, self.store.now(), None, "system", event).await {
            tracing::error!(error = %e, "audit overflow event not written; will try again");
            self.shared.overflow.fetch_add(refused, Ordering::Relaxed);
            self.shared.abandoned.fetch_add(abandoned, Ordering::Relaxed);
        }
    }
}

/// Resolves once the shutdown deadline has passed (at once if it already has).
async fn past(deadline: &mut watch::Receiver<bool>) {
    if deadline.wait_for(|passed| *passed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether an error may pass by itself: the connection, a lock, resources. Anything else
/// is the database refusing what a row holds.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if let Ok(sqlite) = code.parse::<i32>() {
                // SQLite primary result codes: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN.
                matches!(sqlite & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14)
            } else {
                // PostgreSQL SQLSTATE classes: connection, resources, operator intervention,
                // system errors; and serialization failures, deadlocks, lock timeouts.
                ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
                    || matches!(code.as_ref(), "40001" | "40P01" | "55P03")
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'a>>;

/// Writes rows; a row the database refuses for its content is found by halving and
/// written reduced (or, failing that too, spilled), so one bad row never holds up the
/// others and is never retried forever. `Err` only for trouble that may pass.
fn write_resilient<'a>(store: &'a Store, spill: &'a Spill, rows: &'a [&'a RequestEvent]) -> WriteFuture<'a> {
    Box::pin(async move {
        let err = match store.insert_request_events(rows).await {
            Ok(()) => return Ok(()),
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => e,
        };
        if let [row] = rows {
            tracing::error!(request.id = %row.request_id, error = %err, "audit row refused by the database; writing it reduced");
            let reduced = row.reduced();
            return match store.insert_request_events(&[&reduced]).await {
                Ok(()) => Ok(()),
                Err(e) if is_transient(&e) => Err(e),
                Err(e) => {
                    tracing::error!(request.id = %row.request_id, error = %e, "reduced audit row refused too; spilling it");
                    let _ = spill.append([&reduced]);
                    Ok(())
                }
            };
        }
        let (left, right) = rows.split_at(rows.len() / 2);
        write_resilient(store, spill, left).await?;
        write_resilient(store, spill, right).await
    })
}

/// Writes the rows a previous run spilled, then removes the file. Rows already in the
/// database (by request id) are skipped, so replaying twice stores each row once. A row
/// the database refuses even reduced goes to `<file>.unstorable` for a person to read.
pub async fn replay_spill(store: &Store, path: std::path::PathBuf) -> crate::error::Result<usize> {
    let spill = Spill::new(path.clone());
    let unstorable = Spill::new(path.with_extension("unstorable"));
    let (rows, unreadable) =
        spill.read().map_err(|e| crate::DomainError::Internal(format!("audit spill file: {e}")))?;
    if rows.is_empty() && unreadable == 0 {
        return Ok(0);
    }
    for chunk in rows.chunks(BATCH) {
        let refs: Vec<&RequestEvent> = chunk.iter().collect();
        write_resilient(store, &unstorable, &refs).await?;
    }
    spill.finish_replay(unreadable).map_err(|e| crate::DomainError::Internal(format!("audit spill file: {e}")))?;
    tracing::info!(rows = rows.len(), "spilled audit rows replayed");
    Ok(rows.len())
}

/// The columns of one request row, in the order `insert_request_events` binds them.
const REQUEST_COLUMNS: [&str; 28] = [
    "occurred_at",
    "request_id",
    "channel",
    "client_id",
    "profile_id",
    "client_type",
    "credential_id",
    "attempted_client_id",
    "actor_user_id",
    "product",
    "endpoint",
    "method",
    "path",
    "status",
    "upstream_status",
    "decision",
    "reason",
    "latency_us",
    "bytes_in",
    "bytes_out",
    "client_ip",
    "user_agent",
    "tool",
    "trace_id",
    "sender_key",
    "task_id",
    "subject_id",
    "actor_chain",
];

/// Rows per `INSERT`: one statement per row made the SQLite worker thread hand off
/// every row (a sixth of the gateway's CPU at saturation, perf); 40 rows keep a
/// statement's parameters far under both databases' limits.
const ROWS_PER_INSERT: usize = 40;

/// `INSERT … VALUES (…), (…) ON CONFLICT (request_id) DO NOTHING` for `rows` rows.
/// SQLite gets anonymous `?` placeholders: with numbered ones it looks each name up in a
/// list, and 800 of them made binding quadratic (a quarter of the CPU, perf).
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
    format!(
        "INSERT INTO audit_events ({}, action) VALUES {} ON CONFLICT (request_id) DO NOTHING",
        REQUEST_COLUMNS.join(", "),
        values.join(", ")
    )
}

fn text(t: &Option<AuditText>) -> Option<&str> {
    t.as_ref().map(AuditText::as_str)
}

impl Store {
    async fn insert_request_events(&self, events: &[&RequestEvent]) -> Result<(), sqlx::Error> {
        use std::collections::HashMap;
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        let mut last_used: HashMap<&str, i64> = HashMap::new();
        // (profile, product slug) → newest allowed request: when each grant was last used.
        let mut grant_used: HashMap<(&str, &str), i64> = HashMap::new();
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(self.backend, chunk.len());
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(e.occurred_at)
                    .bind(&e.request_id)
                    .bind(e.channel.as_str())
                    .bind(text(&e.client_id))
                    .bind(text(&e.profile_id))
                    .bind(e.client_type.map(ClientKind::as_str))
                    .bind(text(&e.credential_id))
                    .bind(text(&e.attempted_client_id))
                    .bind(text(&e.actor_user_id))
                    .bind(text(&e.product))
                    .bind(text(&e.endpoint))
                    .bind(e.method.as_str())
                    .bind(e.path.as_str())
                    .bind(i64::from(e.status))
                    .bind(e.upstream_status.map(i64::from))
                    .bind(e.decision.as_str())
                    .bind(e.reason.as_str())
                    .bind(e.latency_us)
                    .bind(e.bytes_in)
                    .bind(e.bytes_out)
                    .bind(text(&e.client_ip))
                    .bind(text(&e.user_agent))
                    .bind(text(&e.tool))
                    .bind(text(&e.trace_id))
                    .bind(text(&e.sender_key))
                    .bind(text(&e.task_id))
                    .bind(text(&e.subject_id))
                    .bind(text(&e.actor_chain));
                if let Some(c) = text(&e.credential_id) {
                    let t = last_used.entry(c).or_insert(e.occurred_at);
                    *t = (*t).max(e.occurred_at);
                }
                if let (Some(profile), Some(product), Decision::Allowed) =
                    (text(&e.profile_id), text(&e.product), e.decision)
                {
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
        tx.commit().await
    }
}
