-- The key a request proved it holds, when its token was bound to one:
-- `dpop:<RFC 7638 thumbprint>`. Lets the security team tell sender-constrained traffic
-- from bearer traffic, and follow one key across requests.
ALTER TABLE audit_events ADD COLUMN sender_key TEXT;
