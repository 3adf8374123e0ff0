-- Alerts on limits and budgets: thresholds per subject, the webhooks alerts go to, the events
-- (one per crossing: the unique key makes a crossing seen by several replicas one row), and the
-- deliveries of each event to each webhook with a log of their attempts.

-- Thresholds of one subject ("global" with id '' for every subject), as a JSON object of kind →
-- list of percents; a kind the object does not name inherits.
CREATE TABLE alert_thresholds (
	subject_type TEXT NOT NULL CHECK (subject_type IN ('global', 'tenant', 'user', 'key')),
	subject_id   TEXT NOT NULL,
	thresholds   TEXT NOT NULL,
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (subject_type, subject_id)
) STRICT;

CREATE TABLE alert_webhooks (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	url        TEXT NOT NULL,
	secret     TEXT NOT NULL,   -- signs deliveries; never returned after creation
	enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created_by TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE alert_events (
	id           TEXT PRIMARY KEY,
	kind         TEXT NOT NULL,
	subject_type TEXT NOT NULL,
	subject_id   TEXT NOT NULL,
	tenant_id    TEXT NOT NULL DEFAULT '',
	period       TEXT NOT NULL,   -- the day, the month, or the credit funding the crossing belongs to
	threshold    INTEGER NOT NULL,
	limit_value  TEXT NOT NULL,   -- decimal: USD or tokens
	used         TEXT NOT NULL,
	payload      TEXT NOT NULL,   -- the JSON body every delivery sends, byte for byte
	created_at   INTEGER NOT NULL,
	UNIQUE (kind, subject_type, subject_id, period, threshold)
) STRICT;
CREATE INDEX alert_events_created_idx ON alert_events (created_at DESC, id DESC);
CREATE INDEX alert_events_subject_idx ON alert_events (subject_type, subject_id, created_at DESC);
CREATE INDEX alert_events_tenant_idx ON alert_events (tenant_id, created_at DESC);

CREATE TABLE alert_deliveries (
	id              TEXT PRIMARY KEY,
	event_id        TEXT NOT NULL REFERENCES alert_events (id),
	webhook_id      TEXT NOT NULL REFERENCES alert_webhooks (id) ON DELETE CASCADE,
	state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,   -- set while pending
	lease_until     INTEGER,   -- a replica is sending it until then
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	UNIQUE (event_id, webhook_id)
) STRICT;
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_created_idx ON alert_deliveries (created_at DESC, id DESC);

CREATE TABLE alert_delivery_attempts (
	delivery_id     TEXT NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
	attempt         INTEGER NOT NULL,
	status_code     INTEGER NOT NULL DEFAULT 0,   -- 0: no answer
	error           TEXT NOT NULL DEFAULT '',
	duration_ms     INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,                  -- the retry it planned, if any
	at              INTEGER NOT NULL,
	PRIMARY KEY (delivery_id, attempt)
) STRICT;
