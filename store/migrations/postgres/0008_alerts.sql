-- Alerts on limits and budgets: thresholds per subject, the webhooks alerts go to, the events
-- (one per crossing: the unique key makes a crossing seen by several replicas one row), and the
-- deliveries of each event to each webhook with a log of their attempts.

-- Thresholds of one subject ("global" with id '' for every subject), as a JSON object of kind →
-- list of percents; a kind the object does not name inherits.
CREATE TABLE alert_thresholds (
	subject_type text NOT NULL CHECK (subject_type IN ('global', 'tenant', 'user', 'key')),
	subject_id   text NOT NULL,
	thresholds   jsonb NOT NULL,
	updated_at   timestamptz NOT NULL,
	PRIMARY KEY (subject_type, subject_id)
);

CREATE TABLE alert_webhooks (
	id         text PRIMARY KEY,
	name       text NOT NULL,
	url        text NOT NULL,
	secret     text NOT NULL,   -- signs deliveries; never returned after creation
	enabled    boolean NOT NULL DEFAULT true,
	created_by text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL
);

CREATE TABLE alert_events (
	id           text PRIMARY KEY,
	kind         text NOT NULL,
	subject_type text NOT NULL,
	subject_id   text NOT NULL,
	tenant_id    text NOT NULL DEFAULT '',
	period       text NOT NULL,   -- the day, the month, or the credit funding the crossing belongs to
	threshold    integer NOT NULL,
	limit_value  text NOT NULL,   -- decimal: USD or tokens
	used         text NOT NULL,
	payload      text NOT NULL,   -- the JSON body every delivery sends, byte for byte
	created_at   timestamptz NOT NULL,
	UNIQUE (kind, subject_type, subject_id, period, threshold)
);
CREATE INDEX alert_events_created_idx ON alert_events (created_at DESC, id DESC);
CREATE INDEX alert_events_subject_idx ON alert_events (subject_type, subject_id, created_at DESC);
CREATE INDEX alert_events_tenant_idx ON alert_events (tenant_id, created_at DESC);

CREATE TABLE alert_deliveries (
	id              text PRIMARY KEY,
	event_id        text NOT NULL REFERENCES alert_events (id),
	webhook_id      text NOT NULL REFERENCES alert_webhooks (id) ON DELETE CASCADE,
	state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,   -- set while pending
	lease_until     timestamptz,   -- a replica is sending it until then
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	UNIQUE (event_id, webhook_id)
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_created_idx ON alert_deliveries (created_at DESC, id DESC);

CREATE TABLE alert_delivery_attempts (
	delivery_id     text NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
	attempt         integer NOT NULL,
	status_code     integer NOT NULL DEFAULT 0,   -- 0: no answer
	error           text NOT NULL DEFAULT '',
	duration_ms     bigint NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,                  -- the retry it planned, if any
	at              timestamptz NOT NULL,
	PRIMARY KEY (delivery_id, attempt)
);
