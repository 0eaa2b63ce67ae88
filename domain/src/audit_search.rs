//! The security team's search over the audit trail: filters that combine with AND,
//! newest first, keyset pages on `(occurred_at, id)`. Keyset, not OFFSET: a page is one
//! index range however deep it is, and rows written while someone pages cannot shift a
//! row onto two pages or off all of them (new rows are newer than any cursor).

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Row};

use crate::access::{Access, Actor};
use crate::error::{DomainError, Result};
use crate::model::{AuditFilter, AuditPage, AuditRecord, ClientKind, Decision, Reason};
use crate::scopes::Area;
use crate::store::Store;
use crate::time::{parse_utc, DAY, HOUR, MINUTE};

/// Rows on one page of the portal or the API; exports read pages of `EXPORT_PAGE`.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;
pub const EXPORT_PAGE: i64 = 1000;

/// Longest accepted filter value: anything longer is a mistake or an attack.
const MAX_VALUE: usize = 200;

const COLUMNS: &str = "e.id, e.occurred_at, e.request_id, e.channel, e.action, u.email AS actor_email, e.target_type,
    e.target_id, e.summary, e.client_id, c.name AS client_name, e.profile_id, e.client_type, e.credential_id,
    e.product, e.endpoint, e.tool, e.method, e.path, e.status, e.decision, e.reason, e.latency_us, e.bytes_in,
    e.bytes_out, e.client_ip, e.user_agent, e.trace_id, e.sender_key, e.task_id,
    e.subject_id, e.actor_chain";

const FROM: &str =
    "FROM audit_events e LEFT JOIN users u ON u.id = e.actor_user_id LEFT JOIN clients c ON c.id = e.client_id";

/// Which event a detail view asks for: the row, or the request a caller knows by its
/// `X-Request-Id` (what Test access shows).
#[derive(Debug, Clone)]
pub enum AuditKey {
    Id(i64),
    Request(String),
}

/// A page position: the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    occurred_at: i64,
    id: i64,
}

impl Cursor {
    fn encode(self) -> String {
        format!("{}_{}", self.occurred_at, self.id)
    }

    fn parse(text: &str) -> Result<Self> {
        let bad = || DomainError::Invalid("the cursor is not one this server gave out; start the search again".into());
        let (t, id) = text.split_once('_').ok_or_else(bad)?;
        Ok(Self { occurred_at: t.parse().map_err(|_| bad())?, id: id.parse().map_err(|_| bad())? })
    }
}

/// A WHERE clause under construction, with its placeholders numbered for both backends.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    args: AnyArguments<'static>,
    n: usize,
}

impl Conditions {
    fn next(&mut self) -> String {
        self.n += 1;
        format!("${}", self.n)
    }

    fn text(&mut self, column: &str, value: String) {
        let p = self.next();
        self.sql.push(format!("{column} = {p}"));
        let _ = self.args.add(value);
    }

    fn int(&mut self, clause: impl FnOnce(&str) -> String, value: i64) {
        let p = self.next();
        self.sql.push(clause(&p));
        let _ = self.args.add(value);
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        }
    }
}

/// A filter value, trimmed; empty counts as absent, and overlong is refused.
fn value(field: &str, v: &Option<String>) -> Result<Option<String>> {
    match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.len() > MAX_VALUE => {
            Err(DomainError::Invalid(format!("`{field}` is longer than {MAX_VALUE} characters")))
        }
        // PostgreSQL refuses a NUL in text; no filter value needs any control character.
        Some(v) if v.chars().any(char::is_control) => {
            Err(DomainError::Invalid(format!("`{field}` contains a control character")))
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// A value that must be a word (`rate_limited`, `mcp`): anything else cannot match and
/// is more likely a typo the person should hear about.
fn word(field: &str, v: &Option<String>) -> Result<Option<String>> {
    match value(field, v)? {
        Some(w) if !w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-') => {
            Err(DomainError::Invalid(format!("`{field}` must be a lowercase word such as `{}`", example(field))))
        }
        other => Ok(other),
    }
}

fn example(field: &str) -> &'static str {
    match field {
        "channel" => "mcp",
        _ => "rate_limited",
    }
}

