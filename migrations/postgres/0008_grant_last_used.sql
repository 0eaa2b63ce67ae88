-- When a grant last allowed a request: kept by the audit writer (as for credentials),
-- so access reviews read it instead of searching the trail. Filled from the trail once,
-- newest row first through the (profile_id, occurred_at) index: MAX() over a busy
-- profile read all its rows for every grant (72 s for 8,200 grants at 10M rows).
ALTER TABLE grants ADD COLUMN last_used_at BIGINT;
UPDATE grants SET last_used_at = (
    SELECT e.occurred_at FROM audit_events e
    WHERE e.profile_id = grants.profile_id
      AND e.product = (SELECT p.slug FROM products p WHERE p.id = grants.product_id)
      AND e.action = 'request' AND e.decision = 'allowed'
    ORDER BY e.occurred_at DESC LIMIT 1
);
