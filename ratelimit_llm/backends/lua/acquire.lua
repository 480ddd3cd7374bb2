-- Reserve capacity for a batch of calls, in order, reserve-then-sleep (after _quota.lua).
--
-- Each request is served in turn, as the memory bucket serves its queue: the wait for
-- it is the time until every dimension would hold min(amount, depth) (a call above the
-- inferred depth but within the stated capacity goes when the bucket is full at its
-- depth), plus what is left of slow start's pause; then the amount is taken at once,
-- letting levels go below zero. Every later request sees the lower level and waits
-- longer, so requests are served in the order they reached Redis, whatever their size,
-- with no lock and no polling. A process sends the calls it has queued meanwhile as one
-- batch, so a hot quota costs one script call per round trip, not one per call.
--
-- ARGV[4]  the requests: "max_wait a_1 .. a_N" per request, all on one line (max_wait -1:
--          none; a request whose wait would exceed it is not reserved)
-- ARGV[5]  "out_1 .. out_N local_1 .. local_N": the caller's reservations still sleeping
--          out their wait (debited if its epoch is not the current one), and what it
--          granted from its local share during an outage (always debited)
-- Returns  one string: the view (see _quota.lua), its flag 1 if `out` was debited, then
--          per request "1 wait taken_1 .. taken_N" (reserved; `taken` is the running total
--          taken after it, its mark), "0 wait 0 .." (not reserved: wait > max_wait) or
--          "-1 index capacity 0 .." (the amount can never fit dimension `index`)
load(true, false)

local debts = words(ARGV[5])
local debited = '0'
if KNOWN ~= '-' and EPOCH ~= KNOWN then
  -- The caller's reservations were granted by a quota that was lost: they still come,
  -- so the new one owes them (and counts them as taken after any snapshot).
  for i = 1, N do
    local out = tonumber(debts[i]) or 0
    D[i].l = D[i].l - out
    D[i].k = D[i].k + out
  end
  debited = '1'
end
for i = 1, N do
  D[i].l = D[i].l - (tonumber(debts[N + i]) or 0)
end

local probing = false
for i = 1, N do
  if D[i].s == 1 then probing = true end
end

local requests = words(ARGV[4])
local results = {}
local entries = {}
local stride = N + 1
for r = 0, #requests / stride - 1 do
  local base = r * stride
  local max_wait = tonumber(requests[base + 1])
  local wait = 0
  local oversized = 0
  local amounts = {}
  for i = 1, N do
    local dim = D[i]
    local amount = tonumber(requests[base + 1 + i])
    amounts[i] = amount
    if amount > dim.c * (1 + EPS) then
      oversized = i
      break
    end
    local need = amount
    if need > dim.d then need = dim.d end
    local short = need - dim.l
    if short > EPS * math.max(1, need) then
      local w = delay(short / (dim.p / dim.w))
      if w > wait then wait = w end
    end
  end
  if oversized > 0 then
    results[#results + 1] = '-1'
    results[#results + 1] = tostring(oversized)
    results[#results + 1] = fmt(D[oversized].c)
    for _ = 2, N do results[#results + 1] = '0' end
  elseif max_wait >= 0 and wait > max_wait then
    results[#results + 1] = '0'
    results[#results + 1] = fmt(wait)
    for _ = 1, N do results[#results + 1] = '0' end
  else
    results[#results + 1] = '1'
    results[#results + 1] = fmt(wait)
    local entry = ''
    for i = 1, N do
      local dim = D[i]
      local amount = amounts[i]
      dim.l = dim.l - amount
      dim.k = dim.k + amount
      local total = fmt(dim.k)
      results[#results + 1] = total
      entry = entry .. dim.name .. '\t' .. total .. '\t'
    end
    -- Scores break ties by member, not by order: a microsecond per request keeps the
    -- grants of one batch (which may share a time) in the order they were made.
    entries[#entries + 1] = fmt(vt + wait + r * 1e-6)
    entries[#entries + 1] = entry
    if probing and not pf then
      -- The first grant of a slow-starting quota: refill waits for the first answer.
      pf = vt + wait
      rs = pf + GRACE
    end
  end
end

local dims = save(false)
if #entries > 0 then
  redis.call('ZADD', KEYS[2], unpack(entries))
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(HISTORY + 1))
end
redis.call('EXPIRE', KEYS[2], TTL)
local out = view({}, debited, dims)
for _, value in ipairs(results) do out[#out + 1] = value end
return table.concat(out, ' ')
