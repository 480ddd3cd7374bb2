-- Reconcile reservations with what the calls cost, or give them back (after _quota.lua).
--
-- A process sums the settles made while its previous flush was in flight and sends the
-- sums, per dimension:
--   refund  what settles found reserved but not spent (negative: spent beyond the
--           estimate, a debit that may put the level in debt). A refund never lifts a
--           level above the server's last word projected to now (its remaining, plus
--           refill since, minus what was taken since), as in the memory bucket.
--   give    reservations given back whole (released, or left by a cancelled caller):
--           the bucket ends where it would be had they never been taken;
--   untake  how much of `give` leaves the running total taken (never sent).
-- A settle is an answer, so it also ends slow start's pause. Settles for a quota that
-- was lost (the state is missing, or its epoch is not the caller's) are dropped: the
-- reservations they reconcile were never charged to the quota that exists now.
--
-- ARGV[4]  "refund_1 give_1 untake_1 .. refund_N give_N untake_N"
-- Returns  the view (see _quota.lua), its flag 1 if the settles were applied
if not load(false, true) or EPOCH ~= KNOWN then
  return table.concat(view({}, '0', nil), ' ')
end
resume()
local sums = words(ARGV[4])
for i = 1, N do
  local dim = D[i]
  if dim.exists then
    local refund = tonumber(sums[3 * i - 2]) or 0
    local give = tonumber(sums[3 * i - 1]) or 0
    local untake = tonumber(sums[3 * i]) or 0
    local level = dim.l
    if refund > 0 then
      local raised = level + refund
      if dim.ta >= 0 then
        local projected = dim.a + dim.p / dim.w * (vt - dim.ta) - (dim.k - dim.ak)
        if raised > projected then raised = math.max(projected, level) end
      end
      level = raised
    else
      level = level + refund
    end
    level = level + give
    if level > dim.d then level = dim.d end
    dim.l = level
    dim.k = dim.k - untake
  end
end
local dims = save(false)
return table.concat(view({}, '1', dims), ' ')
