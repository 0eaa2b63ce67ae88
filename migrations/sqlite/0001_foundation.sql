-- Portcullis foundation schema (SQLite). Timestamps are Unix milliseconds; flags are
-- 0/1 integers, so that one set of queries serves SQLite and PostgreSQL alike.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('developer', 'security', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('ai_agent', 'application', 'service')),
    description TEXT NOT NULL DEFAULT '',
    suspended   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX clients_by_owner ON clients (owner_id, created_at);

-- A profile carries its rate-limit policy: requests per minute and burst.
CREATE TABLE profiles (
    id                TEXT PRIMARY KEY,
    client_id         TEXT NOT NULL REFERENCES clients(id),
    environment       TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
    rate_per_minute   INTEGER NOT NULL,
    burst             INTEGER NOT NULL,
    token_ttl_seconds INTEGER NOT NULL DEFAULT 900,
    created_at        INTEGER NOT NULL,
    UNIQUE (client_id, environment)
);

-- Only a keyed hash of each secret is stored. `rotated_at` marks a credential replaced
-- by a rotation; its `expires_at` was then cut to the end of the grace period.
CREATE TABLE credentials (
    id           TEXT PRIMARY KEY,
    profile_id   TEXT NOT NULL REFERENCES profiles(id),
    kind         TEXT NOT NULL CHECK (kind IN ('client_secret', 'api_key')),
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    rotated_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX credentials_by_profile ON credentials (profile_id, created_at);

CREATE TABLE products (
    id             TEXT PRIMARY KEY,
    slug           TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    owner          TEXT NOT NULL DEFAULT '',
    tags           TEXT NOT NULL DEFAULT '',
    sandbox_url    TEXT NOT NULL,
    production_url TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id              TEXT PRIMARY KEY,
    product_id      TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    method          TEXT NOT NULL,
    path_template   TEXT NOT NULL,
    operation_id    TEXT NOT NULL DEFAULT '',
    summary         TEXT NOT NULL DEFAULT '',
    scope           TEXT NOT NULL,
    sensitive       INTEGER NOT NULL DEFAULT 0,
    parameters      TEXT NOT NULL DEFAULT '[]',
    request_schema  TEXT,
    response_schema TEXT,
    UNIQUE (product_id, method, path_template)
);

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    profile_id      TEXT NOT NULL REFERENCES profiles(id),
    product_id      TEXT NOT NULL REFERENCES products(id),
    scopes          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
    justification   TEXT NOT NULL DEFAULT '',
    requested_by    TEXT NOT NULL REFERENCES users(id),
    requested_at    INTEGER NOT NULL,
    decided_by      TEXT,
    decided_at      INTEGER,
    decision_reason TEXT,
    expires_at      INTEGER
);
CREATE INDEX grants_by_profile ON grants (profile_id, status);
CREATE INDEX grants_by_status ON grants (status, requested_at);

-- Personal access tokens for the management API.
CREATE TABLE access_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

-- One row per administrative change and (from the gateway on) per request. Rows are
-- only ever inserted.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at   INTEGER NOT NULL,
    request_id    TEXT,
    channel       TEXT NOT NULL,
    actor_user_id TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT,
    target_id     TEXT,
    summary       TEXT NOT NULL DEFAULT '{}',
    client_id     TEXT,
    profile_id    TEXT,
    client_type   TEXT,
    product       TEXT,
    endpoint      TEXT,
    method        TEXT,
    path          TEXT,
    status        INTEGER,
    decision      TEXT,
    reason        TEXT,
    latency_us    INTEGER,
    bytes_in      INTEGER,
    bytes_out     INTEGER,
    client_ip     TEXT,
    user_agent    TEXT
);
CREATE INDEX audit_by_time ON audit_events (occurred_at);
CREATE INDEX audit_by_client_time ON audit_events (client_id, occurred_at);
CREATE INDEX audit_by_target ON audit_events (target_type, target_id, occurred_at);
