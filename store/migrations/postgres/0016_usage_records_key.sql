-- Nothing to change here: SQLite's 0016 rebuilds usage_records on one unique (started_at,
-- request_id) index to write fewer B-trees per record; PostgreSQL's partitioned table keeps its
-- key. The version keeps the two stores' migrations numbered alike.
SELECT 1;