/// The time range a filter names, as `[from, to)` in Unix milliseconds.
fn time_range(filter: &AuditFilter, now: i64) -> Result<(Option<i64>, Option<i64>)> {
    let instant = |field: &str, v: &Option<String>| -> Result<Option<i64>> {
        value(field, v)?
            .map(|t| {
                parse_utc(&t).ok_or_else(|| {
                    DomainError::Invalid(format!("`{field}` must be a UTC time such as 2026-11-23T10:00, not `{t}`"))
                })
            })
            .transpose()
    };
    let mut from = instant("from", &filter.from)?;
    let to = instant("to", &filter.to)?;
    if let Some(since) = value("since", &filter.since)? {
        let span = match since.as_str() {
            "15m" => 15 * MINUTE,
            "1h" => HOUR,
            "24h" => DAY,
            "7d" => 7 * DAY,
            "30d" => 30 * DAY,
            other => {
                return Err(DomainError::Invalid(format!("`since` must be 15m, 1h, 24h, 7d or 30d, not `{other}`")))
            }
        };
        // A quick range and an exact start together: the later start wins.
        from = Some(from.map_or(now - span, |f| f.max(now - span)));
    }
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(DomainError::Invalid("`from` must be before `to`".into()));
        }
    }
    Ok((from, to))
}

/// The filter with its quick range (`since`) turned into a fixed start, so that a long
/// export keeps the rows the range held when it began.
pub fn pin_time(filter: &AuditFilter, now: i64) -> Result<AuditFilter> {
    let (from, _) = time_range(filter, now)?;
    Ok(AuditFilter { since: None, from: from.map(crate::time::format_iso), ..filter.clone() })
}

