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
--     call (whoever made it) confirms that much.
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
-- Layout (string operations are what a script call spends its time on, so an acquire
-- parses and formats only what moves):
--   q          "epoch vt rt pf rs cw" (pf, rs: "-" until slow start's pause is set; cw:
--              the wall clock of the previous caller)
--   c:<name>   "limit window capacity opening depth pace probing probe probe_mark
--              anchor_level anchor_time anchor_taken" (anchor_time -1: none), what
--              only corrections change
--   l:<name>   "level updated taken", what every acquire and settle changes
--   shift      the test hook above
--
-- KEYS[1]  the state hash
-- KEYS[2]  the grant history: a sorted set, scored by when each grant's capacity became
--          usable (vt + its wait), of "name<TAB>taken<TAB>..." (the running totals
--          just after it), the `history` latest kept
-- ARGV[1]  "ttl history known vouch max_step grace client wall" (known, vouch: "-" if
--          none; wall: the caller's wall clock, seconds since the epoch)
-- ARGV[2]  the caller's dimension names, one per line
-- ARGV[3]  "limit window capacity opening" per dimension (opening 0: none): they create
--          what Redis lacks
redis.replicate_commands()

local EPS = 1e-9
local NEAR_FULL = 0.9

local function fmt(x)
  return string.format('%.17g', x)
end

local function words(s)
  local out = {}
  for word in string.gmatch(s, '%S+') do out[#out + 1] = word end
  return out
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

local TTL, HISTORY, KNOWN, VOUCH, MAX_STEP, GRACE, CLIENT, WALL_TEXT = string.match(ARGV[1],
  '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
TTL, HISTORY, VOUCH = tonumber(TTL), tonumber(HISTORY), tonumber(VOUCH)
MAX_STEP, GRACE = tonumber(MAX_STEP), tonumber(GRACE)
local WALL = tonumber(WALL_TEXT)

local D = {}        -- the caller's dimensions, in its order
local BY_NAME = {}
local wanted = {'q', 'shift'}
for name in string.gmatch(ARGV[2], '[^\n]+') do
  local dim = {name = name}
  D[#D + 1] = dim
  BY_NAME[name] = dim
  wanted[#wanted + 1] = 'c:' .. name
  wanted[#wanted + 1] = 'l:' .. name
end
local N = #D

local got = redis.call('HMGET', KEYS[1], unpack(wanted))
local clock = redis.call('TIME')
local real = tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + (tonumber(got[2]) or 0)

local EPOCH, vt, pf, rs = nil, 0, nil, nil
local PF_TEXT, RS_TEXT = '-', '-'
local EXISTED = false
if got[1] then
  local epoch, qvt, qrt, qpf, qrs, qcw = string.match(got[1],
    '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  EPOCH, EXISTED = epoch, true
  vt, pf, rs = tonumber(qvt), tonumber(qpf), tonumber(qrs)
  PF_TEXT, RS_TEXT = qpf, qrs
  local step = real - tonumber(qrt)
  if step < 0 then step = 0 end
  local allowed = MAX_STEP
  if VOUCH and VOUCH - vt > allowed then allowed = VOUCH - vt end
  local witness = tonumber(qcw)
  if witness and WALL - witness > allowed then allowed = WALL - witness end
  if step > allowed then step = allowed end
  vt = vt + step
end

-- A dimension as the caller configures it: full at its depth, or empty.
local function fresh(dim, i, empty)
  local spec = words(ARGV[3])
  dim.L, dim.w = tonumber(spec[4 * i - 3]), tonumber(spec[4 * i - 2])
  dim.c, dim.o = tonumber(spec[4 * i - 1]), tonumber(spec[4 * i])
  if dim.o > 0 and dim.o < dim.c then
    dim.s, dim.d = 1, dim.o
  else
    dim.s, dim.d, dim.o = 0, dim.c, 0
  end
  dim.p = dim.L
  dim.l = empty and 0 or dim.d
  dim.t, dim.k, dim.q, dim.m = vt, 0, 0, 0
  dim.a, dim.ta, dim.ak = 0, -1, 0
  dim.exists = true
  dim.changed = true
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

local COLD = '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$'
-- The acquire path reads only window, capacity, depth, pace and probing.
local COLD_HOT = '^%S+ (%S+) (%S+) %S+ (%S+) (%S+) (%S+)'

-- Read what Redis holds; a dimension it lacks exists only if `create`. An acquire reads
-- only what it needs (`full` false); corrections read everything.
local function load(create, full)
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
    local cold, hot = got[1 + 2 * i], got[2 + 2 * i]
    if cold and hot then
      dim.cold = cold
      if full then
        local L, w, c, o, d, p, s, q, m, a, ta, ak = string.match(cold, COLD)
        dim.L, dim.w, dim.c, dim.o = tonumber(L), tonumber(w), tonumber(c), tonumber(o)
        dim.d, dim.p, dim.s = tonumber(d), tonumber(p), tonumber(s)
        dim.q, dim.m = tonumber(q), tonumber(m)
        dim.a, dim.ta, dim.ak = tonumber(a), tonumber(ta), tonumber(ak)
      else
        local w, c, d, p, s = string.match(cold, COLD_HOT)
        dim.w, dim.c, dim.d, dim.p, dim.s = tonumber(w), tonumber(c), tonumber(d),
          tonumber(p), tonumber(s)
      end
      local l, t, k = string.match(hot, '^(%S+) (%S+) (%S+)$')
      dim.l, dim.t, dim.k = tonumber(l), tonumber(t), tonumber(k)
      dim.exists = true
      refill(dim)
    elseif create then
      fresh(dim, i, empty and not EXISTED)
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

-- An answer came: slow start's refill pause ends now. The grants that counted on its
-- planned end become usable that much sooner (their callers are woken so), and so do
-- their times in the history, or later snapshots would count them as not yet sent.
-- Once per lifetime of a quota, over the grants made during the pause.
local function resume()
  if pf and rs > vt then
    local ended = math.max(vt, pf)
    local moved = redis.call('ZRANGEBYSCORE', KEYS[2], fmt(rs), '+inf', 'WITHSCORES')
    if #moved > 0 then
      local rescored = {}
      for j = 1, #moved, 2 do
        rescored[#rescored + 1] = fmt(tonumber(moved[j + 1]) - (rs - ended))
        rescored[#rescored + 1] = moved[j]
      end
      redis.call('ZADD', KEYS[2], unpack(rescored))
    end
    rs = ended
  end
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

local VT_TEXT = nil

-- Write the state back: the clock and the levels always, what corrections change only
-- for dimensions marked `changed` (or all, with `all`). Returns each dimension's
-- "cold hot" numbers, which the reply sends as they are.
local function texts()
  VT_TEXT = fmt(vt)
  if pf and tonumber(PF_TEXT) ~= pf then PF_TEXT = fmt(pf) end
  if rs and tonumber(RS_TEXT) ~= rs then RS_TEXT = fmt(rs) end
end

local function save(all)
  texts()
  local fields = {'q', EPOCH .. ' ' .. VT_TEXT .. ' ' .. fmt(real) .. ' ' .. PF_TEXT .. ' ' ..
    RS_TEXT .. ' ' .. WALL_TEXT}
  local dims = {}
  for i = 1, N do
    local dim = D[i]
    if dim.exists then
      local n = dim.name
      if all or dim.changed then
        dim.cold = string.format(
          '%.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g',
          dim.L, dim.w, dim.c, dim.o, dim.d, dim.p, dim.s, dim.q, dim.m, dim.a, dim.ta, dim.ak)
        fields[#fields + 1] = 'c:' .. n
        fields[#fields + 1] = dim.cold
      end
      local hot = fmt(dim.l) .. ' ' .. VT_TEXT .. ' ' .. fmt(dim.k)
      fields[#fields + 1] = 'l:' .. n
      fields[#fields + 1] = hot
      dims[i] = dim.cold .. ' ' .. hot
    end
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('EXPIRE', KEYS[1], TTL)
  return dims
end

-- The reply's head: "epoch vt pf rs flag", then each dimension's 15 numbers, its cold
-- then its hot ones (see the layout above), in the caller's order; 15 "-" for one
-- Redis does not hold. `dims` is what `save` returned (nothing saved: as read).
local MISSING = '- - - - - - - - - - - - - - -'
local function view(out, flag, dims)
  if not VT_TEXT then texts() end
  out[#out + 1] = EPOCH or '-'
  out[#out + 1] = VT_TEXT
  out[#out + 1] = PF_TEXT
  out[#out + 1] = RS_TEXT
  out[#out + 1] = flag
  for i = 1, N do
    if dims and dims[i] then
      out[#out + 1] = dims[i]
    elseif D[i].exists then
      out[#out + 1] = D[i].cold .. ' ' .. got[2 + 2 * i]
    else
      out[#out + 1] = MISSING
    end
  end
  return out
end
