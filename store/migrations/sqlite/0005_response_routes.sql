-- The Responses API: which deployment produced each response id, and for whom, so that a follow-up
-- (previous_response_id) and GET/DELETE /v1/responses/{id} go back to the upstream that holds it,
-- on every replica, and never serve another tenant. Rows past expires_at are dead (lookups skip
-- them) and are purged.

CREATE TABLE response_routes (
	response_id   TEXT PRIMARY KEY,
	tenant_id     TEXT NOT NULL,
	key_id        TEXT NOT NULL,
	model         TEXT NOT NULL,   -- the public model of the request that made it
	deployment_id TEXT NOT NULL,
	provider      TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX response_routes_expires_idx ON response_routes (expires_at);
