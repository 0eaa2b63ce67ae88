-- The MCP tool an agent called (execute_endpoint, list_endpoints, …), so MCP rows can be
-- searched by tool like REST rows by endpoint.
ALTER TABLE audit_events ADD COLUMN tool TEXT;
