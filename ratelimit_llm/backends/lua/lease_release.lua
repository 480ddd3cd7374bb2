-- Give places back (after _lease.lua). Releasing a lease twice, or one that expired,
-- removes nothing the second time.
--
-- ARGV  lease_1 weight_1 .. lease_N weight_N
-- Returns  how many members were removed
local removed = 0
for j = 1, #ARGV, 2 do
  removed = removed + remove(ARGV[j], tonumber(ARGV[j + 1]))
end
return removed
