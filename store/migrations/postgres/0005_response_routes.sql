-- The Responses API: which deployment produced each response id, and for whom, so that a follow-up
-- (previous_response_id) and GET/DELETE /v1/responses/{id} go back to the upstream that holds it,
-- on every replica, and never serve another tenant. Rows past expires_at are dead (lookups skip
-- them) and are purged.

CREATE TABLE response_routes (
	response_id   text PRIMARY KEY,
	tenant_id     text NOT NULL,
	key_id        text NOT NULL,
	model         text NOT NULL,   -- the public model of the request that made it
	deployment_id text NOT NULL,
	provider      text NOT NULL,
	created_at    timestamptz NOT NULL,
	expires_at    timestamptz NOT NULL
);
CREATE INDEX response_routes_expires_idx ON response_routes (expires_at);
