-- Settlement of one lease, shared by settle.lua (settlements sent on their own, many leases per
-- call) and admit.lua (settlements carried by the next admission of the same tenant): frees the
-- lease and replaces its token reservation with the real count. The lease's presence is what
-- makes a second settlement a no-op: only the call that removes it from at least one subject
-- corrects the tokens (an expired lease stays as a tombstone for that, see leaseTombstone in
-- limiter.go).
--
-- k0: the lease's keys are KEYS[k0 + 1 ..], three per subject: the leases (ZSET), the token
-- buckets and the money (HASHes, see buckets.lua). a0: its arguments are ARGV[a0 + 1 ..]:
-- number of subjects, lease id, tokens used minus reserved (negative: a refund), admission ms
-- (the reply's now of admit.lua), cost minus the cost reserved (nano-USD), charge minus the cost
-- reserved, one character per subject: 0 no money, 1 budgets, 2 budgets and credit.
-- An admission ms of 0 means the admission's reply never came (its call timed out, Redis may
-- have run it later): the lease, if Redis holds it, was never renewed, so it was admitted at
-- its expiry less the TTL.
-- defer (admit.lua; nil in settle.lua) maps the token hashes the admission reads and writes
-- anyway to a list: a correction of the current second's bucket of one of them is appended
-- there for the admission to apply, which saves a read and a write of the hash.
-- Returns 1 if the lease was held, 0 if it was already settled.
local settleArgs = 7 -- ARGV per lease
local function settleLease(k0, a0, window, ttl, now, nowSec, today, defer)
  local n = tonumber(ARGV[a0 + 1])
  local id = ARGV[a0 + 2]
  local diff = tonumber(ARGV[a0 + 3])
  local admitted = tonumber(ARGV[a0 + 4])
  local costDiff = tonumber(ARGV[a0 + 5])
  local chargeDiff = tonumber(ARGV[a0 + 6])
  local kinds = ARGV[a0 + 7]
  local W = window / 1000
  if admitted == 0 then
    for i = 1, n do
      local exp = tonumber(redis.call('ZSCORE', KEYS[k0 + 3 * i - 2], id))
      if exp then
        admitted = exp - ttl
        break
      end
    end
  end
  local held = 0
  for i = 1, n do
    held = held + redis.call('ZREM', KEYS[k0 + 3 * i - 2], id)
  end
  if held == 0 then
    return 0
  end

  -- Money: the spend of the periods the request was admitted in, while they are current (a
  -- past period's counter no longer counts; the ledger has the cost), and the credit counter,
  -- unless it has expired since (the ledger's figures take over then).
  local admDay = math.floor(admitted / 86400000)
  for i = 1, n do
    local kind = string.sub(kinds, i, i)
    if kind ~= '0' and (costDiff ~= 0 or (kind == '2' and chargeDiff ~= 0)) then
      local mk = KEYS[k0 + 3 * i]
      local v = redis.call('HMGET', mk, 'dd', 'dv', 'mm', 'mv', 'cc')
      local f = {}
      if costDiff ~= 0 and admDay == today and tonumber(v[1]) == today then
        f[#f + 1], f[#f + 2] = 'dv', moneyArg(math.max(0, (tonumber(v[2]) or 0) + costDiff))
      end
      local month = monthOf(admDay)
      if costDiff ~= 0 and month == monthOf(today) and tonumber(v[3]) == month then
        f[#f + 1], f[#f + 2] = 'mv', moneyArg(math.max(0, (tonumber(v[4]) or 0) + costDiff))
      end
      if kind == '2' and chargeDiff ~= 0 and v[5] then
        f[#f + 1], f[#f + 2] = 'cc', moneyArg(tonumber(v[5]) + chargeDiff)
      end
      if #f > 0 then
        redis.call('HSET', mk, unpack(f))
      end
    end
  end
  if diff == 0 then
    return 1
  end

  local admSec = math.floor(admitted / 1000)
  for i = 1, n do
    local tk = KEYS[k0 + 3 * i - 1]
    local later = defer and admSec == nowSec and defer[tk]
    if later then
      later[#later + 1] = diff
    else
      local b = advance(tk, nowSec, W, today, admSec)
      local f = {'s', b.sec}
      -- The expiry set at admission covers the reservation's bucket and today's counter; a
      -- charge to the current bucket, or a hash deleted since (ClearSession), needs a new one.
      local expire = not b.exists
      if admSec > nowSec - W then
        -- The reservation's bucket is still in the window: correct it there, never below 0.
        local v = math.max(0, b.extra + diff)
        b.sum = b.sum + v - b.extra
        f[#f + 1], f[#f + 2] = admSec, v
      elseif diff > 0 then
        -- Its bucket left the window: a refund is moot, a charge counts now.
        b.sum = b.sum + diff
        redis.call('HINCRBY', tk, b.sec, diff)
        expire = true
      end
      f[#f + 1], f[#f + 2] = 'n', b.sum
      if math.floor(admitted / 86400000) == today then
        f[#f + 1], f[#f + 2] = 'd', today
        f[#f + 1], f[#f + 2] = 't', math.max(0, b.day + diff)
      end
      redis.call('HSET', tk, unpack(f))
      if expire then
        expireBuckets(tk, now, window, today)
      end
    end
  end
  return 1
end

-- settleAll settles the leases whose keys start at KEYS[k0 + 1] and arguments at ARGV[a0 + 1]
-- (a count, then settleArgs per lease) and returns one result per lease.
local function settleAll(k0, a0, window, ttl, now, nowSec, today, defer)
  local out = {}
  for j = 1, tonumber(ARGV[a0 + 1]) do
    local a = a0 + 1 + settleArgs * (j - 1)
    out[j] = settleLease(k0, a, window, ttl, now, nowSec, today, defer)
    k0 = k0 + 3 * tonumber(ARGV[a + 1])
  end
  return out
end
