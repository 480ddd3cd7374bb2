-- Apply a list of corrections to a quota, in order, atomically (after _quota.lua).
--
-- What the learner decides from one answer (headers, a hold, slow start's growth or
-- fall-back, a learned pace) reaches Redis as one call. Every operation works on Redis's
-- own state (its depth, pace and slow start), never on a process's copy of it, so that
-- what one process learned and what another holds cannot disagree.
--
-- ARGV[4..]  one operation each, its fields separated by tabs:
--   h NAME LIMIT REMAINING RESET MARK RESIZE   the server's headers for one dimension
--       (LIMIT, REMAINING, RESET: "-" if not sent; MARK: "m:<taken>" the running total
--       taken when the call was granted, "s:<time>" a time to look up in the grant
--       history, or "-"; RESIZE 1: a different LIMIT is the new stated limit)
--   hold NAME SECONDS AMOUNT     nothing needing AMOUNT fits for SECONDS
--   grow NAME AMOUNT MARK FACTOR a call granted at MARK was answered without refusal
--   fall NAME                    a refusal while probing: give the last probe back
--   pace NAME LIMIT AMOUNT       refill as if the limit were LIMIT (inferred)
--   resize NAME LIMIT            a new stated limit
--   level NAME LEVEL             put the level at LEVEL (at most the depth)
--   answer                       an answer came: slow start's pause ends
-- Marks are running totals of one lifetime of the quota: if the caller's epoch is not
-- the current one, they count for nothing (everything taken since counts as after).
-- Returns  the view (see _quota.lua), its flag 1
load(true, true)
local current = EPOCH == KNOWN

local function num(text)
  if text == nil or text == '-' then return nil end
  return tonumber(text)
end

-- The totals just after the last grant usable at or before `since` (see the history's
-- layout in _quota.lua); 0 if there was none (and none was forgotten).
local entries_at = {}
local function entry_at(since)
  local found = entries_at[since]
  if found ~= nil then return found end
  found = redis.call('ZREVRANGEBYSCORE', KEYS[2], fmt(since), '-inf', 'LIMIT', 0, 1)[1]
  if not found then
    -- Older than every grant remembered: if none was forgotten, nothing was taken yet;
    -- else the oldest remembered (which discounts more: the safe side).
    if redis.call('ZCARD', KEYS[2]) < HISTORY then
      found = 0
    else
      found = redis.call('ZRANGE', KEYS[2], 0, 0)[1] or 0
    end
  end
  entries_at[since] = found
  return found
end

local function taken_at(dim, since)
  local entry = entry_at(since)
  if entry == 0 then return 0 end
  for name, value in string.gmatch(entry, '([^\t]+)\t([^\t]+)\t') do
    if name == dim.name then return tonumber(value) end
  end
  return 0  -- granted by a process without this dimension: count everything as after
end

local function mark_of(dim, text)
  if text == '-' then return nil end
  if not current then return 0 end
  local kind, value = string.sub(text, 1, 1), tonumber(string.sub(text, 3))
  if kind == 'm' then return value end
  return taken_at(dim, value)
end

local function shown_depth(dim, limit, remaining, reset)
  local shown
  if reset and reset > 0 and (limit == nil or remaining < limit) then
    shown = remaining + reset * dim.L / dim.w
  elseif remaining >= NEAR_FULL * dim.c then
    shown = dim.c
  else
    return nil
  end
  return math.min(dim.c, math.max(shown, EPS))
end

local function headers(dim, f)
  resume()
  local limit, remaining, reset = num(f[3]), num(f[4]), num(f[5])
  if f[7] == '1' and limit and limit > 0 then resize(dim, limit) end
  if remaining == nil or remaining < 0 then return end
  local mark = mark_of(dim, f[6])
  local sent_after = 0
  if mark then sent_after = math.max(0, dim.k - mark) end
  local server_level = remaining - sent_after
  local shown = shown_depth(dim, limit, remaining, reset)
  if dim.s == 1 then
    if shown then
      -- Open: the server's word, net of what was taken since, is the level now.
      dim.s = 0
      dim.d = shown
      dim.l = math.min(shown, server_level)
    else
      -- Only a lower bound on the depth: the server holds at least this much.
      dim.d = math.min(dim.c, math.max(dim.d, remaining))
      dim.l = math.min(dim.l, server_level)
    end
  else
    if shown and math.abs(shown - dim.d) > 0.1 * dim.d then dim.d = shown end
    dim.l = math.min(dim.l, dim.d, server_level)
  end
  dim.a, dim.ta, dim.ak = server_level, vt, dim.k
end

for index = 4, #ARGV do
  local f = split(ARGV[index], '\t')
  local kind = f[1]
  local dim = BY_NAME[f[2]]
  if kind == 'answer' then
    resume()
  elseif dim and dim.exists then
    if kind == 'h' then
      headers(dim, f)
    elseif kind == 'hold' then
      local seconds, amount = tonumber(f[3]), tonumber(f[4])
      if seconds > 0 and seconds < math.huge then
        resume()
        if amount > dim.d then amount = dim.d end
        dim.l = math.min(dim.l, amount - dim.p / dim.w * seconds)
      end
    elseif kind == 'grow' then
      resume()
      local amount, mark, factor = tonumber(f[3]), tonumber(f[4]), tonumber(f[5])
      if current and dim.s == 1 and amount > 0 and mark > dim.m then
        local depth = math.min(dim.c, dim.d + math.max(amount, dim.q * factor))
        dim.l = math.min(depth, dim.l + depth - dim.d)
        dim.q = depth - dim.d
        dim.d = depth
        dim.m = dim.k
        if depth >= dim.c then dim.s = 0 end
      end
    elseif kind == 'fall' then
      resume()
      if dim.s == 1 then
        dim.s = 0
        dim.d = math.max(dim.o, dim.d - dim.q)
        dim.l = math.min(dim.l, dim.d)
      end
    elseif kind == 'pace' then
      local limit, amount = math.min(tonumber(f[3]), dim.L), tonumber(f[4])
      if amount > dim.d then amount = dim.d end
      if dim.l < amount then
        dim.l = amount - (amount - dim.l) * limit / dim.p
      end
      dim.p = limit
    elseif kind == 'resize' then
      resize(dim, tonumber(f[3]))
    elseif kind == 'level' then
      dim.l = math.min(tonumber(f[3]), dim.d)
    end
  end
end

local dims = save(true)
redis.call('EXPIRE', KEYS[2], TTL)
return table.concat(view({}, '1', dims), ' ')
