-- Keys that sign access tokens. The private key is sealed (AES-256-GCM) with a key
-- derived from the server secret; the public key is published in the JWKS while the
-- key is current or was retired recently enough for its tokens to still be valid.
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    algorithm          TEXT NOT NULL,
    public_key         TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    retired_at         INTEGER
);
