-- `tls_client_auth` (RFC 8705 §2.1): a client authenticates with a certificate issued by
-- a certificate authority the listener trusts (`--tls-client-ca`), named by its subject
-- distinguished name. A credential of kind `certificate_subject` holds the name: shown as
-- registered in `prefix`, and as compared (a SHA-256 of its structure, see
-- domain/src/enforcement/certificates.rs) in `external_subject`, with no issuer: the
-- trusted authority is the server's configuration.
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('client_secret', 'api_key', 'public_key', 'federated', 'certificate_subject'));
-- A subject once per profile: two people registering it at once cannot both succeed.
CREATE UNIQUE INDEX credentials_one_live_subject ON credentials (profile_id, external_subject)
    WHERE kind = 'certificate_subject' AND revoked_at IS NULL;
