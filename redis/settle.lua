-- settle.lua: the end of one admission. Only entries still present are
-- removed or corrected, so settling twice, or after the entries expired,
-- changes nothing; every change keeps a log's total equal to the sum of
-- its entries' costs.
--
-- KEYS: as admit.lua, for the held and token counters only, then the budgets.
-- ARGV: id, #counters, #budgets, input tokens ('-1' unknown), cost, balance
--   TTL (ms); per counter: cost, held ('1'/'0'); per budget: reserve.

local id = ARGV[1]
local nc, nb = tonumber(ARGV[2]), tonumber(ARGV[3])
local input, cost, balanceTTL = ARGV[4], ARGV[5], ARGV[6]
local cargs = 6
local bkeys = 2 * nc

for i = 1, nc do
  local z, t = KEYS[2 * i - 1], KEYS[2 * i]
  local c, held = ARGV[cargs + 2 * i - 1], ARGV[cargs + 2 * i] == '1'
  local m = id .. '|' .. c
  if held then
    if redis.call('ZREM', z, m) == 1 then
      if redis.call('EXISTS', z) == 1 then
        redis.call('DECRBY', t, c)
      else
        redis.call('DEL', t)
      end
    end
  elseif tonumber(input) >= 0 and input ~= c then
    local score = redis.call('ZSCORE', z, m)
    if score then -- same expiry, real cost
      redis.call('ZREM', z, m)
      redis.call('ZADD', z, score, id .. '|' .. input)
      redis.call('INCRBY', t, string.format('%d', tonumber(input) - tonumber(c)))
    end
  end
end

for j = 1, nb do
  local b, r, rt = KEYS[bkeys + 3 * j - 2], KEYS[bkeys + 3 * j - 1], KEYS[bkeys + 3 * j]
  local reserve = ARGV[cargs + 2 * nc + j]
  if redis.call('ZREM', r, id .. '|' .. reserve) == 1 then
    if redis.call('EXISTS', r) == 1 then
      redis.call('DECRBY', rt, reserve)
    else
      redis.call('DEL', rt)
    end
    if redis.call('EXISTS', b) == 1 then -- a forgotten balance is loaded afresh
      redis.call('DECRBY', b, cost)
      redis.call('PEXPIRE', b, balanceTTL)
    end
  end
end
return 1
