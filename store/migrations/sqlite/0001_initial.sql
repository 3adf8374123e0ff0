-- The whole schema the gateway, quota, ledger, billing and admin work builds on; the same tables
-- as the PostgreSQL schema. Times are INTEGER unix microseconds (UTC), JSON is TEXT, booleans are
-- 0/1. Money is integer: prices in micro-USD per 1M tokens, costs and balances in pico-USD.

CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

INSERT INTO tenants (id, name, created_at)
VALUES ('default', 'default', CAST(unixepoch('subsec') * 1000000 AS INTEGER));

CREATE TABLE users (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id),
	tier        TEXT NOT NULL,
	external_id TEXT NOT NULL DEFAULT '',
	email       TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX users_tenant_idx ON users (tenant_id);

CREATE TABLE api_keys (
	id               TEXT PRIMARY KEY,
	name             TEXT NOT NULL,
	prefix           TEXT NOT NULL,
	user_id          TEXT REFERENCES users (id),
	tenant_id        TEXT NOT NULL REFERENCES tenants (id),
	models           TEXT,            -- JSON array of public model names; NULL means every model
	rpm              INTEGER,
	tpm              INTEGER,
	tokens_per_day   INTEGER,
	concurrent       INTEGER,
	budget_micro_usd INTEGER,
	budget_period    TEXT,            -- 'day' | 'month' | 'total'
	metadata         TEXT NOT NULL DEFAULT '{}',
	expires_at       INTEGER,
	revoked_at       INTEGER,
	created_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);

-- Secrets live apart from keys so a rotation keeps the old secret alive until its expires_at.
CREATE TABLE api_key_secrets (
	secret_hash TEXT PRIMARY KEY,   -- hex SHA-256 of the plaintext key
	key_id      TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER
) STRICT;

CREATE INDEX api_key_secrets_key_idx ON api_key_secrets (key_id);

-- One row per authenticated request. No foreign keys: the ledger must accept a record whatever
-- happened to its key or user since.
CREATE TABLE usage_records (
	request_id        TEXT NOT NULL,
	client_request_id TEXT NOT NULL DEFAULT '',
	trace_id          TEXT NOT NULL DEFAULT '',
	key_id            TEXT NOT NULL DEFAULT '',
	user_id           TEXT NOT NULL DEFAULT '',
	tenant_id         TEXT NOT NULL DEFAULT '',
	session_id        TEXT NOT NULL DEFAULT '',
	model             TEXT NOT NULL DEFAULT '',
	upstream_model    TEXT NOT NULL DEFAULT '',
	provider          TEXT NOT NULL DEFAULT '',
	deployment        TEXT NOT NULL DEFAULT '',
	endpoint          TEXT NOT NULL DEFAULT '',
	stream            INTEGER NOT NULL DEFAULT 0,
	status            INTEGER NOT NULL,
	error_type        TEXT NOT NULL DEFAULT '',
	prompt_tokens     INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	cached_tokens     INTEGER NOT NULL DEFAULT 0,
	reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
	usage_source      TEXT NOT NULL DEFAULT '',
	cost_pico_usd     INTEGER,
	price_version     TEXT NOT NULL DEFAULT '',
	latency_ms        INTEGER NOT NULL DEFAULT 0,
	ttft_ms           INTEGER NOT NULL DEFAULT 0,
	started_at        INTEGER NOT NULL,
	ended_at          INTEGER NOT NULL,
	PRIMARY KEY (request_id, started_at)
) STRICT;

CREATE INDEX usage_records_started_idx ON usage_records (started_at DESC);
CREATE INDEX usage_records_user_idx ON usage_records (user_id, started_at DESC);
CREATE INDEX usage_records_key_idx ON usage_records (key_id, started_at DESC);
-- No index on trace_id or client_request_id here (PostgreSQL has them): both are random, and a
-- random-order index dirties one page per insert, which doubled the usage writer's cost per
-- record and grew with the table. Lookups by them scan, which the embedded default's scale allows.

