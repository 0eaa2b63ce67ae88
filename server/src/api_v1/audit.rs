//! The audit trail for SIEM pipelines and the portal's export links: search pages
//! (cursor-based), one event, and a streamed export of a whole search as CSV or JSON
//! Lines. The filter is the domain's `AuditFilter`, so the portal, the API and the
//! export read the same query string the same way.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use portcullis_domain::access::Actor;
use portcullis_domain::audit_search::{AuditKey, DEFAULT_PAGE, EXPORT_PAGE, MAX_PAGE};
use portcullis_domain::model::{AuditFilter, AuditPage, AuditRecord};
use portcullis_domain::store::Store;
use portcullis_domain::DomainError;
use serde::Deserialize;

use super::auth::ApiActor;
use super::problem::{ApiError, Problem};
use super::ApiState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageSize {
    /// Rows per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportFormat {
    /// `csv` or `jsonl`.
    #[param(value_type = FormatName, inline)]
    pub format: String,
}

/// The export's formats, for the document. The field itself is read as text, so that
/// any other value is answered with a sentence naming these two.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum FormatName {
    Csv,
    Jsonl,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::Domain(DomainError::Invalid(e.body_text())))
}

/// One page of the audit trail, newest first. Pass `next` back as `cursor` for the
/// following page; rows written meanwhile never shift a page. A request's row is
/// written just after its response, stamped with its start: a pipeline that polls with
/// `from` should overlap its previous poll by the upstream timeout.
#[utoipa::path(get, path = "/audit", params(AuditFilter, PageSize),
    responses((status = 200, body = AuditPage), (status = 422, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn search(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    filter: Result<Query<AuditFilter>, QueryRejection>,
    size: Result<Query<PageSize>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let (filter, size) = (query(filter)?, query(size)?);
    let limit = size.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(DomainError::Invalid(format!("`limit` must be between 1 and {MAX_PAGE}")).into());
    }
    Ok(Json(s.portal.store.search_audit(&actor, &filter, limit).await?))
}

/// One audit event by its row id. Developers may read the events of their own clients.
#[utoipa::path(get, path = "/audit/events/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = AuditRecord), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn event(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(id): Path<i64>,
) -> Result<Json<AuditRecord>, ApiError> {
    Ok(Json(s.portal.store.audit_event(&actor, &AuditKey::Id(id)).await?))
}

/// Every row matching the filter, streamed page by page (never held in memory), as
/// `text/csv` or `application/jsonl`. The export is itself recorded in the audit trail.
#[utoipa::path(get, path = "/audit/export", params(AuditFilter, ExportFormat),
    responses((status = 200, description = "CSV or JSON Lines", content_type = "text/csv"), (status = 422, body = Problem), (status = 403, body = Problem)))]
