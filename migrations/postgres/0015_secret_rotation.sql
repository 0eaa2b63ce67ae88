-- Which server secret keyed each stored hash (a one-way fingerprint of the key), so a
-- rotation of the server secret can tell what is re-keyed and what still needs the old
-- one. NULL: written before this was recorded (stamped at the next start).
ALTER TABLE credentials ADD COLUMN hash_key TEXT;
ALTER TABLE access_tokens ADD COLUMN hash_key TEXT;

-- The secret new hashes are made with, as the store knows it: a server started with
-- another secret refuses to start instead of writing hashes no one else can check, and
-- only servers holding this secret re-key rows during a rotation.
CREATE TABLE secret_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    current_key TEXT
);
INSERT INTO secret_state (id, current_key) VALUES (1, NULL);
