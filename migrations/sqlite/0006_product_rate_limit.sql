-- A product-wide rate limit (requests per minute across every caller), protecting its
-- upstream; NULL means none beyond each profile's own.
ALTER TABLE products ADD COLUMN rate_per_minute INTEGER;
