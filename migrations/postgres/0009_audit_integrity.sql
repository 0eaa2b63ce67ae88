-- What the upstream answered when it differs from what the caller got (499: the caller
-- went away first), and the client id a refused request named, kept apart from the
-- authenticated client_id so nobody can write into another client's record.
ALTER TABLE audit_events ADD COLUMN upstream_status BIGINT;
ALTER TABLE audit_events ADD COLUMN attempted_client_id TEXT;
-- One row per request id: the writer inserts with ON CONFLICT (request_id) DO NOTHING,
-- so a batch retried after a lost commit answer, or replayed from the spill file, is
-- stored once. Administrative events have no request id (NULLs never conflict).
DROP INDEX audit_by_request;
CREATE UNIQUE INDEX audit_by_request ON audit_events (request_id);
