-- Signed-in sessions of the admin console. id_hash is the hex SHA-256 of the opaque id the
-- browser holds in its cookie (never the id itself); token_check binds a session to the token it
-- was made from. Rows past expires_at are dead and purged.

CREATE TABLE console_sessions (
	id_hash     text PRIMARY KEY,
	actor       text NOT NULL,
	role        text NOT NULL CHECK (role IN ('admin', 'viewer', 'billing')),
	tenant_id   text NOT NULL DEFAULT '',
	token_check text NOT NULL,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_actor_idx ON console_sessions (actor);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
