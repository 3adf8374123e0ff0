-- Admission: checks every dimension of every subject, then consumes for all of them or for
-- none. Scripts run atomically, so replicas sharing one Redis (or one Cluster slot: every key
-- carries the tenant's hash tag) never admit past a limit. The shape follows go-redis
-- redis_rate (https://github.com/go-redis/redis_rate/blob/v10/lua.go): Redis TIME is the one
-- clock of every replica, every write sets an expiry so idle keys vanish, and the reply carries
-- what the caller needs for Retry-After and the x-ratelimit-* headers.
--
-- KEYS, four per subject: the RPM log (ZSET request id -> admission ms), the leases (ZSET
-- lease id -> expiry ms), the token buckets (HASH, see buckets.lua) and the money (HASH, ditto).
-- ARGV: request id, tokens reserved, window ms, lease TTL ms, lease tombstone ms, cost reserved
-- (nano-USD), the number of subjects, then per subject: the limits rpm, tpm, tokens per day, concurrent (0 =
-- unlimited); has money (1/0), budget per day, budget per month, the day of the ledger's
-- figures, the ledger's spend that day and that month, credit account (1/0), the ledger's
-- balance and total of charges (see quota.Money). Between the header and the subjects: the
-- permits wanted (1: this request alone), the lease id, the replica's id and the lease's span ms.
-- With more than one permit wanted, and no subject near a limit (every dimension keeps room for
-- twice the permits of every replica seen in the last 10 s), the admission takes a lease: that
-- many requests in the RPM windows (one lease log member, see purgeLeases), as many
-- concurrency slots ('<lease id>.<j>') and tokens for each; else, or when the room is only for
-- fewer than two, it admits this request alone, exactly as without leases.
-- Settlements of the same tenant's leases may ride along (see settleAll): their keys follow the
-- subjects' and their arguments the subjects'. They are applied first, so a slot or tokens they
-- free count for this admission.
-- Reply: {refusing subject (1-based, 0 = admitted), refusing dimension (1 rpm, 2 tpm,
-- 3 tokens per day, 4 concurrent, 5 budget per day, 6 budget per month, 7 credit), retry after
-- ms (0 for money: the caller knows the periods), now ms, then limit, remaining, reset ms of the
-- tightest RPM window and of the tightest TPM window, permits granted, replicas seen}, then one
-- result per settlement carried.
local id = ARGV[1]
local tokens = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local tombstone = tonumber(ARGV[5])
local cost = tonumber(ARGV[6])
local W = window / 1000
local S = 13 -- ARGV per subject
local n = tonumber(ARGV[7])
local H = 11 -- ARGV before the subjects'
local leaseMs = tonumber(ARGV[11])

local time = redis.call('TIME')
local nowSec = tonumber(time[1])
local now = nowSec * 1000 + math.floor(tonumber(time[2]) / 1000)
local today = math.floor(nowSec / 86400)
local thisMonth = monthOf(today)
local deferred = {}
for i = 1, n do
  deferred[KEYS[4 * i - 1]] = {}
end
local settled = settleAll(4 * n, H + S * n, window, ttl, now, nowSec, today, deferred)

-- Applies to b (see advance) the corrections the carried settlements left for this second's
-- bucket of tk. Should the clock have gone back (b.sec is ahead of now), the bucket is not the
-- one read: it is corrected in Redis.
local function correct(tk, b)
  local d = deferred[tk]
  if #d == 0 then
    return
  end
  b.corrected = true
  local cur = b.extra
  if b.sec ~= nowSec then
    cur = tonumber(redis.call('HGET', tk, nowSec)) or 0
  end
  for _, diff in ipairs(d) do
    local v = math.max(0, cur + diff)
    b.sum = b.sum + v - cur
    cur = v
    b.day = math.max(0, b.day + diff)
  end
  if b.sec ~= nowSec then
    redis.call('HSET', tk, nowSec, cur)
  else
    b.extra = cur
  end
end

-- money reads a subject's money state: spend today and this month (the larger of the counter
-- and the ledger's figure, each if it is for the current period) and, for a credit account,
-- the charges counter and what the balance can still pay.
local function money(mk, a)
  local v = redis.call('HMGET', mk, 'dd', 'dv', 'mm', 'mv', 'cc')
  local m = {day = 0, month = 0}
  if tonumber(v[1]) == today then
    m.day = tonumber(v[2]) or 0
  end
  if tonumber(v[3]) == thisMonth then
    m.month = tonumber(v[4]) or 0
  end
  local ledgerDay = tonumber(ARGV[a + 8])
  if ledgerDay == today then
    m.day = math.max(m.day, tonumber(ARGV[a + 9]))
  end
  if monthOf(ledgerDay) == thisMonth then
    m.month = math.max(m.month, tonumber(ARGV[a + 10]))
  end
  if ARGV[a + 11] == '1' then
    local charged = tonumber(ARGV[a + 13])
    m.charged = math.max(tonumber(v[5]) or charged, charged)
    m.avail = tonumber(ARGV[a + 12]) - (m.charged - charged)
  end
  return m
end

-- rpmRetry is when the need-th oldest request counted in the window of rlog leaves it, the
-- log's own members and the lease log's counts taken together in the order of their stamps.
local function rpmRetry(rlog, leased, need)
  local from = now - window
  if leased > 0 then
    local ls = redis.call('ZRANGEBYSCORE', rlog .. 'l', '(' .. from, '+inf', 'WITHSCORES')
    for j = 1, #ls, 2 do
      local s = tonumber(ls[j + 1])
      local p = redis.call('ZCOUNT', rlog, '(' .. from, s)
      if p >= need then
        break
      end
      need = need - p
      local c = leaseCount(ls[j])
      if c >= need then
        return s + window - now
      end
      need, from = need - c, s
    end
  end
  local e = redis.call('ZRANGEBYSCORE', rlog, '(' .. from, '+inf', 'WITHSCORES', 'LIMIT', need - 1, 1)
  if not e[2] then
    return window -- the counts disagree with the logs: the longest wait
  end
  return tonumber(e[2]) + window - now
end

local used, buckets, moneys = {}, {}, {}
for i = 1, n do
  local rlog, tk = KEYS[4 * i - 3], KEYS[4 * i - 1]
  local b = advance(tk, nowSec, W, today, nowSec)
  correct(tk, b)
  b.leased, b.purged = purgeLeases(rlog .. 'l', b.leased, now - window)
  -- Sliding log: the window is (now - window, now]. Older entries are purged once a second,
  -- below, so they are counted out rather than removed here.
  used[i] = redis.call('ZCOUNT', rlog, '(' .. (now - window), '+inf') + b.leased
  buckets[i] = b
end

-- The permits this admission takes: as many as wanted while every limited dimension of every
-- subject keeps room for twice that many for each replica taking leases, else one.
local k = tonumber(ARGV[8])
local replicas = 1
for i = 1, n do
  if ARGV[H + S * (i - 1) + 5] == '1' then
    k = 1 -- money is never leased
  end
end
if k > 1 then
  local rk = string.match(KEYS[1], '^{t:[^}]*}') .. ':q:~replicas'
  redis.call('ZADD', rk, now, ARGV[10])
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - 10000)
  redis.call('PEXPIRE', rk, 11000)
  replicas = redis.call('ZCARD', rk)
  local function room(limit, inUse, per)
    if limit > 0 and per > 0 then
      k = math.min(k, math.floor((limit - inUse) / (2 * replicas * per)))
    end
  end
  for i = 1, n do
    local a = H + S * (i - 1)
    local b = buckets[i]
    room(tonumber(ARGV[a + 1]), used[i], 1)
    room(tonumber(ARGV[a + 2]), b.sum, tokens)
    room(tonumber(ARGV[a + 3]), b.day, tokens)
    local conc = tonumber(ARGV[a + 4])
    if conc > 0 then
      room(conc, redis.call('ZCOUNT', KEYS[4 * i - 2], '(' .. now, '+inf'), 1)
    end
  end
  if k < 2 then
    k = 1
  end
end
local T = k * tokens -- the tokens reserved

local failAt, failDim, retry = 0, 0, 0
for i = 1, n do
  local rlog, leases, tk = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  local a = H + S * (i - 1)
  local rpm, tpm, tpd, conc = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local b = buckets[i]
  if failAt == 0 then
    if rpm > 0 and used[i] + k > rpm then
      -- Room comes when the (used - rpm + 1)-th oldest admission leaves the window.
      failDim, retry = 1, rpmRetry(rlog, b.leased, used[i] - rpm + 1)
    elseif tpm > 0 and tokens > tpm then
      failDim = 2 -- never fits: retry 0
    elseif tpm > 0 and b.sum + T > tpm then
      -- Room comes when the oldest buckets holding the excess have left: bucket s leaves at
      -- second s + W.
      failDim = 2
      local need = b.sum + T - tpm
      local fields = windowFields(b.sec, W)
      for j, v in ipairs(redis.call('HMGET', tk, unpack(fields))) do
        if b.corrected and fields[j] == nowSec and b.sec == nowSec then
          v = b.extra -- not written yet
        end
        need = need - (tonumber(v) or 0)
        if need <= 0 then
          retry = (fields[j] + W) * 1000 - now
          break
        end
      end
    elseif tpd > 0 and tokens > tpd then
      failDim = 3
    elseif tpd > 0 and b.day + T > tpd then
      failDim, retry = 3, (today + 1) * 86400000 - now
    elseif conc > 0 and redis.call('ZCOUNT', leases, '(' .. now, '+inf') + k > conc then
      failDim = 4 -- frees when a request ends: retry 0
    elseif ARGV[a + 5] == '1' then
      local m = money(KEYS[4 * i], a)
      moneys[i] = m
      local bday, bmonth = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
      -- Spent means spent: the counters include the reservations in flight, so at most one
      -- request's reservation (the last one admitted) goes past a budget or a balance.
      if bday > 0 and m.day >= bday then
        failDim = 5
      elseif bmonth > 0 and m.month >= bmonth then
        failDim = 6
      elseif m.avail and m.avail <= 0 then
        failDim = 7
      end
    end
    if failDim > 0 then
      failAt = i
    end
  end
end

local added, addedTokens = 0, 0
if failAt == 0 then
  added, addedTokens = k, T
  for i = 1, n do
    local rlog, leases, tk = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
    local b = buckets[i]
    local m = moneys[i]
    if m then
      local f = {'dd', today, 'dv', moneyArg(m.day + cost), 'mm', thisMonth, 'mv', moneyArg(m.month + cost)}
      if m.charged then
        f[#f + 1], f[#f + 2] = 'cc', moneyArg(m.charged + cost)
      end
      redis.call('HSET', KEYS[4 * i], unpack(f))
      redis.call('PEXPIRE', KEYS[4 * i], moneyTTL)
    end
    local f = {'s', b.sec, 'n', b.sum + T, 'd', today, 't', b.day + T, 'a', nowSec}
    if k > 1 then
      redis.call('ZADD', rlog .. 'l', now + leaseMs, ARGV[9] .. ':' .. k)
      redis.call('PEXPIRE', rlog .. 'l', window + leaseMs + 1000)
      local z = {}
      for j = 1, k do
        z[#z + 1], z[#z + 2] = now + ttl, ARGV[9] .. '.' .. j
      end
      redis.call('ZADD', leases, unpack(z))
      f[#f + 1], f[#f + 2] = 'L', b.leased + k
    else
      redis.call('ZADD', rlog, now, id)
      redis.call('ZADD', leases, now + ttl, id)
      if b.purged then
        f[#f + 1], f[#f + 2] = 'L', b.leased
      end
    end
    if T > 0 or (b.corrected and b.sec == nowSec) then
      local cur = b.extra
      if b.sec ~= nowSec then
        cur = tonumber(redis.call('HGET', tk, b.sec)) or 0
      end
      f[#f + 1], f[#f + 2] = b.sec, cur + T
    end
    redis.call('HSET', tk, unpack(f))
    if b.admitted ~= nowSec then
      -- The first admission of the subject in this second purges what left the window and
      -- sets the expiries, each a second longer than needed, so the rest of the second skips
      -- five calls.
      redis.call('ZREMRANGEBYSCORE', rlog, '-inf', now - window)
      redis.call('ZREMRANGEBYSCORE', leases, '-inf', now - tombstone)
      redis.call('PEXPIRE', rlog, window + 1000)
      redis.call('PEXPIRE', leases, ttl + tombstone + 1000)
      expireBuckets(tk, now, window, today)
    end
  end
else
  for i = 1, n do
    local b = buckets[i]
    if b.purged then
      redis.call('HSET', KEYS[4 * i - 1], 'L', b.leased)
    end
    if b.changed or b.corrected then
      local f = {'s', b.sec, 'n', b.sum}
      if b.corrected then
        f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'd', today, 't', b.day
        if b.sec == nowSec then
          f[#f + 1], f[#f + 2] = nowSec, b.extra
        end
      end
      redis.call('HSET', KEYS[4 * i - 1], unpack(f))
      if b.corrected and not b.exists then
        expireBuckets(KEYS[4 * i - 1], now, window, today)
      end
    end
  end
end

-- The tightest windows, after this request: the lowest remaining count (the first subject on
-- a tie) among subjects with a limit. Reset is when the newest entry leaves the window.
local ri, rlimit, rrem, ti, tlimit, trem = 0, 0, 0, 0, 0, 0
for i = 1, n do
  local a = H + S * (i - 1)
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if rpm > 0 then
    local rem = math.max(0, rpm - used[i] - added)
    if ri == 0 or rem < rrem then
      ri, rlimit, rrem = i, rpm, rem
    end
  end
  if tpm > 0 then
    local rem = math.max(0, tpm - buckets[i].sum - addedTokens)
    if ti == 0 or rem < trem then
      ti, tlimit, trem = i, tpm, rem
    end
  end
end
local rreset, treset = 0, 0
if ri > 0 then
  if added > 1 then
    rreset = window + leaseMs
  elseif added > 0 then
    rreset = window
  else
    local newest = tonumber(redis.call('ZRANGE', KEYS[4 * ri - 3], -1, -1, 'WITHSCORES')[2])
    if buckets[ri].leased > 0 then
      local l = tonumber(redis.call('ZRANGE', KEYS[4 * ri - 3] .. 'l', -1, -1, 'WITHSCORES')[2])
      if l and (not newest or l > newest) then
        newest = l
      end
    end
    if newest and newest > now - window then
      rreset = newest + window - now
    end
  end
end
if ti > 0 then
  local sec = buckets[ti].sec
  local newest
  if addedTokens > 0 then
    newest = sec
  else
    local fields = windowFields(sec, W)
    local vals = redis.call('HMGET', KEYS[4 * ti - 1], unpack(fields))
    for j = #fields, 1, -1 do
      if (tonumber(vals[j]) or 0) > 0 then
        newest = fields[j]
        break
      end
    end
  end
  if newest then
    treset = (newest + W) * 1000 - now
  end
end
if failAt > 0 then
  k = 0
end
local reply = {failAt, failDim, retry, now, rlimit, rrem, rreset, tlimit, trem, treset, k, replicas}
for _, v in ipairs(settled) do
  reply[#reply + 1] = v
end
return reply
