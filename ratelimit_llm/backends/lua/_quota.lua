-- The part every script shares: the quota's state, its virtual clock, its lifetimes.
--
-- The Python side prepends this file to acquire.lua, settle.lua and update.lua (one
-- registered script each), so the rules below exist once. They are the rules of the
-- memory bucket (ratelimit_llm/_bucket.py), kept in Redis so that every process obeys
-- one copy of them:
--
--   * per dimension, the *stated* limit, window and capacity (the largest call) are kept
--     apart from what is *inferred*: the depth (how much may be spent at once), the pace
--     (the limit refilled at) and slow start (probing, from the opening allowance);
--   * slow start's refill pause, [pf, rs): from the first grant of a slow-starting quota
--     until the first answer or `grace` seconds later, nothing refills;
--   * every level is refilled lazily, on the quota's own virtual clock.
--
-- The virtual clock (vt). Redis's TIME is trusted only within bounds: each call moves vt
-- by the time TIME moved since the previous call (rt), never backwards, and by no more
-- than a witness independent of Redis's clock confirms, `max_step` seconds at least:
--   * a caller that saw vt = X in a reply and has measured E seconds on its own
--     monotonic clock since vouches for X + E;
--   * every caller sends its host's wall clock; the time it moved since the previous
--     call (`cw`, whoever made it) confirms that much.
-- So a forward jump of Redis's clock alone refills at most `max_step` seconds' worth
-- (plus any disagreement between the calling hosts' clocks), a backward one stops the
-- quota's clock for one interval between calls, and real idle time is refilled in full.
-- The hash field `shift` (absent in production) is added to TIME: tests step Redis's
-- clock for every process on the quota through it, as a jump of the server's clock
-- would.
--
-- Lifetimes (the epoch). A quota is created by the first script that finds no state. A
-- caller that has seen the quota before says so (`known`, the epoch it saw): the state
-- it finds missing was lost (a restart, a flush), so the quota is created *empty*, and
-- an acquire from a caller whose epoch is not the current one debits the reservations
-- that caller still has outstanding (`out`), so that a lost quota never hands out a full
-- bucket on top of reservations granted before the loss.
--
-- KEYS[1]  the state hash      KEYS[2]  the grant history (a list, newest first)
-- ARGV[1]  "ttl history known vouch max_step grace client wall" (known, vouch: "-" if
--          none; wall: the caller's wall clock, seconds since the epoch)
-- ARGV[2]  the caller's dimensions, one per line: "name<TAB>limit<TAB>window<TAB>
--          capacity<TAB>opening" (opening 0: none); they create what Redis lacks
redis.replicate_commands()

local EPS = 1e-9
local NEAR_FULL = 0.9

local function fmt(x)
  return string.format('%.17g', x)
end

local function split(s, sep)
  local out, start = {}, 1
  while true do
    local at = string.find(s, sep, start, true)
    if not at then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, at - 1)
    start = at + 1
  end
end

local head = split(ARGV[1], ' ')
local TTL = tonumber(head[1])
local HISTORY = tonumber(head[2])
local KNOWN = head[3]
local VOUCH = tonumber(head[4])
local MAX_STEP = tonumber(head[5])
local GRACE = tonumber(head[6])
local CLIENT = head[7]
local WALL = tonumber(head[8])

local D = {}        -- the caller's dimensions, in its order
local BY_NAME = {}
for _, record in ipairs(split(ARGV[2], '\n')) do
  local f = split(record, '\t')
  local dim = {name = f[1], cL = tonumber(f[2]), cw = tonumber(f[3]), cc = tonumber(f[4]),
    co = tonumber(f[5])}
  D[#D + 1] = dim
  BY_NAME[dim.name] = dim
end
local N = #D

local PER = {'L', 'w', 'c', 'o', 'd', 'p', 'l', 't', 'k', 's', 'q', 'm', 'a', 'ta', 'ak'}
local wanted = {'epoch', 'vt', 'rt', 'pf', 'rs', 'shift', 'cw'}
for i = 1, N do
  for _, f in ipairs(PER) do
    wanted[#wanted + 1] = f .. ':' .. D[i].name
  end
end
local got = redis.call('HMGET', KEYS[1], unpack(wanted))
local clock = redis.call('TIME')
local real = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + (tonumber(got[6]) or 0)

local EPOCH = got[1] or nil
local EXISTED = EPOCH ~= nil
local vt, pf, rs = 0, nil, nil
if EXISTED then
  vt = tonumber(got[2])
  pf = tonumber(got[4])
  rs = tonumber(got[5])
  local step = real - tonumber(got[3])
  if step < 0 then step = 0 end
  local allowed = MAX_STEP
  if VOUCH and VOUCH - vt > allowed then allowed = VOUCH - vt end
  local witness = tonumber(got[7])
  if witness and WALL - witness > allowed then allowed = WALL - witness end
  if step > allowed then step = allowed end
  vt = vt + step
end

-- A dimension as the caller configures it: full at its depth, or empty.
local function fresh(dim, empty)
  dim.L, dim.w, dim.c, dim.o = dim.cL, dim.cw, dim.cc, dim.co
  if dim.o > 0 and dim.o < dim.c then
    dim.s, dim.d = 1, dim.o
  else
    dim.s, dim.d, dim.o = 0, dim.c, 0
  end
  dim.p = dim.L
  dim.l = empty and 0 or dim.d
  dim.t, dim.k, dim.q, dim.m = vt, 0, 0, 0
  dim.a, dim.ta, dim.ak = nil, nil, nil
  dim.exists = true
end

-- Refill `dim` to vt at its pace, leaving out slow start's pause.
local function refill(dim)
  local elapsed = vt - dim.t
  if elapsed > 0 then
    if pf and rs > pf then
      local lo = math.max(dim.t, pf)
      local hi = math.min(vt, rs)
      if hi > lo then elapsed = elapsed - (hi - lo) end
    end
    if elapsed > 0 then
      dim.l = math.min(dim.d, dim.l + dim.p / dim.w * elapsed)
    end
  end
  dim.t = vt
end

-- Read what Redis holds; a dimension it lacks exists only if `create`.
local function load(create)
  local empty = KNOWN ~= '-'
  if not EXISTED then
    if not create then return false end
    vt = real
    EPOCH = clock[1] .. '.' .. clock[2] .. '.' .. CLIENT
    if empty then
      pf, rs = vt, vt  -- an empty quota does not slow-start its refill
    end
  end
  local any_probing = false
  for i = 1, N do
    local dim = D[i]
    local base = 7 + (i - 1) * #PER
    dim.L = tonumber(got[base + 1])
    if dim.L then
      dim.w, dim.c, dim.o = tonumber(got[base + 2]), tonumber(got[base + 3]),
        tonumber(got[base + 4])
      dim.d, dim.p, dim.l = tonumber(got[base + 5]), tonumber(got[base + 6]),
        tonumber(got[base + 7])
      dim.t, dim.k, dim.s = tonumber(got[base + 8]), tonumber(got[base + 9]),
        tonumber(got[base + 10])
      dim.q, dim.m = tonumber(got[base + 11]), tonumber(got[base + 12])
      dim.a, dim.ta, dim.ak = tonumber(got[base + 13]), tonumber(got[base + 14]),
        tonumber(got[base + 15])
      dim.exists = true
      refill(dim)
    elseif create then
      fresh(dim, empty and not EXISTED)
    else
      dim.exists = false
    end
    if dim.exists and dim.s == 1 then any_probing = true end
  end
  if not EXISTED and not any_probing then
    pf, rs = vt, vt
  end
  return true
end

-- An answer came: slow start's refill pause ends now.
local function resume()
  if pf and rs > vt then rs = math.max(vt, pf) end
end

-- Seconds from vt until `need` seconds of refill have accrued (the pause left out).
local function delay(need)
  if need <= 0 then return 0 end
  if pf and rs > vt then
    local before = pf - vt
    if before < 0 then before = 0 end
    if need <= before then return need end
    return (rs - vt) + (need - before)
  end
  return need
end

-- A new stated limit: what was used stays used (the level moves by the change in depth).
local function resize(dim, limit)
  if math.abs(dim.L - limit) <= 1e-6 * math.max(math.abs(dim.L), math.abs(limit)) then
    return
  end
  local share = limit / dim.L
  dim.L, dim.p, dim.c, dim.o = limit, limit, dim.c * share, dim.o * share
  local depth = math.min(dim.c, dim.d * share)
  dim.l = math.min(depth, dim.l + depth - dim.d)
  dim.d = depth
end

local function save()
  local fields = {'epoch', EPOCH, 'vt', fmt(vt), 'rt', fmt(real), 'cw', fmt(WALL)}
  if pf then
    fields[#fields + 1] = 'pf'
    fields[#fields + 1] = fmt(pf)
    fields[#fields + 1] = 'rs'
    fields[#fields + 1] = fmt(rs)
  end
  for i = 1, N do
    local dim = D[i]
    if dim.exists then
      local n = ':' .. dim.name
      local values = {dim.L, dim.w, dim.c, dim.o, dim.d, dim.p, dim.l, dim.t, dim.k, dim.s,
        dim.q, dim.m}
      for j = 1, 12 do
        fields[#fields + 1] = PER[j] .. n
        fields[#fields + 1] = fmt(values[j])
      end
      if dim.a then
        fields[#fields + 1] = 'a' .. n
        fields[#fields + 1] = fmt(dim.a)
        fields[#fields + 1] = 'ta' .. n
        fields[#fields + 1] = fmt(dim.ta)
        fields[#fields + 1] = 'ak' .. n
        fields[#fields + 1] = fmt(dim.ak)
      end
    end
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('EXPIRE', KEYS[1], TTL)
end

-- The reply's head: "epoch vt pf rs flag", then per dimension (the caller's order)
-- "limit window capacity opening depth pace probing level taken probe_mark" ("-" for a
-- dimension Redis does not hold).
local function view(out, flag)
  out[#out + 1] = EPOCH or '-'
  out[#out + 1] = fmt(vt)
  out[#out + 1] = pf and fmt(pf) or '-'
  out[#out + 1] = rs and fmt(rs) or '-'
  out[#out + 1] = flag
  for i = 1, N do
    local dim = D[i]
    if dim.exists then
      local values = {dim.L, dim.w, dim.c, dim.o, dim.d, dim.p, dim.s, dim.l, dim.k, dim.m}
      for j = 1, 10 do out[#out + 1] = fmt(values[j]) end
    else
      for _ = 1, 10 do out[#out + 1] = '-' end
    end
  end
  return out
end
