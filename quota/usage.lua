-- Usage of one subject, read only. KEYS: its RPM log, leases and token buckets. ARGV: window ms.
-- Reply: {requests in the window, live leases, tokens in the window, tokens today}.
local window = tonumber(ARGV[1])
local W = window / 1000
local time = redis.call('TIME')
local nowSec = tonumber(time[1])
local now = nowSec * 1000 + math.floor(tonumber(time[2]) / 1000)
local requests = redis.call('ZCOUNT', KEYS[1], '(' .. (now - window), '+inf')
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1] .. 'l', '(' .. (now - window), '+inf')) do
  requests = requests + leaseCount(m)
end
local live = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local minute = 0
for _, v in ipairs(redis.call('HMGET', KEYS[3], unpack(windowFields(nowSec, W)))) do
  minute = minute + (tonumber(v) or 0)
end
local st = redis.call('HMGET', KEYS[3], 'd', 't')
local day = 0
if tonumber(st[1]) == math.floor(nowSec / 86400) then
  day = tonumber(st[2]) or 0
end
return {requests, live, minute, day}
