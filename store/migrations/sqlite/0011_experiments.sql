-- A/B experiments defined through the admin API. model and salt are fixed at creation (the salt
-- decides which caller gets which variant); spec is the description, variants and exclusions (the
-- admin API's JSON shape). Every usage record names the experiment and variant that routed it
-- ('' when none), and the results endpoint reads them back through the partial index, which
-- records outside any experiment do not enter.

CREATE TABLE experiments (
	id         TEXT PRIMARY KEY,
	model      TEXT NOT NULL,
	state      TEXT NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'stopped')),
	salt       TEXT NOT NULL,
	spec       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_by TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
) STRICT;

ALTER TABLE usage_records ADD COLUMN experiment TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_records ADD COLUMN variant TEXT NOT NULL DEFAULT '';

CREATE INDEX usage_records_experiment_idx ON usage_records (experiment, variant) WHERE experiment <> '';
