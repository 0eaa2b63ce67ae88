-- Every replica hears of a policy change the moment it commits: the version's update
-- notifies `portcullis_policy` (delivered at commit, never for a rolled-back change).
-- The one-second version poll stays, for notifications lost with a connection.
CREATE FUNCTION portcullis_policy_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('portcullis_policy', NEW.version::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER policy_state_notify AFTER UPDATE ON policy_state
    FOR EACH ROW EXECUTE FUNCTION portcullis_policy_notify();
