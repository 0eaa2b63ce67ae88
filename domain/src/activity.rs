//! Aggregates over the audit trail: one client's activity (its owner and the security
//! team see it) and the security dashboard. Days are UTC days; the window always ends
//! with today and includes days without a request, so charts have no holes.

use sqlx::Row;

use crate::access::{Access, Actor};
use crate::error::Result;
use crate::model::{
    ClientActivity, ClientRefusals, CredentialUse, DayCount, NamedCount, RefusalDay, SecurityDashboard, TypeTraffic,
    ACTIVITY_DAYS,
};
use crate::scopes::Area;
use crate::store::Store;
use crate::time::DAY;

/// The first millisecond of the window's first day.
fn window_start(now: i64) -> i64 {
    (now.div_euclid(DAY) - (ACTIVITY_DAYS - 1)) * DAY
}

impl Store {
    /// What one client did over the last 30 days. Owners, the security team and admins
    /// may look; anyone else gets `NotFound`.
    pub async fn client_activity(&self, actor: &Actor, client_id: &str) -> Result<ClientActivity> {
        actor.permit(Area::Clients, Access::Read)?;
        let client = self.client_detail(actor, client_id).await?.client;
        let start = window_start(self.now());
        let rows = sqlx::query(
            "SELECT (occurred_at - $2) / $3 AS d, COUNT(*) AS total,
                    SUM(CASE WHEN decision = 'allowed' THEN 1 ELSE 0 END) AS allowed
             FROM audit_events WHERE client_id = $1 AND action = 'request' AND occurred_at >= $2
             GROUP BY (occurred_at - $2) / $3",
        )
        .bind(client_id)
        .bind(start)
        .bind(DAY)
        .fetch_all(&self.pool)
        .await?;
        let mut days: Vec<DayCount> =
            (0..ACTIVITY_DAYS).map(|d| DayCount { day: start + d * DAY, allowed: 0, refused: 0 }).collect();
        for r in &rows {
            let (d, total, allowed): (i64, i64, i64) = (r.try_get("d")?, r.try_get("total")?, r.try_get("allowed")?);
            if let Some(day) = usize::try_from(d).ok().and_then(|d| days.get_mut(d)) {
                day.allowed = allowed;
                day.refused = total - allowed;
            }
        }

        let top_endpoints = sqlx::query(
            "SELECT method, product, endpoint, COUNT(*) AS n FROM audit_events
             WHERE client_id = $1 AND action = 'request' AND occurred_at >= $2 AND endpoint IS NOT NULL
             GROUP BY method, product, endpoint ORDER BY n DESC, endpoint LIMIT 10",
        )
        .bind(client_id)
        .bind(start)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let (m, p, e): (Option<String>, Option<String>, String) =
                (r.try_get("method")?, r.try_get("product")?, r.try_get("endpoint")?);
            Ok(NamedCount {
                name: crate::model::request_phrase(&m.unwrap_or_default(), p.as_deref(), &e, None, true),
                count: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

        // Its own refused requests, and apart from them the refused attempts that named
        // it without being its traffic.
        let refusals = self.reasons_where("client_id = $1 AND decision = 'refused'", client_id, start).await?;
        let attempts = self.reasons_where("attempted_client_id = $1 AND client_id IS NULL", client_id, start).await?;

        let credentials = sqlx::query(
            "SELECT e.credential_id, c.kind, c.prefix, COUNT(*) AS n, MAX(e.occurred_at) AS last_used,
                    SUM(CASE WHEN e.sender_key LIKE 'dpop:%' THEN 1 ELSE 0 END) AS proven,
                    SUM(CASE WHEN e.sender_key LIKE '%x5t#S256:%' THEN 1 ELSE 0 END) AS certified
             FROM audit_events e LEFT JOIN credentials c ON c.id = e.credential_id
             WHERE e.client_id = $1 AND e.action = 'request' AND e.occurred_at >= $2 AND e.credential_id IS NOT NULL
             GROUP BY e.credential_id, c.kind, c.prefix ORDER BY last_used DESC",
        )
        .bind(client_id)
        .bind(start)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CredentialUse {
                credential_id: r.try_get("credential_id")?,
                kind: r.try_get::<Option<String>, _>("kind")?.map(|k| k.parse()).transpose()?,
                prefix: r.try_get("prefix")?,
                requests: r.try_get("n")?,
                proven_requests: r.try_get::<Option<i64>, _>("proven")?.unwrap_or(0),
                certificate_requests: r.try_get::<Option<i64>, _>("certified")?.unwrap_or(0),
                last_used_at: r.try_get("last_used")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

        let last_seen = sqlx::query(
            "SELECT occurred_at FROM audit_events WHERE client_id = $1 AND action = 'request'
             ORDER BY occurred_at DESC LIMIT 1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get("occurred_at"))
        .transpose()?;

        let tasks = self
            .counts_where(
                "SELECT task_id AS name, COUNT(*) AS n FROM audit_events
                 WHERE client_id = $1 AND task_id IS NOT NULL AND action = 'request' AND occurred_at >= $2
                 GROUP BY task_id ORDER BY n DESC, task_id LIMIT 10",
                client_id,
                start,
            )
            .await?;
        let on_its_behalf = self
            .counts_where(
                "SELECT client_id AS name, COUNT(*) AS n FROM audit_events
                 WHERE subject_id = $1 AND action = 'request' AND occurred_at >= $2
                 GROUP BY client_id ORDER BY n DESC, client_id LIMIT 10",
                client_id,
                start,
            )
            .await?;

        Ok(ClientActivity {
            client,
            days,
            top_endpoints,
            refusals,
            attempts,
            credentials,
            tasks,
            on_its_behalf,
            last_seen,
        })
    }

    /// `(name, n)` rows of `sql` (on `$1` = `client_id`, `$2` = `start`).
    async fn counts_where(&self, sql: &str, client_id: &str, start: i64) -> Result<Vec<NamedCount>> {
        sqlx::query(sql)
            .bind(client_id)
            .bind(start)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(NamedCount {
                    name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Request rows since `start` matching `condition` (on `$1` = `client_id`), counted
    /// by reason, most frequent first.
    async fn reasons_where(&self, condition: &str, client_id: &str, start: i64) -> Result<Vec<NamedCount>> {
        let sql = format!(
            "SELECT reason AS name, COUNT(*) AS n FROM audit_events
             WHERE {condition} AND action = 'request' AND occurred_at >= $2
             GROUP BY reason ORDER BY n DESC, reason"
        );
        self.counts_where(&sql, client_id, start).await
    }

    /// The security team's overview: refusals per day, traffic by client type and the
    /// clients refused most, over the last 30 days.
    pub async fn security_dashboard(&self, actor: &Actor) -> Result<SecurityDashboard> {
        actor.permit(Area::Audit, Access::Read)?;
        actor.require_security()?;
        let start = window_start(self.now());
        let mut refusals: Vec<RefusalDay> = (0..ACTIVITY_DAYS)
            .map(|d| RefusalDay { day: start + d * DAY, unauthorized: 0, forbidden: 0, rate_limited: 0, other: 0 })
            .collect();
        // Every refused request, as the tables below count them: the chart and the
        // tables must add up to the same refusals.
        let rows = sqlx::query(
            "SELECT (occurred_at - $1) / $2 AS d, status, COUNT(*) AS n FROM audit_events
             WHERE occurred_at >= $1 AND action = 'request' AND decision = 'refused'
             GROUP BY (occurred_at - $1) / $2, status",
        )
        .bind(start)
        .bind(DAY)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let (d, status, n): (i64, i64, i64) = (r.try_get("d")?, r.try_get("status")?, r.try_get("n")?);
            if let Some(day) = usize::try_from(d).ok().and_then(|d| refusals.get_mut(d)) {
                match status {
                    401 => day.unauthorized += n,
                    403 => day.forbidden += n,
                    429 => day.rate_limited += n,
                    _ => day.other += n,
                }
            }
        }

        // client type → (allowed, refused)
        let mut traffic: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        let rows = sqlx::query(
            "SELECT client_type, decision, COUNT(*) AS n FROM audit_events
             WHERE occurred_at >= $1 AND action = 'request' GROUP BY client_type, decision",
        )
        .bind(start)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let kind = r.try_get::<Option<String>, _>("client_type")?.unwrap_or_else(|| "unidentified".into());
            let allowed = r.try_get::<Option<String>, _>("decision")?.as_deref() == Some("allowed");
            let n: i64 = r.try_get("n")?;
            let entry = traffic.entry(kind).or_default();
            if allowed {
                entry.0 += n;
            } else {
                entry.1 += n;
            }
        }
        let mut by_type: Vec<TypeTraffic> = traffic
            .into_iter()
            .map(|(client_type, (allowed, refused))| TypeTraffic { client_type, allowed, refused })
            .collect();
        by_type.sort_by_key(|t| std::cmp::Reverse(t.allowed + t.refused));

        let most_refused = sqlx::query(
            "SELECT e.client_id, MAX(c.name) AS name, MAX(e.client_type) AS client_type,
                    SUM(CASE WHEN e.decision = 'refused' THEN 1 ELSE 0 END) AS refused, COUNT(*) AS total
             FROM audit_events e LEFT JOIN clients c ON c.id = e.client_id
             WHERE e.occurred_at >= $1 AND e.action = 'request' AND e.client_id IS NOT NULL
             GROUP BY e.client_id
             HAVING SUM(CASE WHEN e.decision = 'refused' THEN 1 ELSE 0 END) > 0
             ORDER BY refused DESC, e.client_id LIMIT 10",
        )
        .bind(start)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ClientRefusals {
                client_id: r.try_get("client_id")?,
                client_name: r.try_get("name")?,
                client_type: r.try_get("client_type")?,
                refused: r.try_get("refused")?,
                total: r.try_get("total")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(SecurityDashboard { refusals, by_type, most_refused })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_thirty_whole_days_ending_today() {
        let now = 1_795_428_876_000; // 2026-11-23 10:14 UTC
        let start = window_start(now);
        assert_eq!(crate::time::format_utc(start), "2026-10-25 00:00 UTC");
        assert_eq!((now - start) / DAY, ACTIVITY_DAYS - 1);
    }
}
