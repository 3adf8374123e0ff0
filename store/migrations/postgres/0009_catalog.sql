-- Providers and public models defined through the admin API (the control plane's catalog),
-- merged with the config file's when the routing table is built. spec is the entry's settings
-- (the admin API's JSON shape); secret is a provider's credential sealed with the gateway's
-- secret key (AES-GCM, "v1:<key id>:<base64>"), NULL when it has none: never the plaintext.

CREATE TABLE catalog_entries (
	kind       text NOT NULL CHECK (kind IN ('provider', 'model')),
	name       text NOT NULL,
	spec       jsonb NOT NULL,
	secret     text,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_by text NOT NULL DEFAULT '',
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (kind, name)
);
