-- A client may authenticate with a key pair instead of a secret (private_key_jwt,
-- RFC 7523): the developer registers the public key, a credential of kind `public_key`
-- whose `public_jwk` holds it (public members only) and whose `secret_hash` is
-- `jkt:` and its RFC 7638 thumbprint, so one key belongs to one credential, ever.
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('client_secret', 'api_key', 'public_key'));
ALTER TABLE credentials ADD COLUMN public_jwk TEXT;
