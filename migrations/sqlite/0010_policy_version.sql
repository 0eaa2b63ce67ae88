-- The policy's version: every change the gateway must enforce bumps it in the change's
-- own transaction. A snapshot carries the version it was read at, so a reload that
-- started before a change can never replace the snapshot that includes it, and servers
-- poll this one row to learn of changes made elsewhere (another replica, the CLI).
CREATE TABLE policy_state (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO policy_state (id, version) VALUES (1, 0);
-- A signing key revoked (compromised): it verifies nothing any more, at once.
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
