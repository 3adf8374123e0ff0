-- The whole schema the gateway, quota, ledger, billing and admin work builds on. Money is integer:
-- prices in micro-USD per 1M tokens, a record's cost in pico-USD, rollups and balances NUMERIC.

CREATE TABLE tenants (
	id         text PRIMARY KEY,
	name       text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenants (id, name) VALUES ('default', 'default');

CREATE TABLE users (
	id          text PRIMARY KEY,
	tenant_id   text NOT NULL REFERENCES tenants (id),
	tier        text NOT NULL,
	external_id text NOT NULL DEFAULT '',
	email       text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL
);

CREATE INDEX users_tenant_idx ON users (tenant_id);

CREATE TABLE api_keys (
	id                text PRIMARY KEY,
	name              text NOT NULL,
	prefix            text NOT NULL,
	user_id           text REFERENCES users (id),
	tenant_id         text NOT NULL REFERENCES tenants (id),
	models            jsonb,          -- JSON array of public model names; NULL means every model
	rpm               bigint,
	tpm               bigint,
	tokens_per_day    bigint,
	concurrent        bigint,
	budget_micro_usd  bigint,
	budget_period     text,           -- 'day' | 'month' | 'total'
	metadata          jsonb NOT NULL DEFAULT '{}',
	expires_at        timestamptz,
	revoked_at        timestamptz,
	created_at        timestamptz NOT NULL
);

CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);

-- Secrets live apart from keys so a rotation keeps the old secret alive until its expires_at.
CREATE TABLE api_key_secrets (
	secret_hash text PRIMARY KEY,   -- hex SHA-256 of the plaintext key
	key_id      text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz
);

CREATE INDEX api_key_secrets_key_idx ON api_key_secrets (key_id);

-- One row per authenticated request. No foreign keys: the ledger must accept a record whatever
-- happened to its key or user since. Partitions by month are made ahead by Migrate; the DEFAULT
-- partition catches anything outside them so a write never fails for want of one.
CREATE TABLE usage_records (
	request_id        text NOT NULL,
	client_request_id text NOT NULL DEFAULT '',
	trace_id          text NOT NULL DEFAULT '',
	key_id            text NOT NULL DEFAULT '',
	user_id           text NOT NULL DEFAULT '',
	tenant_id         text NOT NULL DEFAULT '',
	session_id        text NOT NULL DEFAULT '',
	model             text NOT NULL DEFAULT '',
	upstream_model    text NOT NULL DEFAULT '',
	provider          text NOT NULL DEFAULT '',
	deployment        text NOT NULL DEFAULT '',
	endpoint          text NOT NULL DEFAULT '',
	stream            boolean NOT NULL DEFAULT false,
	status            integer NOT NULL,
	error_type        text NOT NULL DEFAULT '',
	prompt_tokens     bigint NOT NULL DEFAULT 0,
	completion_tokens bigint NOT NULL DEFAULT 0,
	cached_tokens     bigint NOT NULL DEFAULT 0,
	reasoning_tokens  bigint NOT NULL DEFAULT 0,
	usage_source      text NOT NULL DEFAULT '',
	cost_pico_usd     bigint,
	price_version     text NOT NULL DEFAULT '',
	latency_ms        bigint NOT NULL DEFAULT 0,
	ttft_ms           bigint NOT NULL DEFAULT 0,
	started_at        timestamptz NOT NULL,
	ended_at          timestamptz NOT NULL,
	PRIMARY KEY (request_id, started_at)
) PARTITION BY RANGE (started_at);

CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;

CREATE INDEX usage_records_started_idx ON usage_records (started_at DESC);
CREATE INDEX usage_records_user_idx ON usage_records (user_id, started_at DESC);
CREATE INDEX usage_records_key_idx ON usage_records (key_id, started_at DESC);
CREATE INDEX usage_records_trace_idx ON usage_records (trace_id) WHERE trace_id <> '';
CREATE INDEX usage_records_client_request_idx ON usage_records (client_request_id)
	WHERE client_request_id <> '';

-- Versioned prices: the price in force at a time is the row with the latest effective_from not
-- after it, so a past record's cost can always be explained.
CREATE TABLE model_pricing (
	model                    text NOT NULL,
	input_per_million        bigint NOT NULL,
	output_per_million       bigint NOT NULL,
	cached_input_per_million bigint NOT NULL DEFAULT 0,
	reasoning_per_million    bigint NOT NULL DEFAULT 0,
	effective_from           timestamptz NOT NULL,
	version                  text NOT NULL,
	created_at               timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (model, effective_from)
);

-- Limits per subject ('tenant' | 'user' | 'key'), optionally per model; NULL limits fall back to
-- the tier defaults in config.
CREATE TABLE quota_policies (
	subject_type   text NOT NULL,
	subject_id     text NOT NULL,
	model          text,
	rpm            bigint,
	tpm            bigint,
	tokens_per_day bigint,
	concurrent     bigint,
	updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX quota_policies_subject_idx
	ON quota_policies (subject_type, subject_id, COALESCE(model, ''));

-- Daily rollups, fed in the same transaction as the usage rows they count.
CREATE TABLE billing_record (
	day               date NOT NULL,
	tenant_id         text NOT NULL,
	user_id           text NOT NULL,
	key_id            text NOT NULL,
	model             text NOT NULL,
	requests          bigint NOT NULL DEFAULT 0,
	prompt_tokens     bigint NOT NULL DEFAULT 0,
	completion_tokens bigint NOT NULL DEFAULT 0,
	cached_tokens     bigint NOT NULL DEFAULT 0,
	reasoning_tokens  bigint NOT NULL DEFAULT 0,
	cost_pico_usd     numeric(38, 0) NOT NULL DEFAULT 0,
	PRIMARY KEY (day, tenant_id, user_id, key_id, model)
);

CREATE INDEX billing_record_user_idx ON billing_record (user_id, day);

CREATE TABLE credit_accounts (
	id               text PRIMARY KEY,
	subject_type     text NOT NULL,   -- 'tenant' | 'user'
	subject_id       text NOT NULL,
	balance_pico_usd numeric(38, 0) NOT NULL DEFAULT 0,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	UNIQUE (subject_type, subject_id)
);

-- Append-only: corrections are new rows. A request is charged at most once.
CREATE TABLE credit_ledger (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id      text NOT NULL REFERENCES credit_accounts (id),
	kind            text NOT NULL,    -- 'charge' | 'grant' | 'refund' | 'adjust'
	amount_pico_usd numeric(38, 0) NOT NULL,
	request_id      text,
	note            text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX credit_ledger_charge_idx ON credit_ledger (request_id) WHERE kind = 'charge';
CREATE INDEX credit_ledger_account_idx ON credit_ledger (account_id, created_at);

CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'credit_ledger is append-only';
END;
$$;

CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
	FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();

CREATE TABLE admin_tokens (
	id           text PRIMARY KEY,
	name         text NOT NULL,
	token_hash   text NOT NULL UNIQUE,   -- hex SHA-256 of the token
	created_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz,
	revoked_at   timestamptz,
	last_used_at timestamptz
);

CREATE TABLE admin_audit (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	actor      text NOT NULL,
	action     text NOT NULL,
	target     text NOT NULL DEFAULT '',
	before     jsonb,
	after      jsonb,
	request_id text NOT NULL DEFAULT '',
	at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX admin_audit_at_idx ON admin_audit (at DESC);