pub async fn export(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    headers: axum::http::HeaderMap,
    filter: Result<Query<AuditFilter>, QueryRejection>,
    format: Result<Query<ExportFormat>, QueryRejection>,
) -> Result<Response, ApiError> {
    // A top-level cross-site navigation carries the session cookie on GET: an export
    // (which reads the whole trail and records itself) must come from this site or a script.
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site") {
        return Err(DomainError::Forbidden("exports start from the portal or a script, not another site").into());
    }
    let (filter, format) = (query(filter)?, query(format)?);
    let mut filter = portcullis_domain::audit_search::pin_time(&filter, s.portal.store.now())?;
    let format = match format.format.as_str() {
        "csv" => Format::Csv,
        "jsonl" => Format::JsonLines,
        other => return Err(DomainError::Invalid(format!("`format` must be csv or jsonl, not `{other}`")).into()),
    };
    // The first page is read before the response starts, so a bad filter or a missing
    // role is a proper 400/403 rather than a broken download.
    let first = s.portal.store.search_audit(&actor, &filter, EXPORT_PAGE).await?;
    s.portal.store.record_audit_export(&actor, &filter, format.name()).await?;
    filter.cursor = first.next.clone();
    let state =
        Export { store: s.portal.store.clone(), actor, filter, page: Some(first), header: format == Format::Csv };
    let body = stream::unfold(state, move |mut st| async move {
        let page = match st.page.take() {
            Some(p) => p,
            None if st.filter.cursor.is_some() => match st.store.search_audit(&st.actor, &st.filter, EXPORT_PAGE).await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "audit export stopped");
                    return Some((Err(std::io::Error::other("audit export stopped")), st.finished()));
                }
            },
            None => return None,
        };
        st.filter.cursor = page.next.clone();
        let chunk = format.write(&page.events, std::mem::take(&mut st.header));
        Some((chunk.map(Bytes::from), st))
    });
    let stamp = portcullis_domain::time::format_input(s.portal.store.now()).replace(':', "");
    let headers = [
        (CONTENT_TYPE, format.content_type().to_owned()),
        (CONTENT_DISPOSITION, format!("attachment; filename=\"portcullis-audit-{stamp}.{}\"", format.name())),
        (CACHE_CONTROL, "no-store".to_owned()),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

struct Export {
    store: Store,
    actor: Actor,
    filter: AuditFilter,
    page: Option<AuditPage>,
    header: bool,
}

impl Export {
    /// The state after a failure: no page and no cursor, so the stream ends.
    fn finished(mut self) -> Self {
        self.filter.cursor = None;
        self.page = None;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

const CSV_COLUMNS: [&str; 32] = [
    "id",
    "occurred_at",
    "request_id",
    "channel",
    "action",
    "actor_email",
    "target_type",
    "target_id",
    "summary",
    "client_id",
    "client_name",
    "profile_id",
    "client_type",
    "credential_id",
    "product",
    "endpoint",
    "tool",
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
    "trace_id",
    "sender_key",
    "task_id",
    "subject_id",
    "actor_chain",
];

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/jsonl; charset=utf-8",
        }
    }

    fn write(self, events: &[AuditRecord], header: bool) -> std::io::Result<Vec<u8>> {
        match self {
            Format::JsonLines => {
                let mut out = Vec::with_capacity(events.len() * 512);
                for e in events {
                    serde_json::to_writer(&mut out, e)?;
                    out.push(b'\n');
                }
                Ok(out)
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(Vec::with_capacity(events.len() * 256));
                if header {
                    w.write_record(CSV_COLUMNS)?;
                }
                for e in events {
                    w.write_record(csv_row(e))?;
                }
                w.into_inner().map_err(|e| e.into_error())
            }
        }
    }
}

/// One CSV row, in `CSV_COLUMNS` order. Text cells that a spreadsheet would run as a
/// formula (a path such as `=HYPERLINK(…)` is caller-controlled) get a leading `'`.
fn csv_row(e: &AuditRecord) -> [String; 32] {
    let t = |v: &Option<String>| defuse(v.as_deref().unwrap_or_default());
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        e.id.to_string(),
        portcullis_domain::time::format_iso(e.occurred_at),
        t(&e.request_id),
        defuse(&e.channel),
        defuse(&e.action),
        t(&e.actor_email),
        t(&e.target_type),
        t(&e.target_id),
        defuse(&e.summary),
        t(&e.client_id),
        t(&e.client_name),
        t(&e.profile_id),
        t(&e.client_type),
        t(&e.credential_id),
        t(&e.product),
        t(&e.endpoint),
        t(&e.tool),
        t(&e.method),
        t(&e.path),
        n(e.status),
        t(&e.decision),
        t(&e.reason),
        n(e.latency_us),
        n(e.bytes_in),
        n(e.bytes_out),
        t(&e.client_ip),
        t(&e.user_agent),
        t(&e.trace_id),
        t(&e.sender_key),
        t(&e.task_id),
        t(&e.subject_id),
        t(&e.actor_chain),
    ]
}

fn defuse(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::defuse;

    #[test]
    fn spreadsheet_formulas_are_defused() {
        assert_eq!(defuse("=HYPERLINK(\"http://x\")"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("/gw/accounts/accounts"), "/gw/accounts/accounts");
    }
}
