//! Periodic jobs that one replica runs for all (the audit retention purge, say): each
//! replica keeps its own timer, and before running a job claims the period's run in the
//! store. Exactly one claim per period succeeds, whichever replicas ask and however
//! their timers drift; a replica that dies leaves the next period to another.

use crate::error::Result;
use crate::store::Store;

impl Store {
    /// Whether this caller may run job `name` now: true once per `period_ms` in all,
    /// recording the run.
    pub async fn claim_run(&self, name: &str, period_ms: i64) -> Result<bool> {
        let now = self.now();
        let claimed = sqlx::query(
            "INSERT INTO scheduled_runs (name, last_run_at) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at
             WHERE scheduled_runs.last_run_at <= $3",
        )
        .bind(name)
        .bind(now)
        .bind(now.saturating_sub(period_ms))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(claimed == 1)
    }
}
