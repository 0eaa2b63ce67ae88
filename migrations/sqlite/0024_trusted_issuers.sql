-- Federation: tokens from an identity provider the enterprise already runs. An admin
-- registers the issuer (its `iss`, where its keys are, the audiences and algorithms
-- accepted, the claim that names the caller); a credential of kind `federated` then
-- links one value of that claim to a profile, so the issuer's token for it is accepted
-- with that profile's grants, limits and audit, and revoking the credential ends it.
CREATE TABLE trusted_issuers (
    id            TEXT PRIMARY KEY,
    issuer        TEXT NOT NULL UNIQUE,
    jwks_uri      TEXT,
    jwks          TEXT,
    audiences     TEXT NOT NULL,
    algorithms    TEXT NOT NULL,
    subject_claim TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER,
    CHECK ((jwks_uri IS NULL) <> (jwks IS NULL))
);

-- SQLite cannot change a CHECK constraint, so the table is rebuilt (no table
-- references it).
CREATE TABLE credentials_new (
    id               TEXT PRIMARY KEY,
    profile_id       TEXT NOT NULL REFERENCES profiles(id),
    kind             TEXT NOT NULL CHECK (kind IN ('client_secret', 'api_key', 'public_key', 'federated')),
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
                             revoked_at, last_used_at, hash_key, public_jwk)
    SELECT id, profile_id, kind, prefix, secret_hash, created_at, expires_at, rotated_at, revoked_at,
           last_used_at, hash_key, public_jwk FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_by_profile ON credentials (profile_id, created_at);
-- One live link per identity: the issuer's token for it means one profile.
CREATE UNIQUE INDEX credentials_one_live_identity ON credentials (issuer_id, external_subject)
    WHERE kind = 'federated' AND revoked_at IS NULL;
