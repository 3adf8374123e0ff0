-- Settlements sent on their own (none was carried by an admission, see settleLease): any
-- number of leases of one tenant in one call.
-- KEYS: three per subject of each lease, lease after lease. ARGV: window ms, lease TTL ms,
-- then the count of leases and settleArgs per lease (see settleLease).
-- Reply: per lease, 1 if it was held, 0 if it was already settled.
local time = redis.call('TIME')
local nowSec = tonumber(time[1])
local now = nowSec * 1000 + math.floor(tonumber(time[2]) / 1000)
return settleAll(0, 2, tonumber(ARGV[1]), tonumber(ARGV[2]), now, nowSec, math.floor(nowSec / 86400))
