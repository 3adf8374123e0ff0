-- A/B experiments defined through the admin API. model and salt are fixed at creation (the salt
-- decides which caller gets which variant); spec is the description, variants and exclusions (the
-- admin API's JSON shape). Every usage record names the experiment and variant that routed it
-- ('' when none), and the results endpoint reads them back through the partial index, which
-- records outside any experiment do not enter. Building it reads every partition once, and the
-- usage writes of replicas still running wait for it meanwhile (a partitioned table has no
-- CREATE INDEX CONCURRENTLY): on a large ledger the upgrade holds the ledger's writes that long.

CREATE TABLE experiments (
	id         text PRIMARY KEY,
	model      text NOT NULL,
	state      text NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'stopped')),
	salt       text NOT NULL,
	spec       jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_by text NOT NULL DEFAULT '',
	updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE usage_records
	ADD COLUMN experiment text NOT NULL DEFAULT '',
	ADD COLUMN variant text NOT NULL DEFAULT '';

CREATE INDEX usage_records_experiment_idx ON usage_records (experiment, variant) WHERE experiment <> '';
