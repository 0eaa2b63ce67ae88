-- Whether a profile's access tokens must be sender-constrained: `none` (bearer tokens
-- and API keys are accepted) or `dpop` (only DPoP-bound tokens, RFC 9449). Checked in
-- code against `SenderConstraint`, so a later mechanism (mTLS) needs no table rebuild.
ALTER TABLE profiles ADD COLUMN sender_constraint TEXT NOT NULL DEFAULT 'none';
