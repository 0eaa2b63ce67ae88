-- Delegated tokens (RFC 8693 token exchange): the client on whose behalf a request acts,
-- and the chain of clients acting (the acting one first, space-separated). The audit
-- search finds a subject's delegated traffic and every request an actor took part in.
ALTER TABLE audit_events ADD COLUMN subject_id TEXT;
ALTER TABLE audit_events ADD COLUMN actor_chain TEXT;
CREATE INDEX audit_by_subject_time ON audit_events (subject_id, occurred_at, id) WHERE subject_id IS NOT NULL;
