-- Providers and public models defined through the admin API (the control plane's catalog),
-- merged with the config file's when the routing table is built. spec is the entry's settings
-- (the admin API's JSON shape); secret is a provider's credential sealed with the gateway's
-- secret key (AES-GCM, "v1:<key id>:<base64>"), NULL when it has none: never the plaintext.

CREATE TABLE catalog_entries (
	kind       TEXT NOT NULL CHECK (kind IN ('provider', 'model')),
	name       TEXT NOT NULL,
	spec       TEXT NOT NULL,
	secret     TEXT,
	created_at INTEGER NOT NULL,
	updated_by TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (kind, name)
) STRICT;
