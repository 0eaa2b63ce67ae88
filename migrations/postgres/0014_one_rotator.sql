-- Several replicas, one rotator.
--
-- A new signing key is published before it signs: `activates_at` is when it starts
-- signing (NULL: since it was created), so every replica, and every resource server
-- caching the JWKS, knows the key before the first token it signs reaches them.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT;

-- At most one key is the newest (not yet superseded, not revoked): two replicas rotating
-- at once cannot both add one; the second is refused by this index and backs off.
-- Keys left current side by side by earlier concurrent rotations are settled first:
-- every one but the newest counts as retired when its successor was made.
UPDATE signing_keys SET retired_at = (
    SELECT MIN(n.created_at) FROM signing_keys n
    WHERE n.created_at > signing_keys.created_at AND n.retired_at IS NULL AND n.revoked_at IS NULL
)
WHERE retired_at IS NULL AND revoked_at IS NULL AND EXISTS (
    SELECT 1 FROM signing_keys n
    WHERE n.created_at > signing_keys.created_at AND n.retired_at IS NULL AND n.revoked_at IS NULL
);
CREATE UNIQUE INDEX signing_keys_one_newest ON signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL AND revoked_at IS NULL;

-- Periodic jobs that one replica runs for all (the audit retention purge): a replica
-- runs one only after claiming it here, which succeeds once per period.
CREATE TABLE scheduled_runs (
    name        TEXT PRIMARY KEY,
    last_run_at BIGINT NOT NULL
);