-- Versioned prices: the price in force at a time is the row with the latest effective_from not
-- after it, so a past record's cost can always be explained.
CREATE TABLE model_pricing (
	model                    TEXT NOT NULL,
	input_per_million        INTEGER NOT NULL,
	output_per_million       INTEGER NOT NULL,
	cached_input_per_million INTEGER NOT NULL DEFAULT 0,
	reasoning_per_million    INTEGER NOT NULL DEFAULT 0,
	effective_from           INTEGER NOT NULL,
	version                  TEXT NOT NULL,
	created_at               INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
	PRIMARY KEY (model, effective_from)
) STRICT;

-- Limits per subject ('tenant' | 'user' | 'key'), optionally per model; NULL limits fall back to
-- the tier defaults in config.
CREATE TABLE quota_policies (
	subject_type   TEXT NOT NULL,
	subject_id     TEXT NOT NULL,
	model          TEXT,
	rpm            INTEGER,
	tpm            INTEGER,
	tokens_per_day INTEGER,
	concurrent     INTEGER,
	updated_at     INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) STRICT;

CREATE UNIQUE INDEX quota_policies_subject_idx
	ON quota_policies (subject_type, subject_id, COALESCE(model, ''));

-- Daily rollups, fed in the same transaction as the usage rows they count. day is 'YYYY-MM-DD'
-- (UTC), which sorts and ranges by month as text.
CREATE TABLE billing_record (
	day               TEXT NOT NULL,
	tenant_id         TEXT NOT NULL,
	user_id           TEXT NOT NULL,
	key_id            TEXT NOT NULL,
	model             TEXT NOT NULL,
	requests          INTEGER NOT NULL DEFAULT 0,
	prompt_tokens     INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	cached_tokens     INTEGER NOT NULL DEFAULT 0,
	reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
	cost_pico_usd     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (day, tenant_id, user_id, key_id, model)
) STRICT;

CREATE INDEX billing_record_user_idx ON billing_record (user_id, day);

CREATE TABLE credit_accounts (
	id               TEXT PRIMARY KEY,
	subject_type     TEXT NOT NULL,   -- 'tenant' | 'user'
	subject_id       TEXT NOT NULL,
	balance_pico_usd INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
	updated_at       INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
	UNIQUE (subject_type, subject_id)
) STRICT;

-- Append-only: corrections are new rows. A request is charged at most once.
CREATE TABLE credit_ledger (
	id              INTEGER PRIMARY KEY,
	account_id      TEXT NOT NULL REFERENCES credit_accounts (id),
	kind            TEXT NOT NULL,    -- 'charge' | 'grant' | 'refund' | 'adjust'
	amount_pico_usd INTEGER NOT NULL,
	request_id      TEXT,
	note            TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) STRICT;

CREATE UNIQUE INDEX credit_ledger_charge_idx ON credit_ledger (request_id) WHERE kind = 'charge';
CREATE INDEX credit_ledger_account_idx ON credit_ledger (account_id, created_at);

CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
BEGIN
	SELECT RAISE(ABORT, 'credit_ledger is append-only');
END;

CREATE TRIGGER credit_ledger_no_delete BEFORE DELETE ON credit_ledger
BEGIN
	SELECT RAISE(ABORT, 'credit_ledger is append-only');
END;

CREATE TABLE admin_tokens (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	token_hash   TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the token
	created_at   INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER)),
	expires_at   INTEGER,
	revoked_at   INTEGER,
	last_used_at INTEGER
) STRICT;

CREATE TABLE admin_audit (
	id         INTEGER PRIMARY KEY,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL DEFAULT '',
	before     TEXT,   -- JSON
	after      TEXT,   -- JSON
	request_id TEXT NOT NULL DEFAULT '',
	at         INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000000 AS INTEGER))
) STRICT;

CREATE INDEX admin_audit_at_idx ON admin_audit (at DESC);
