-- Access tokens revoked before their expiry (RFC 7009). Kept until they would have
-- expired anyway; the gateway holds the live ones in memory.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
