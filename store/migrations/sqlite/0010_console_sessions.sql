-- Signed-in sessions of the admin console. id_hash is the hex SHA-256 of the opaque id the
-- browser holds in its cookie (never the id itself); token_check binds a session to the token it
-- was made from. Rows past expires_at are dead and purged.

CREATE TABLE console_sessions (
	id_hash     TEXT PRIMARY KEY,
	actor       TEXT NOT NULL,
	role        TEXT NOT NULL CHECK (role IN ('admin', 'viewer', 'billing')),
	tenant_id   TEXT NOT NULL DEFAULT '',
	token_check TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX console_sessions_actor_idx ON console_sessions (actor);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);
