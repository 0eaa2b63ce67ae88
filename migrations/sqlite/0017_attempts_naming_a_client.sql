-- A client's page lists the refused attempts that named it (a wrong secret with its
-- client id, one of its revoked credentials), apart from its own traffic.
CREATE INDEX audit_by_attempted_client_time ON audit_events (attempted_client_id, occurred_at);
