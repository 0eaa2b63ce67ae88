-- A client may authenticate with a key pair instead of a secret (private_key_jwt,
-- RFC 7523): the developer registers the public key, a credential of kind `public_key`
-- whose `public_jwk` holds it (public members only) and whose `secret_hash` is
-- `jkt:` and its RFC 7638 thumbprint, so one key belongs to one credential, ever.
-- SQLite cannot change a CHECK constraint, so the table is rebuilt (no table
-- references it).
CREATE TABLE credentials_new (
    id           TEXT PRIMARY KEY,
    profile_id   TEXT NOT NULL REFERENCES profiles(id),
    kind         TEXT NOT NULL CHECK (kind IN ('client_secret', 'api_key', 'public_key')),
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    rotated_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    hash_key     TEXT,
    public_jwk   TEXT
);
INSERT INTO credentials_new (id, profile_id, kind, prefix, secret_hash, created_at, expires_at, rotated_at,
                             revoked_at, last_used_at, hash_key)
    SELECT id, profile_id, kind, prefix, secret_hash, created_at, expires_at, rotated_at, revoked_at,
           last_used_at, hash_key FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_by_profile ON credentials (profile_id, created_at);
