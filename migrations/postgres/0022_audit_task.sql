-- The task a per-task token serves (RFC 9396 `portcullis_task`), on every row of the
-- task's requests and on the row of the token request that made it: the security team
-- follows one task from its token to its last call.
ALTER TABLE audit_events ADD COLUMN task_id TEXT;
CREATE INDEX audit_by_task_time ON audit_events (task_id, occurred_at, id) WHERE task_id IS NOT NULL;
