-- A product's gateway policy. rate_per_minute: a product-wide rate limit (requests per
-- minute across every caller), protecting its upstream; NULL means none beyond each
-- profile's own. api_key_in_query: whether callers may put an API key in the query
-- string (for clients that cannot set headers); it is never forwarded.
ALTER TABLE products ADD COLUMN rate_per_minute INTEGER;
ALTER TABLE products ADD COLUMN api_key_in_query INTEGER NOT NULL DEFAULT 0;
