-- Give dimensions of a quota new limits, or put them at a chosen level.
--
-- Used when a limit is changed by hand or by a strategy (`RateLimiter.resize`,
-- `set_level`). A dimension that does not exist yet is created with the new values.
--
-- KEYS[1]  the quota's state hash
-- ARGV     ttl, dimension count, then per dimension: name, capacity, rate, level
--          level: the level to set; "keep" to keep what was used used; or
--          "rescale:AMOUNT" to keep the time until AMOUNT fits, at the new rate, where it
--          does not fit now (see `RateLimiter.rescale`)
-- Returns  the number of dimensions written
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local state = KEYS[1]

local function fmt(x)
  return string.format('%.17g', x)
end

for i = 1, n do
  local base = 2 + (i - 1) * 4
  local name = ARGV[base + 1]
  local new_capacity = tonumber(ARGV[base + 2])
  local new_rate = tonumber(ARGV[base + 3])
  local mode = ARGV[base + 4]
  local wanted = tonumber(mode)
  local fields = redis.call('HMGET', state, 'c:' .. name, 'r:' .. name, 'l:' .. name, 't:' .. name)
  local capacity, rate, level = tonumber(fields[1]), tonumber(fields[2]), tonumber(fields[3])
  if capacity then
    local elapsed = math.max(0, now - (tonumber(fields[4]) or now))
    level = math.min(capacity, level + rate * elapsed)
    local amount = tonumber(string.match(mode, '^rescale:(.+)$'))
    if amount then
      if level < amount then
        level = amount - (amount - level) * new_rate / rate
      end
    else
      level = level + new_capacity - capacity
    end
    level = math.min(new_capacity, level)
  else
    level = new_capacity
  end
  if wanted then level = math.min(new_capacity, wanted) end
  redis.call('HSET', state, 'c:' .. name, fmt(new_capacity), 'r:' .. name, fmt(new_rate),
    'l:' .. name, fmt(level), 't:' .. name, fmt(now))
end
redis.call('EXPIRE', state, ttl)
return n
