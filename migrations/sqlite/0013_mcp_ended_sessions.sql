-- MCP sessions ended by `DELETE /mcp`. Session ids are sealed and need no row to be
-- valid, so an end is the one thing every replica must learn from the store: each polls
-- the rows after the last id it has seen. Only a hash of the id is kept, and a row goes
-- once the session would have expired anyway.
CREATE TABLE mcp_ended_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    session_hash TEXT NOT NULL UNIQUE,
    profile_id   TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER NOT NULL
);
CREATE INDEX mcp_ended_sessions_expires_at ON mcp_ended_sessions (expires_at);
