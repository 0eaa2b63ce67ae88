-- The W3C trace each request belongs to, to follow a call into the upstream's logs.
ALTER TABLE audit_events ADD COLUMN trace_id TEXT;
