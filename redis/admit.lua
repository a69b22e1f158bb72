-- admit.lua: one admission, all or nothing, in one call. Times are
-- microseconds; the clock is the server's TIME unless ARGV[1] gives one
-- (tests). Layout and semantics: see quota.go.
--
-- KEYS: per counter i: its log (sorted set of "<id>|<cost>" scored by
--   expiry) and its running total; then per budget j: its balance, its
--   reservations (sorted set, like a log) and their running total.
-- ARGV: now ('' = TIME), id, #counters, #budgets, lease, balance TTL (ms),
--   TTL slack (ms); per counter: limit, window, cost, held ('1'/'0');
--   per budget: reserve, loaded balance ('' = none loaded).
-- Reply: {'need', j...} (0-based budgets without a balance: load them
--   and call again), or {allowed, refused, retry, per counter: total,
--   reset; per budget: balance (string), reserved}.

local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local id = ARGV[2]
local nc, nb = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local balanceTTL = ARGV[6]
local slack = tonumber(ARGV[7])
local cargs = 7
local bargs = cargs + 4 * nc
local bkeys = 2 * nc

-- integers are passed to Redis as decimal strings (no exponent form)
local function int(n) return string.format('%d', n) end
local function cost(member) return tonumber(string.match(member, '|(%d+)$')) end

-- Balances first: without them there is nothing to decide.
local balances, need = {}, {}
for j = 1, nb do
  local b = KEYS[bkeys + 3 * j - 2]
  local v = redis.call('GET', b)
  if not v then
    local loaded = ARGV[bargs + 2 * j]
    if loaded ~= '' then
      redis.call('SET', b, loaded, 'PX', balanceTTL) -- still absent: set it
      v = loaded
    else
      need[#need + 1] = j - 1
    end
  end
  balances[j] = v
end
if #need > 0 then
  table.insert(need, 1, 'need')
  return need
end

-- prune drops a log's expired entries and returns its total.
local function prune(z, t)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  end
  if redis.call('EXISTS', z) == 0 then
    redis.call('DEL', t)
    return 0
  end
  local total = redis.call('GET', t)
  if not total then -- the total was lost (evicted): rebuild it
    redis.call('SET', t, '0')
    for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
      redis.call('INCRBY', t, string.match(m, '|(%d+)$'))
    end
    local ttl = redis.call('PTTL', z)
    if ttl > 0 then redis.call('PEXPIRE', t, ttl) end
    return tonumber(redis.call('GET', t))
  end
  total = tonumber(total)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do freed = freed + cost(m) end
    total = redis.call('DECRBY', t, int(freed))
  end
  return total
end

-- wait is the time until the oldest entries of log z expiring free need.
local function wait(z, need)
  local freed, start = 0, 0
  while true do
    local batch = redis.call('ZRANGE', z, start, start + 99, 'WITHSCORES')
    if #batch == 0 then return 0 end
    for k = 1, #batch, 2 do
      freed = freed + cost(batch[k])
      if freed >= need then return tonumber(batch[k + 1]) - now end
    end
    start = start + 100
  end
end

-- A client retry (the reply was lost) runs the script again: an admission
-- already recorded is answered as allowed and taken only once.
local replay = false
local first
if nc > 0 then
  first = redis.call('ZSCORE', KEYS[1], id .. '|' .. ARGV[cargs + 3])
elseif nb > 0 then
  first = redis.call('ZSCORE', KEYS[bkeys + 2], id .. '|' .. ARGV[bargs + 1])
end
if first and tonumber(first) > now then replay = true end

local allowed, refused, retry = 1, 0, 0
local totals, reserved = {}, {}
for i = 1, nc do
  local a = cargs + 4 * (i - 1)
  local limit, window, c = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local total = prune(KEYS[2 * i - 1], KEYS[2 * i])
  totals[i] = total
  if allowed == 1 and not replay and c > limit - total then
    allowed, refused = 0, i - 1
    if c <= limit then
      retry = wait(KEYS[2 * i - 1], c - (limit - total))
    elseif ARGV[a + 4] == '1' then
      retry = lease
    else
      retry = window
    end
  end
end
for j = 1, nb do
  local reserve = tonumber(ARGV[bargs + 2 * j - 1])
  local r = KEYS[bkeys + 3 * j - 1]
  local res = prune(r, KEYS[bkeys + 3 * j])
  reserved[j] = res
  local balance = tonumber(balances[j])
  if allowed == 1 and not replay and balance - res < reserve then
    allowed, refused = 0, -j
    if balance >= reserve then retry = wait(r, reserve - (balance - res)) end
  end
end

local take = allowed == 1 and not replay
if take then
  for i = 1, nc do
    local a = cargs + 4 * (i - 1)
    local exp = now + tonumber(ARGV[a + 2])
    if ARGV[a + 4] == '1' then exp = now + lease end
    if redis.call('ZADD', KEYS[2 * i - 1], 'NX', int(exp), id .. '|' .. ARGV[a + 3]) == 1 then
      totals[i] = redis.call('INCRBY', KEYS[2 * i], ARGV[a + 3])
    end
  end
  for j = 1, nb do
    local b, r, rt = KEYS[bkeys + 3 * j - 2], KEYS[bkeys + 3 * j - 1], KEYS[bkeys + 3 * j]
    local reserve = ARGV[bargs + 2 * j - 1]
    if redis.call('ZADD', r, 'NX', int(now + lease), id .. '|' .. reserve) == 1 then
      reserved[j] = redis.call('INCRBY', rt, reserve)
    end
    local newest = redis.call('ZRANGE', r, -1, -1, 'WITHSCORES')
    local ttl = math.ceil((tonumber(newest[2]) - now) / 1000) + slack
    redis.call('PEXPIRE', r, ttl)
    redis.call('PEXPIRE', rt, ttl)
    redis.call('PEXPIRE', b, balanceTTL)
  end
end

local out = {allowed, refused, retry}
for i = 1, nc do
  local z, reset = KEYS[2 * i - 1], 0
  local newest = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if #newest > 0 then
    reset = tonumber(newest[2]) - now
    if take then -- the keys live as long as their newest entry
      local ttl = math.ceil(reset / 1000) + slack
      redis.call('PEXPIRE', z, ttl)
      redis.call('PEXPIRE', KEYS[2 * i], ttl)
    end
  end
  out[#out + 1] = totals[i]
  out[#out + 1] = reset
end
for j = 1, nb do
  out[#out + 1] = balances[j]
  out[#out + 1] = reserved[j]
end
return out
