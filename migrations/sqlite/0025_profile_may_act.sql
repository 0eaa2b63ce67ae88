-- Who may act on behalf of a profile's client through token exchange (RFC 8693
-- `may_act`): `*` anyone holding its token (as before this column), else the client ids
-- allowed, separated by spaces (none: nobody).
ALTER TABLE profiles ADD COLUMN may_act TEXT NOT NULL DEFAULT '*';
