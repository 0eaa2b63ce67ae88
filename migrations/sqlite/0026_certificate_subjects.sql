-- `tls_client_auth` (RFC 8705 §2.1): a client authenticates with a certificate issued by
-- a certificate authority the listener trusts (`--tls-client-ca`), named by its subject
-- distinguished name. A credential of kind `certificate_subject` holds the name: shown as
-- registered in `prefix`, and as compared (a SHA-256 of its structure, see
-- domain/src/enforcement/certificates.rs) in `external_subject`, with no issuer: the
-- trusted authority is the server's configuration.
--
-- SQLite cannot change a CHECK constraint, so the table is rebuilt (no table
-- references it).
CREATE TABLE credentials_new (
    id               TEXT PRIMARY KEY,
    profile_id       TEXT NOT NULL REFERENCES profiles(id),
    kind             TEXT NOT NULL CHECK (kind IN ('client_secret', 'api_key', 'public_key', 'federated',
                                                   'certificate_subject')),
    prefix           TEXT NOT NULL,
    secret_hash      TEXT NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    rotated_at       INTEGER,
    revoked_at       INTEGER,
    last_used_at     INTEGER,
    hash_key         TEXT,
    public_jwk       TEXT,
    issuer_id        TEXT REFERENCES trusted_issuers(id),
    external_subject TEXT
);
INSERT INTO credentials_new (id, profile_id, kind, prefix, secret_hash, created_at, expires_at, rotated_at,
                             revoked_at, last_used_at, hash_key, public_jwk, issuer_id, external_subject)
    SELECT id, profile_id, kind, prefix, secret_hash, created_at, expires_at, rotated_at, revoked_at,
           last_used_at, hash_key, public_jwk, issuer_id, external_subject FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_by_profile ON credentials (profile_id, created_at);
CREATE UNIQUE INDEX credentials_one_live_identity ON credentials (issuer_id, external_subject)
    WHERE kind = 'federated' AND revoked_at IS NULL;
-- A subject once per profile: two people registering it at once cannot both succeed.
CREATE UNIQUE INDEX credentials_one_live_subject ON credentials (profile_id, external_subject)
    WHERE kind = 'certificate_subject' AND revoked_at IS NULL;
