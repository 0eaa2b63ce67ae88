-- Indexes for the security team's audit search (newest first, keyset pages on
-- (occurred_at, id)). SQLite ends every index with the rowid, which is `id` here, so
-- the existing (occurred_at) and (client_id, occurred_at) indexes already give the
-- keyset order; profile and request lookups are new.
CREATE INDEX audit_by_profile_time ON audit_events (profile_id, occurred_at);
CREATE INDEX audit_by_request ON audit_events (request_id);
