-- The end of a lease (see the lease size in admit.lua): a replica gives back what it did not use
-- of the permits it took in one admission. The lease log member is re-stamped with the permits
-- used, at the latest use (the replica's bound on it, never later than now), so each still
-- counts for the window after its use; the
-- free concurrency slots are released (those of requests still running stay, each settled later
-- like a lease of its own: settle.lua); the tokens reserved leave the bucket of the admission
-- and what the lease's requests used (the running ones: their reservations) goes into the
-- current one. Giving back twice is a no-op: only the call that removes the member applies it.
-- KEYS: per subject, its RPM log (the lease log is that key with 'l' appended), leases and
-- token buckets. ARGV: window ms, lease span ms, number of subjects, lease id, permits taken,
-- permits used, tokens reserved, tokens used, the admission's ms, the free slots (their numbers,
-- separated by spaces), the latest use in ms after the admission.
-- A lease whose admission's reply never came (its call failed or timed out; Redis may have run
-- it) is given back with permits taken -want (at most want were asked for), tokens reserved per
-- permit, and the rest 0: the script finds the lease, if Redis holds it, and gives all of it
-- back.
-- Reply: {1 if the lease was held (0: given back before), the stamp ms: the admission time of
-- the lease's requests still running}.
local window = tonumber(ARGV[1])
local leaseMs = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local id = ARGV[4]
local k, u = tonumber(ARGV[5]), tonumber(ARGV[6])
local T, spent = tonumber(ARGV[7]), tonumber(ARGV[8])
local granted = tonumber(ARGV[9])
local lastUse = tonumber(ARGV[11])
local W = window / 1000
local time = redis.call('TIME')
local nowSec = tonumber(time[1])
local now = nowSec * 1000 + math.floor(tonumber(time[2]) / 1000)
local today = math.floor(nowSec / 86400)
local free = {}
for j in string.gmatch(ARGV[10], '%d+') do
  free[#free + 1] = id .. '.' .. j
end
if k < 0 then
  local names = {}
  for j = 2, -k do
    names[#names + 1] = id .. ':' .. j
  end
  local scores = redis.call('ZMSCORE', KEYS[1] .. 'l', unpack(names))
  k = 0
  for j, score in ipairs(scores) do
    if score then
      k, granted = j + 1, tonumber(score) - leaseMs
    end
  end
  if k == 0 then
    return {0, now}
  end
  T, u, spent, lastUse = k * T, 0, 0, 0
  for j = 1, k do
    free[j] = id .. '.' .. j
  end
end
local grantSec = math.floor(granted / 1000)
local stamp = math.min(now, granted + lastUse)
local held = 0
for i = 1, n do
  local rlog, leases, tk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if #free > 0 then
    redis.call('ZREM', leases, unpack(free))
  end
  if redis.call('ZREM', rlog .. 'l', id .. ':' .. k) == 1 then
    held = 1
    local counted = 0
    if u > 0 and stamp > now - window then
      redis.call('ZADD', rlog .. 'l', stamp, id .. ':' .. u)
      redis.call('PEXPIRE', rlog .. 'l', window + leaseMs + 1000)
      counted = u
    end
    local b = advance(tk, nowSec, W, today, grantSec)
    local f = {'s', b.sec, 'L', math.max(0, b.leased - k + counted)}
    local vals = {}
    if grantSec > nowSec - W then
      -- The reservation's bucket is still in the window: take the reservation out, never
      -- below 0.
      vals[grantSec] = math.max(0, b.extra - T)
      b.sum = b.sum + vals[grantSec] - b.extra
    end
    if spent > 0 then
      -- What was used goes into the bucket of the latest use, or the current one when that
      -- one has left the window.
      local to = math.floor(stamp / 1000)
      if to <= nowSec - W or to > b.sec then
        to = b.sec
      end
      local cur = vals[to] or tonumber(redis.call('HGET', tk, to)) or 0
      vals[to] = cur + spent
      b.sum = b.sum + spent
    end
    for sec, v in pairs(vals) do
      f[#f + 1], f[#f + 2] = sec, v
    end
    f[#f + 1], f[#f + 2] = 'n', b.sum
    local day = b.day + spent
    if math.floor(granted / 86400000) == today then
      day = math.max(0, day - T)
    end
    f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'd', today, 't', day
    redis.call('HSET', tk, unpack(f))
    expireBuckets(tk, now, window, today)
  end
end
return {held, stamp}
