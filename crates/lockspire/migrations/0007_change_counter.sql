-- Counts changes to clients and signing keys, for the processes that share a SQLite file (a
-- server and the `lockspire` command): each change moves it in its own transaction, and a
-- running server that sees it move forgets what it cached. (PostgreSQL announces changes with
-- NOTIFY instead; the table exists there too, unused, so both databases share one schema.)
CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO change_counter (id, n) VALUES (1, 0);
