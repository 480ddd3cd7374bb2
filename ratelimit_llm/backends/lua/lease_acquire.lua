-- Take a place in flight if there is room (after _lease.lua).
--
-- Purging, counting and adding happen in one script, so two processes can never both
-- take the last place.
--
-- ARGV[1] cap, ARGV[2] weight, ARGV[3] ttl (seconds), ARGV[4] the new lease's id
-- Returns "ok", or "full <seconds until the earliest lease expires>"
local cap = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local lease = ARGV[4]
local now = clock()
purge(now)
if redis.call('ZCARD', KEY) + weight > cap then
  local first = redis.call('ZRANGE', KEY, 0, 0, 'WITHSCORES')
  local wait = ttl
  if first[2] then wait = tonumber(first[2]) - now end
  return 'full ' .. score(wait)
end
place(lease, weight, score(now + ttl), nil)
keep()
return 'ok'
