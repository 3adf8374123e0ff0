-- Response cache and idempotency: a usage record that sent a stored answer again names the
-- record whose answer it was (replay_of); keys and tenants opt in to the response cache.

ALTER TABLE usage_records ADD COLUMN replay_of text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN response_cache boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN response_cache boolean NOT NULL DEFAULT false;
