-- Prompt-cache writes priced at their own rate, and unpriced usage kept apart in the rollups
-- (see the PostgreSQL migration of the same number).
ALTER TABLE model_pricing ADD COLUMN cache_write_per_million INTEGER NOT NULL DEFAULT 0;

ALTER TABLE usage_records ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;

-- The rollup's key gains priced, which SQLite cannot add to a primary key in place: the table is
-- rebuilt. Rows made before are marked priced (they cannot be split).
CREATE TABLE billing_record_new (
	day                TEXT NOT NULL,
	tenant_id          TEXT NOT NULL,
	user_id            TEXT NOT NULL,
	key_id             TEXT NOT NULL,
	model              TEXT NOT NULL,
	priced             INTEGER NOT NULL DEFAULT 1,
	requests           INTEGER NOT NULL DEFAULT 0,
	prompt_tokens      INTEGER NOT NULL DEFAULT 0,
	completion_tokens  INTEGER NOT NULL DEFAULT 0,
	cached_tokens      INTEGER NOT NULL DEFAULT 0,
	reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
	cost_pico_usd      INTEGER NOT NULL DEFAULT 0,
	cache_write_tokens INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (day, tenant_id, user_id, key_id, model, priced)
) STRICT;

INSERT INTO billing_record_new (day, tenant_id, user_id, key_id, model, priced, requests,
	prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_pico_usd)
SELECT day, tenant_id, user_id, key_id, model, 1, requests, prompt_tokens, completion_tokens,
	cached_tokens, reasoning_tokens, cost_pico_usd FROM billing_record;

DROP TABLE billing_record;
ALTER TABLE billing_record_new RENAME TO billing_record;
CREATE INDEX billing_record_user_idx ON billing_record (user_id, day);
CREATE INDEX billing_record_key_idx ON billing_record (key_id, day);
CREATE INDEX billing_record_tenant_idx ON billing_record (tenant_id, day);
