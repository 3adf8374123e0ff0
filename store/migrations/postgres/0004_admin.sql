-- Admin API (issue 6): tenant allowlists and metadata, soft deletion of tenants and users, key
-- metadata, admin token roles and tenant scope, the tenant of each admin audit entry, and the
-- run-time deployment overrides merged over the config file at each reload.

ALTER TABLE tenants
	ADD COLUMN models     jsonb,                      -- JSON array of public model names; NULL means every model
	ADD COLUMN metadata   jsonb NOT NULL DEFAULT '{}',
	ADD COLUMN updated_at timestamptz,
	ADD COLUMN deleted_at timestamptz;

ALTER TABLE users
	ADD COLUMN metadata   jsonb NOT NULL DEFAULT '{}',
	ADD COLUMN updated_at timestamptz,
	ADD COLUMN deleted_at timestamptz;

-- An external id names one live user within its tenant: a deleted user's id is free again, so the
-- same person can be provisioned anew (the deleted row keeps its history).
CREATE UNIQUE INDEX users_external_id_idx ON users (tenant_id, external_id)
	WHERE external_id <> '' AND deleted_at IS NULL;
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);

ALTER TABLE api_keys ADD COLUMN updated_at timestamptz;
CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);

ALTER TABLE admin_tokens
	ADD COLUMN prefix     text NOT NULL DEFAULT '',
	ADD COLUMN role       text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'viewer', 'billing')),
	ADD COLUMN tenant_id  text REFERENCES tenants (id),
	ADD COLUMN created_by text NOT NULL DEFAULT '';

ALTER TABLE admin_audit ADD COLUMN tenant_id text NOT NULL DEFAULT '';
CREATE INDEX admin_audit_tenant_idx ON admin_audit (tenant_id, at DESC);
CREATE INDEX admin_audit_target_idx ON admin_audit (target, at DESC);

CREATE TABLE deployment_overrides (
	deployment_id text PRIMARY KEY,
	enabled       boolean,        -- NULL: as the file says (enabled)
	weight        integer CHECK (weight IS NULL OR weight >= 0),
	updated_by    text NOT NULL DEFAULT '',
	updated_at    timestamptz NOT NULL DEFAULT now()
);
