-- Admin API (issue 6): tenant allowlists and metadata, soft deletion of tenants and users, key
-- metadata, admin token roles and tenant scope, the tenant of each admin audit entry, and the
-- run-time deployment overrides merged over the config file at each reload.

ALTER TABLE tenants ADD COLUMN models TEXT;   -- JSON array of public model names; NULL means every model
ALTER TABLE tenants ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN updated_at INTEGER;
ALTER TABLE tenants ADD COLUMN deleted_at INTEGER;

ALTER TABLE users ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN updated_at INTEGER;
ALTER TABLE users ADD COLUMN deleted_at INTEGER;

-- An external id names one live user within its tenant: a deleted user's id is free again, so the
-- same person can be provisioned anew (the deleted row keeps its history).
CREATE UNIQUE INDEX users_external_id_idx ON users (tenant_id, external_id)
	WHERE external_id <> '' AND deleted_at IS NULL;
CREATE INDEX users_created_idx ON users (created_at DESC, id DESC);

ALTER TABLE api_keys ADD COLUMN updated_at INTEGER;
CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);

ALTER TABLE admin_tokens ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'viewer', 'billing'));
ALTER TABLE admin_tokens ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
ALTER TABLE admin_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

ALTER TABLE admin_audit ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';
CREATE INDEX admin_audit_tenant_idx ON admin_audit (tenant_id, at DESC);
CREATE INDEX admin_audit_target_idx ON admin_audit (target, at DESC);

CREATE TABLE deployment_overrides (
	deployment_id TEXT PRIMARY KEY,
	enabled       INTEGER CHECK (enabled IS NULL OR enabled IN (0, 1)),   -- NULL: as the file says (enabled)
	weight        INTEGER CHECK (weight IS NULL OR weight >= 0),
	updated_by    TEXT NOT NULL DEFAULT '',
	updated_at    INTEGER NOT NULL
) STRICT;
