-- Nothing to change here: PostgreSQL's 0015 tunes its batch write path (the ledger's account check
-- and the free room on the pages of the rows every batch updates); SQLite keeps the foreign key
-- and writes one batch at a time. The version keeps the two stores' migrations numbered alike.
SELECT 1;
