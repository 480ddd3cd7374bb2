-- How many places are taken now, expired leases purged first (after _lease.lua).
--
-- Returns  the number of live members
purge(clock())
return redis.call('ZCARD', KEY)
