-- Response cache and idempotency: a usage record that sent a stored answer again names the
-- record whose answer it was (replay_of); keys and tenants opt in to the response cache.

ALTER TABLE usage_records ADD COLUMN replay_of TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN response_cache INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN response_cache INTEGER NOT NULL DEFAULT 0;
