-- Indexes for the security team's audit search: newest first, keyset pages on
-- (occurred_at, id), so `id` joins the time indexes to make each page one index range.
DROP INDEX audit_by_time;
CREATE INDEX audit_by_time ON audit_events (occurred_at, id);
DROP INDEX audit_by_client_time;
CREATE INDEX audit_by_client_time ON audit_events (client_id, occurred_at, id);
CREATE INDEX audit_by_profile_time ON audit_events (profile_id, occurred_at, id);
CREATE INDEX audit_by_request ON audit_events (request_id);
