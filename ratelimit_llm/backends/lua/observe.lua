-- Correct a quota from what the server reported, or hold it for a "try again in".
--
-- The server's `remaining` is a snapshot taken while other calls were in flight, so it
-- lowers a level, never raises it: the new level is at most `remaining` minus what was
-- granted after the moment the snapshot reflects. That moment is given as a Redis time
-- (`since`); what was granted after it is read from the grant history.
--
-- KEYS[1]  the quota's state hash      KEYS[2]  its grant history (newest first)
-- ARGV     ttl, since (-1: the snapshot counts every grant so far), dimension count,
--          then per dimension: name, capacity, rate, changed, remaining, ceiling
--          capacity/rate: the caller's view of the limit; `changed` (1/0) says whether
--          it differs from what Redis holds because the server reported a new limit
--          (a quota Redis does not hold yet is created from them, full); remaining: the server's figure, or "none"; ceiling: an upper bound for the
--          level (a hold), or "none"
-- Returns  the number of dimensions written
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
local since = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local state = KEYS[1]

local function fmt(x)
  return string.format('%.17g', x)
end

-- The running total taken of `name` when the last grant at or before `since` was made.
-- The history is read newest first, a page at a time: `since` is usually recent.
local function taken_at(name, current)
  if since < 0 then return current end
  local pattern = ' ' .. string.gsub(name, '%p', '%%%0') .. '=(%S+)'
  local oldest = nil
  local start = 0
  while true do
    local page = redis.call('LRANGE', KEYS[2], start, start + 63)
    if #page == 0 then break end
    for _, entry in ipairs(page) do
      local at = tonumber(string.match(entry, '^(%S+)'))
      local value = tonumber(string.match(entry, pattern))
      if value then
        if at <= since then return value end
        oldest = value
      end
    end
    start = start + 64
  end
  -- Older than all we remember: count everything remembered as sent after it.
  if oldest then return oldest end
  return current
end

for i = 1, n do
  local base = 3 + (i - 1) * 6
  local name = ARGV[base + 1]
  local new_capacity = tonumber(ARGV[base + 2])
  local new_rate = tonumber(ARGV[base + 3])
  local changed = ARGV[base + 4] == '1'
  local fields = redis.call('HMGET', state, 'c:' .. name, 'r:' .. name, 'l:' .. name,
    'k:' .. name, 't:' .. name)
  local capacity, rate, level = tonumber(fields[1]), tonumber(fields[2]), tonumber(fields[3])
  local taken = tonumber(fields[4]) or 0
  if not capacity then
    capacity, rate, level = new_capacity, new_rate, new_capacity
  else
    local elapsed = math.max(0, now - (tonumber(fields[5]) or now))
    level = math.min(capacity, level + rate * elapsed)
    if changed and new_rate ~= rate then
      -- A new limit: what was used stays used, so the level moves by the change in
      -- capacity.
      level = math.min(new_capacity, level + new_capacity - capacity)
      capacity, rate = new_capacity, new_rate
    elseif changed then
      -- Only the burst depth was learned (the rate is the same): never a free burst.
      level = math.min(new_capacity, level)
      capacity = new_capacity
    end
  end
  local remaining = tonumber(ARGV[base + 5])
  if remaining then
    local sent_after = math.max(0, taken - taken_at(name, taken))
    level = math.min(level, remaining - sent_after)
  end
  local ceiling = tonumber(ARGV[base + 6])
  if ceiling then level = math.min(level, ceiling) end
  redis.call('HSET', state, 'c:' .. name, fmt(capacity), 'r:' .. name, fmt(rate),
    'l:' .. name, fmt(level), 't:' .. name, fmt(now))
end
redis.call('EXPIRE', state, ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return n