/// The WHERE clause for a filter (cursor included).
fn conditions(filter: &AuditFilter, now: i64) -> Result<Conditions> {
    let mut c = Conditions::default();
    if let Some(v) = value("client", &filter.client)? {
        c.text("e.client_id", v);
    }
    if let Some(v) = value("named_client", &filter.named_client)? {
        c.text("e.attempted_client_id", v);
        // Attempts only: a request that also authenticated as a client is that client's.
        c.sql.push("e.client_id IS NULL".into());
    }
    if let Some(v) = value("profile", &filter.profile)? {
        c.text("e.profile_id", v);
    }
    if let Some(v) = value("client_type", &filter.client_type)? {
        let kind: ClientKind = v.parse()?;
        c.text("e.client_type", kind.as_str().to_owned());
    }
    if let Some(v) = value("product", &filter.product)? {
        c.text("e.product", v);
    }
    if let Some(v) = value("endpoint", &filter.endpoint)? {
        c.text("e.endpoint", v);
    }
    if let Some(v) = value("method", &filter.method)? {
        let method = v.to_ascii_uppercase();
        if !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DomainError::Invalid(format!("`method` must be an HTTP method such as GET, not `{v}`")));
        }
        c.text("e.method", method);
    }
    if let Some(v) = value("status", &filter.status)? {
        let class = match v.as_str() {
            "2xx" => 2,
            "3xx" => 3,
            "4xx" => 4,
            "5xx" => 5,
            other => return Err(DomainError::Invalid(format!("`status` must be 2xx, 3xx, 4xx or 5xx, not `{other}`"))),
        };
        c.int(|p| format!("e.status >= {p} * 100"), class);
        c.int(|p| format!("e.status < {p} * 100"), class + 1);
    }
    if let Some(d) = word("decision", &filter.decision)? {
        // A decision, or one reason of the audit vocabulary: anything else would quietly
        // match nothing, so it is refused with what would match.
        if let Ok(decision) = d.parse::<Decision>() {
            c.text("e.decision", decision.as_str().to_owned());
        } else {
            let reason: Reason = d.parse().map_err(|_| {
                DomainError::Invalid(format!(
                    "`decision` must be allowed, refused or a reason: {}",
                    Reason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            c.text("e.reason", reason.as_str().to_owned());
        }
    }
    if let Some(v) = word("channel", &filter.channel)? {
        c.text("e.channel", v);
    }
    if let Some(v) = value("actor", &filter.actor)? {
        let p = c.next();
        c.sql.push(format!("e.actor_user_id IN (SELECT id FROM users WHERE email = {p})"));
        let _ = c.args.add(v.to_lowercase());
    }
    if let Some(v) = value("request_id", &filter.request_id)? {
        c.text("e.request_id", v);
    }
    if let Some(v) = value("task", &filter.task)? {
        c.text("e.task_id", v);
    }
    if let Some(v) = value("subject", &filter.subject)? {
        c.text("e.subject_id", v);
    }
    if let Some(v) = value("acting_client", &filter.acting_client)? {
        // One whole id of the space-separated chain, on both backends.
        let escaped = v.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let p = c.next();
        c.sql.push(format!("(' ' || e.actor_chain || ' ') LIKE {p} ESCAPE '\\'"));
        let _ = c.args.add(format!("% {escaped} %"));
    }
    if let Some(v) = value("path", &filter.path)? {
        // Case-insensitive "contains" on both backends; the person's % and _ are literal.
        let escaped = v.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let p = c.next();
        c.sql.push(format!("LOWER(e.path) LIKE {p} ESCAPE '\\'"));
        let _ = c.args.add(format!("%{escaped}%"));
    }
    let (from, to) = time_range(filter, now)?;
    if let Some(from) = from {
        c.int(|p| format!("e.occurred_at >= {p}"), from);
    }
    if let Some(to) = to {
        c.int(|p| format!("e.occurred_at < {p}"), to);
    }
    if let Some(cursor) = value("cursor", &filter.cursor)? {
        let cursor = Cursor::parse(&cursor)?;
        let (a, b, a2, a3) = (c.next(), c.next(), c.next(), c.next());
        // The first term is the index range (both planners turn `<=` on the leading
        // time column into one); the second breaks ties on the same millisecond.
        c.sql.push(format!("e.occurred_at <= {a3}"));
        c.sql.push(format!("(e.occurred_at < {a} OR (e.occurred_at = {a2} AND e.id < {b}))"));
        // Placeholders are bound in number order.
        let _ = c.args.add(cursor.occurred_at);
        let _ = c.args.add(cursor.id);
        let _ = c.args.add(cursor.occurred_at);
        let _ = c.args.add(cursor.occurred_at);
    }
    Ok(c)
}

fn record(r: &sqlx::any::AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        occurred_at: r.try_get("occurred_at")?,
        request_id: r.try_get("request_id")?,
        channel: r.try_get("channel")?,
        action: r.try_get("action")?,
        actor_email: r.try_get("actor_email")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        summary: r.try_get("summary")?,
        client_id: r.try_get("client_id")?,
        client_name: r.try_get("client_name")?,
        profile_id: r.try_get("profile_id")?,
        client_type: r.try_get("client_type")?,
        credential_id: r.try_get("credential_id")?,
        product: r.try_get("product")?,
        endpoint: r.try_get("endpoint")?,
        tool: r.try_get("tool")?,
        method: r.try_get("method")?,
        path: r.try_get("path")?,
        status: r.try_get("status")?,
        decision: r.try_get("decision")?,
        reason: r.try_get("reason")?,
        latency_us: r.try_get("latency_us")?,
        bytes_in: r.try_get("bytes_in")?,
        bytes_out: r.try_get("bytes_out")?,
        client_ip: r.try_get("client_ip")?,
        user_agent: r.try_get("user_agent")?,
        trace_id: r.try_get("trace_id")?,
        sender_key: r.try_get("sender_key")?,
        task_id: r.try_get("task_id")?,
        subject_id: r.try_get("subject_id")?,
        actor_chain: r.try_get("actor_chain")?,
    })
}

impl Store {
    /// One page of the audit trail matching `filter`, newest first. For the security
    /// team and admins only: a developer gets `Forbidden` (they see their own clients'
    /// requests on the client pages).
    pub async fn search_audit(&self, actor: &Actor, filter: &AuditFilter, limit: i64) -> Result<AuditPage> {
        actor.permit(Area::Audit, Access::Read)?;
        actor.require_security()?;
        let limit = limit.clamp(1, EXPORT_PAGE);
        let mut c = conditions(filter, self.now())?;
        let l = c.next();
        let _ = c.args.add(limit + 1);
        let sql = format!("SELECT {COLUMNS} {FROM} {} ORDER BY e.occurred_at DESC, e.id DESC LIMIT {l}", c.clause());
        let rows = sqlx::query_with::<Any, _>(&sql, c.args).fetch_all(&self.pool).await?;
        let mut events = rows.iter().map(record).collect::<Result<Vec<_>>>()?;
        // One row more than asked says whether another page exists.
        let next = if events.len() as i64 > limit {
            events.truncate(limit as usize);
            events.last().map(|e| Cursor { occurred_at: e.occurred_at, id: e.id }.encode())
        } else {
            None
        };
        Ok(AuditPage { events, next })
    }

    /// One audit event. The security team and admins see any; a developer sees the
    /// events of their own clients, and `NotFound` for anything else.
    pub async fn audit_event(&self, actor: &Actor, key: &AuditKey) -> Result<AuditRecord> {
        actor.permit(Area::Audit, Access::Read)?;
        let row = match key {
            AuditKey::Id(id) => {
                sqlx::query(&format!("SELECT {COLUMNS} {FROM} WHERE e.id = $1"))
                    .bind(*id)
                    .fetch_optional(&self.pool)
                    .await?
            }
            AuditKey::Request(request_id) => {
                sqlx::query(&format!("SELECT {COLUMNS} {FROM} WHERE e.request_id = $1 ORDER BY e.id LIMIT 1"))
                    .bind(request_id.clone())
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        let event = row.as_ref().map(record).transpose()?.ok_or(DomainError::NotFound)?;
        if actor.require_security().is_err() {
            let client = event.client_id.as_deref().ok_or(DomainError::NotFound)?;
            self.owned_client(actor, client, crate::access::Access::Read).await?;
        }
        Ok(event)
    }

    /// Records that someone exported the audit trail, and with which filter: reading the
    /// trail in bulk is itself worth an entry in it.
    pub async fn record_audit_export(&self, actor: &Actor, filter: &AuditFilter, format: &str) -> Result<()> {
        actor.permit(Area::Audit, Access::Read)?;
        actor.require_security()?;
        crate::audit::record_by(
            &self.pool,
            self.now(),
            actor,
            crate::audit::AdminEvent {
                action: "audit.exported",
                target_type: "audit",
                target_id: format,
                summary: serde_json::json!({ "format": format, "filter": filter.to_query(false) }),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor { occurred_at: 1_795_428_876_000, id: 42 };
        assert_eq!(Cursor::parse(&c.encode()).ok(), Some(c));
        for bad in ["", "12", "a_b", "1_", "_1", "1_2_3"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_are_checked_before_any_query() {
        let now = 1_795_428_876_000;
        let ok = |f: AuditFilter| conditions(&f, now).map(|c| c.sql.len());
        assert_eq!(ok(AuditFilter::default()).ok(), Some(0));
        assert_eq!(
            ok(AuditFilter { status: Some("4xx".into()), since: Some("24h".into()), ..Default::default() }).ok(),
            Some(3)
        );
        for bad in [
            AuditFilter { status: Some("404".into()), ..Default::default() },
            AuditFilter { since: Some("2d".into()), ..Default::default() },
            AuditFilter { from: Some("yesterday".into()), ..Default::default() },
            AuditFilter {
                from: Some("2026-11-23T10:00".into()),
                to: Some("2026-11-23T09:00".into()),
                ..Default::default()
            },
            AuditFilter { client_type: Some("robot".into()), ..Default::default() },
            AuditFilter { decision: Some("DROP TABLE".into()), ..Default::default() },
            AuditFilter { method: Some("GET;".into()), ..Default::default() },
            AuditFilter { cursor: Some("page2".into()), ..Default::default() },
            AuditFilter { path: Some("x".repeat(201)), ..Default::default() },
            AuditFilter { client: Some("cl_\u{0}".into()), ..Default::default() },
        ] {
            assert!(matches!(conditions(&bad, now), Err(DomainError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn a_filter_travels_in_a_url_and_comes_back_the_same() {
        let f = AuditFilter {
            client: Some("cl_1".into()),
            path: Some("/a b&c".into()),
            decision: Some(String::new()),
            cursor: Some("5_6".into()),
            ..Default::default()
        };
        assert_eq!(f.to_query(false), "client=cl_1&path=%2Fa+b%26c");
        let back: AuditFilter = serde_urlencoded::from_str(&f.to_query(true)).unwrap_or_default();
        assert_eq!(back, AuditFilter { decision: None, ..f });
    }

    #[test]
    fn an_export_pins_its_quick_range_to_when_it_began() {
        let now = 1_795_428_876_250;
        let f = AuditFilter { since: Some("24h".into()), client: Some("cl_1".into()), ..Default::default() };
        let pinned = pin_time(&f, now).ok();
        assert_eq!(pinned.as_ref().and_then(|p| p.from.clone()).as_deref(), Some("2026-11-22T10:14:36.250Z"));
        assert_eq!(pinned.as_ref().map(|p| (p.since.clone(), p.client.clone())), Some((None, Some("cl_1".into()))));
        assert_eq!(time_range(&pinned.unwrap_or_default(), now + DAY).ok(), Some((Some(now - DAY - 250), None)));
    }

    #[test]
    fn a_quick_range_and_an_exact_start_keep_the_later() {
        let now = 1_795_428_876_000;
        let f = AuditFilter { since: Some("15m".into()), from: Some("2026-01-01".into()), ..Default::default() };
        assert_eq!(time_range(&f, now).ok(), Some((Some(now - 15 * MINUTE), None)));
    }
}
