-- Shared by the lease_*.lua scripts: places in flight as members of one sorted set.
--
-- KEYS[1] is the scope's sorted set. A lease of weight w is w members, the lease id and
-- then "<id>#1" .. "<id>#<w-1>", all with the same score: the lease's expiry, in
-- seconds on Redis's clock (TIME), so that every process agrees on when it ends and a
-- process's own clock never matters. A member whose score has passed is a place nobody
-- renews any more (its process died, or lost Redis for longer than the TTL): every
-- script purges those before it counts.
local KEY = KEYS[1]
-- Writes after TIME: replicate the effects, not the script (the default from Redis 5).
redis.replicate_commands()

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function score(seconds)
  return string.format('%.6f', seconds)
end

local function member(lease, i)
  if i == 0 then return lease end
  return lease .. '#' .. i
end

local function purge(now)
  redis.call('ZREMRANGEBYSCORE', KEY, '-inf', score(now))
end

-- Score every member of `lease` with `expiry`; `flag` is nil (add) or 'XX' (update).
-- In chunks: unpack() of a heavy lease's members at once would overflow Lua's stack.
local function place(lease, weight, expiry, flag)
  local i = 0
  while i < weight do
    local args = {}
    if flag then args[1] = flag end
    local stop = math.min(weight, i + 1000)
    while i < stop do
      args[#args + 1] = expiry
      args[#args + 1] = member(lease, i)
      i = i + 1
    end
    redis.call('ZADD', KEY, unpack(args))
  end
end

-- Remove every member of `lease`; returns how many there were.
local function remove(lease, weight)
  local removed, i = 0, 0
  while i < weight do
    local members = {}
    local stop = math.min(weight, i + 1000)
    while i < stop do
      members[#members + 1] = member(lease, i)
      i = i + 1
    end
    removed = removed + redis.call('ZREM', KEY, unpack(members))
  end
  return removed
end

-- Keep the set as long as its last lease, plus a second: an abandoned scope goes away.
local function keep()
  local last = redis.call('ZRANGE', KEY, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', KEY, math.ceil(tonumber(last[2]) * 1000) + 1000)
  end
end
