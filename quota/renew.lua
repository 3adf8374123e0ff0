-- Renewal: pushes a live lease's expiry to now + TTL in every subject. An expired lease is not
-- revived (its slot may have been taken since); its tombstone stays as it is.
-- KEYS: the leases ZSET of each subject. ARGV: lease id, lease TTL ms, lease tombstone ms.
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
local tombstone = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, leases in ipairs(KEYS) do
  local exp = tonumber(redis.call('ZSCORE', leases, id))
  if exp and exp > now then
    redis.call('ZADD', leases, now + ttl, id)
    redis.call('PEXPIRE', leases, ttl + tombstone)
  end
end
return 1
