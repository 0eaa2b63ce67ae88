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
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT,
    CHECK ((jwks_uri IS NULL) <> (jwks IS NULL))
);

ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('client_secret', 'api_key', 'public_key', 'federated'));
ALTER TABLE credentials ADD COLUMN issuer_id TEXT REFERENCES trusted_issuers(id);
ALTER TABLE credentials ADD COLUMN external_subject TEXT;
-- One live link per identity: the issuer's token for it means one profile.
CREATE UNIQUE INDEX credentials_one_live_identity ON credentials (issuer_id, external_subject)
    WHERE kind = 'federated' AND revoked_at IS NULL;
