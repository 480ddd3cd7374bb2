-- Push back the expiry of a process's leases, in one call (after _lease.lua).
--
-- A lease that is no longer there expired while its process still held it (a pause
-- longer than the TTL: a long GC, a stalled event loop, a Redis failover that lost
-- it). Its call is still in flight, so it is taken again, but only if there is room:
-- the cap holds even then.
--
-- ARGV[1] ttl (seconds), then  lease_1 weight_1 cap_1 .. lease_N weight_N cap_N
-- Returns  one letter per lease, in order: "k" kept, "r" re-taken, "l" lost (no room)
local ttl = tonumber(ARGV[1])
local now = clock()
purge(now)
local expiry = score(now + ttl)
local live = redis.call('ZCARD', KEY)
local fates = {}
for j = 2, #ARGV, 3 do
  local lease, weight, cap = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  if redis.call('ZSCORE', KEY, lease) then
    place(lease, weight, expiry, 'XX')
    fates[#fates + 1] = 'k'
  elseif live + weight <= cap then
    place(lease, weight, expiry, nil)
    live = live + weight
    fates[#fates + 1] = 'r'
  else
    fates[#fates + 1] = 'l'
  end
end
keep()
return table.concat(fates)
