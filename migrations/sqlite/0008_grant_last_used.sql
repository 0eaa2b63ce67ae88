-- When a grant last allowed a request: kept by the audit writer (as for credentials),
-- so access reviews read it instead of searching the trail. Filled from the trail once.
ALTER TABLE grants ADD COLUMN last_used_at INTEGER;
UPDATE grants SET last_used_at = (
    SELECT MAX(e.occurred_at) FROM audit_events e JOIN products p ON p.slug = e.product
    WHERE e.profile_id = grants.profile_id AND p.id = grants.product_id
      AND e.action = 'request' AND e.decision = 'allowed'
);
