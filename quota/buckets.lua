-- Shared by the quota scripts (prepended to each). One HASH per subject holds its tokens:
--   <unix second>  tokens reserved (and corrected by settlement) in that second
--   s              the newest second the buckets were advanced to
--   n              the running sum of every second field, so a check reads one field instead
--                  of the whole window
--   d, t           the UTC day (days since the epoch) and the tokens counted that day
--   a              the last second an admission refreshed the subject's expiries (admit.lua)
--   L              the requests counted by the subject's lease log (see purgeLeases)
-- Invariant: the second fields present are within (s - W, s], and n is their sum.
--
-- Every redis.call costs about a microsecond, and a script runs on every request: the scripts
-- read each hash with one HMGET and write it with one HSET.

-- Reads the token state of key at second now, with one more field (extra), and deletes the
-- buckets that left the window (those <= now - W). Returns sec (the current bucket's second),
-- sum (n less what was deleted), day (tokens today), admitted (field a), leased (field L), extra
-- (its value or 0), exists, and changed: then s and n must be written back, whatever the
-- decision. A clock
-- that went backwards (a failover to a node with another clock) never moves s back: its
-- requests count in the newest bucket.
local function advance(key, now, W, today, extra)
  local st = redis.call('HMGET', key, 's', 'n', 'd', 't', 'a', 'L', extra)
  local last = tonumber(st[1]) or now
  local b = {
    sec = math.max(now, last), sum = tonumber(st[2]) or 0, day = 0, admitted = tonumber(st[5]),
    leased = tonumber(st[6]) or 0, extra = tonumber(st[7]) or 0, exists = st[1] ~= false, changed = false,
  }
  if tonumber(st[3]) == today then
    b.day = tonumber(st[4]) or 0
  end
  if now <= last then
    return b
  end
  b.changed = true
  local hi = math.min(last, now - W)
  local fields = {}
  for f = last - W + 1, hi do
    fields[#fields + 1] = f
  end
  if #fields > 0 then
    if hi == last then
      b.sum = 0 -- every bucket left
    else
      for _, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
        b.sum = b.sum - (tonumber(v) or 0)
      end
    end
    redis.call('HDEL', key, unpack(fields))
  end
  return b
end

-- Returns the bucket fields of the window ending at second sec, oldest first.
local function windowFields(sec, W)
  local fields = {}
  for f = sec - W + 1, sec do
    fields[#fields + 1] = f
  end
  return fields
end

-- Keeps the hash while its buckets are in the window and its day counter is today's, and one
-- second more: an expiry set once covers every write of the same second.
local function expireBuckets(key, nowMs, windowMs, today)
  redis.call('PEXPIRE', key, math.max(windowMs, (today + 1) * 86400000 - nowMs) + 1000)
end

-- Money (nano-USD) lives in a fourth hash per subject, :m, only for subjects with a budget or a
-- credit account:
--   dd, dv   the UTC day and the spend counted that day
--   mm, mv   the month (monthOf) and the spend counted that month
--   cc       credit charges and reservations, on the scale of the ledger's total of charges
-- Money is written with moneyArg: Redis turns a Lua number into a string with 14 significant
-- digits, which would round anything above $100k.
local function moneyArg(v)
  return string.format('%.0f', v)
end

-- The calendar month of a UTC day (days since the epoch) as year * 12 + month - 1, from the
-- days-to-civil algorithm of H. Hinnant's date library (the Go side uses time.Time).
local function monthOf(day)
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y * 12 + m - 1
end

-- A month counter is kept 32 days after its last write: past its month it no longer counts.
local moneyTTL = 32 * 86400000

-- Leases: the requests a replica took in one admission to admit locally (a batch of permits,
-- see Redis in redis.go) are one member of the subject's lease log, the ZSET <RPM log key>l,
-- '<lease id>:<count>' -> stamp ms: the lease's expiry while it runs, the moment it was given
-- back afterwards (count: the permits used). A member counts for the window after its stamp,
-- so every permit counts for at least the window after its real use. Field L of the token hash
-- is the sum of the counts of the members in the window.
local function leaseCount(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

-- Drops the lease log members that left the window (stamp <= cutoff) and returns L less their
-- counts, and whether it changed (then L must be written back). A lease log that expired
-- (no admission purged it before its last members left) counts nothing.
local function purgeLeases(rl, leased, cutoff)
  if leased <= 0 then
    return 0, false
  end
  local old = redis.call('ZRANGEBYSCORE', rl, '-inf', cutoff)
  if #old == 0 then
    if redis.call('EXISTS', rl) == 0 then
      return 0, true
    end
    return leased, false
  end
  for _, m in ipairs(old) do
    leased = leased - leaseCount(m)
  end
  redis.call('ZREMRANGEBYSCORE', rl, '-inf', cutoff)
  return math.max(0, leased), true
end
