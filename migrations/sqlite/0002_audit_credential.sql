-- The credential a request authenticated with, so reviews can ask which key an agent used.
ALTER TABLE audit_events ADD COLUMN credential_id TEXT;
