-- Reserve capacity on every dimension of one quota at once, reserve-then-sleep.
--
-- Levels may go below zero: a reservation that does not fit now is still taken, and the
-- caller is told how long to sleep before using it. Every later caller therefore sees a
-- lower level and a longer wait, so callers are served in the order they arrived,
-- whatever their size, with no lock and no polling. The time is Redis's own (TIME), so
-- the clocks of different hosts never enter the arithmetic.
--
-- KEYS[1]  the quota's state hash      KEYS[2]  its grant history (a list, newest first)
-- ARGV     ttl, max_wait (-1: none), history length, dimension count,
--          then per dimension: name, capacity, rate (units/s), amount
-- Returns  {1, wait, now, taken, level, ...}  reserved (running total taken and level
--                                     after, per dimension); sleep `wait` seconds first
--          {0, wait, now}             not reserved: `wait` exceeds max_wait
--          {-1, index, capacity}      the amount can never fit dimension `index` (1-based)
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local history = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local state = KEYS[1]

local function fmt(x)
  return string.format('%.17g', x)
end

local names, levels, amounts, taken = {}, {}, {}, {}
local wait = 0
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local name = ARGV[base + 1]
  local amount = tonumber(ARGV[base + 4])
  local fields = redis.call('HMGET', state, 'c:' .. name, 'r:' .. name, 'l:' .. name,
    'k:' .. name, 't:' .. name)
  local capacity = tonumber(fields[1])
  local rate = tonumber(fields[2])
  local level = tonumber(fields[3])
  local elapsed = math.max(0, now - (tonumber(fields[5]) or now))
  if not capacity then
    -- First use of this dimension: the caller's configuration creates it, full.
    capacity = tonumber(ARGV[base + 2])
    rate = tonumber(ARGV[base + 3])
    level = capacity
    redis.call('HSET', state, 'c:' .. name, fmt(capacity), 'r:' .. name, fmt(rate))
  else
    level = math.min(capacity, level + rate * elapsed)
  end
  if amount > capacity then
    return {-1, i, fmt(capacity)}
  end
  local after = level - amount
  if after < 0 and rate > 0 then
    wait = math.max(wait, -after / rate)
  elseif after < 0 then
    wait = math.huge
  end
  names[i], levels[i], amounts[i] = name, level, amount
  taken[i] = tonumber(fields[4]) or 0
end

if max_wait >= 0 and wait > max_wait then
  return {0, fmt(wait), fmt(now)}
end

local reply = {1, fmt(wait), fmt(now)}
local entry = fmt(now + wait)
local args = {}
for i = 1, n do
  local total = taken[i] + amounts[i]
  local after = levels[i] - amounts[i]
  args[#args + 1] = 'l:' .. names[i]
  args[#args + 1] = fmt(after)
  args[#args + 1] = 't:' .. names[i]
  args[#args + 1] = fmt(now)
  args[#args + 1] = 'k:' .. names[i]
  args[#args + 1] = fmt(total)
  reply[#reply + 1] = fmt(total)
  reply[#reply + 1] = fmt(after)
  entry = entry .. ' ' .. names[i] .. '=' .. fmt(total)
end
redis.call('HSET', state, unpack(args))
redis.call('LPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], 0, history - 1)
redis.call('EXPIRE', state, ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return reply
