-- Reconcile reservations with what the calls really cost (or give them back whole).
--
-- A positive delta refunds what was reserved but not spent; a negative one debits the
-- excess (the level may go below zero: that debt delays everyone behind it). A refund
-- never lifts a level above its capacity.
--
-- KEYS[1]  the quota's state hash
-- ARGV     ttl, dimension count, then per dimension: name, delta
-- Returns  the number of dimensions changed
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local state = KEYS[1]

local function fmt(x)
  return string.format('%.17g', x)
end

local changed = 0
for i = 1, n do
  local name = ARGV[2 + (i - 1) * 2 + 1]
  local delta = tonumber(ARGV[2 + (i - 1) * 2 + 2])
  local fields = redis.call('HMGET', state, 'c:' .. name, 'r:' .. name, 'l:' .. name, 't:' .. name)
  local capacity, rate, level = tonumber(fields[1]), tonumber(fields[2]), tonumber(fields[3])
  -- A quota that expired meanwhile has nothing to reconcile: it starts afresh, full.
  if capacity and delta ~= 0 then
    local elapsed = math.max(0, now - (tonumber(fields[4]) or now))
    level = math.min(capacity, level + rate * elapsed + delta)
    redis.call('HSET', state, 'l:' .. name, fmt(level), 't:' .. name, fmt(now))
    changed = changed + 1
  end
end
if changed > 0 then redis.call('EXPIRE', state, ttl) end
return changed
