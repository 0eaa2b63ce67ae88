-- PostgreSQL's 0011 makes policy changes notify every replica; SQLite has no
-- notifications (servers on one file poll the policy version), so nothing changes here.
SELECT 1;
