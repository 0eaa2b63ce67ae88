-- What a personal access token may be used for: canonical scope names separated by
-- spaces (`clients:write audit:read`). Tokens made before scopes existed had their
-- owner's every right, and keep exactly that.
ALTER TABLE access_tokens ADD COLUMN scopes TEXT NOT NULL
    DEFAULT 'clients:write catalog:write grants:write audit:read reviews:write users:write tokens:write';
