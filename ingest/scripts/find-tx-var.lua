--[[
  Where is a transaction in its partition? For GET /v1/transactions/:id, once Postgres does not
  have it. Read-only; one script so the answer is one consistent snapshot, and only the match
  crosses the network, never the entries scanned past. Every key carries the partition's hash tag:
  one Redis Cluster slot. Every scan is bounded (ARGV[8] entries or members per key), so a lookup
  costs at most (keys x bound) entries of Redis time.

  Variable key count (the caller passes it first).
  KEYS[1]                  the partition's dead-letter index (hash: tx id -> {stage, error, message, at})
  next nI keys             the ingest topic's lane streams
  next nO keys             every other topic's lane streams
  next nD keys             the stages' delay sets (members: {"l":..,"f":[field, value, ...],"u":..})
  next nQ keys             the stages' and sinks' dead-letter streams
  next nP keys             the merchant's parked queues of the ordered stages (lists of "<entry id> <json>",
                           json {"fields": [field, value, ...], ...})

  ARGV[1]                  tx id
  ARGV[2..5]               nI, nO, nD, nQ
  ARGV[6]                  first entry id to look at: the tx id's ms minus the clock skew allowance
                           (the id's time is ingest's clock, entry ids are Redis's)
  ARGV[7]                  last ingest-topic entry id to look at: the tx id's ms plus that allowance
  ARGV[8]                  most entries (or delay-set members) scanned per key
  ARGV[9]                  the clock skew allowance in ms
  ARGV[10 .. 9+nQ]         the stage (or sink) name of each dead-letter stream, in KEYS order
  ARGV[10+nQ]              nP
  ARGV[11+nQ ..]           the consumer groups reading the ingest topic (its first stages)

  Returns {state, event JSON or false, dead-letter index value or false}, state one of
    'dead_lettered'  in the dead-letter index; the event as it was when it failed (else any copy found)
    'accepted'       only in the ingest topic, not yet delivered to any group reading it
    'processing'     anywhere else in the pipeline (delivered, in a later topic, or waiting for a retry);
                     the event is the most recently appended copy found
    'none'           not found within the bounds
]]
local tx = ARGV[1]
local nI, nO, nD, nQ = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local from, ingestTo, limit, skew = ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local PAGE = 100
local nP = tonumber(ARGV[10 + nQ])

--- @include "field"

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function id_less(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  return am < bm or (am == bm and as < bs)
end

-- the first entry of `key` in [start, stop] whose tx field is ours, scanning at most `limit` entries
local function find(key, start, stop)
  local scanned, cursor = 0, start
  while scanned < limit do
    local n = math.min(PAGE, limit - scanned)
    local page = redis.call('XRANGE', key, cursor, stop, 'COUNT', n)
    for _, e in ipairs(page) do
      if field(e[2], 'tx') == tx then return e end
    end
    if #page < n then return nil end
    scanned = scanned + #page
    cursor = '(' .. page[#page][1]
  end
  return nil
end

-- the event of a retry waiting in a delay set, or nil
local function find_delayed(key)
  local cursor, scanned = '0', 0
  repeat
    local r = redis.call('ZSCAN', key, cursor, 'MATCH', '*"' .. tx .. '"*', 'COUNT', PAGE)
    cursor = r[1]
    local items = r[2]
    for i = 1, #items, 2 do
      local ok, m = pcall(cjson.decode, items[i])
      if ok and type(m) == 'table' and type(m.f) == 'table' and field(m.f, 'tx') == tx then
        return field(m.f, 'ev')
      end
    end
    scanned = scanned + PAGE
  until cursor == '0' or scanned >= limit
  return nil
end

-- has any of the ingest topic's groups been handed this entry of `key`?
local function delivered(key, id)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  if not ok then return false end
  for _, g in ipairs(groups) do
    local name, last = field(g, 'name'), field(g, 'last-delivered-id')
    for i = 11 + nQ, #ARGV do
      if name == ARGV[i] and last and not id_less(last, id) then return true end
    end
  end
  return false
end

-- 1. dead-lettered: the index says so; the event from its dead letter
local index = redis.call('HGET', KEYS[1], tx)
if index then
  local ok, info = pcall(cjson.decode, index)
  if ok and type(info) == 'table' and info.stage and tonumber(info.at) then
    local start = string.format('%.0f', math.max(0, tonumber(info.at) - skew))
    for q = 1, nQ do
      if ARGV[9 + q] == info.stage then
        local e = find(KEYS[1 + nI + nO + nD + q], start, '+')
        if e then return {'dead_lettered', field(e[2], 'ev') or false, index} end
      end
    end
  end
end

-- 2. the streams: the first copy in the ingest topic, the latest anywhere
local first, firstKey, latest
for i = 1, nI do
  local key = KEYS[1 + i]
  local e = find(key, from, ingestTo)
  if e and (not first or id_less(e[1], first[1])) then first, firstKey = e, key end
end
latest = first
for i = 1, nO do
  local e = find(KEYS[1 + nI + i], from, '+')
  if e and (not latest or id_less(latest[1], e[1])) then latest = e end
end

if index then return {'dead_lettered', latest and field(latest[2], 'ev') or false, index} end

if latest then
  -- a copy carrying attempts ('at') was moved back by a retry: the event has been processed before
  if latest == first and not field(first[2], 'at') and not delivered(firstKey, first[1]) then
    return {'accepted', field(first[2], 'ev') or false, false}
  end
  return {'processing', field(latest[2], 'ev') or false, false}
end

-- 3. its original entries trimmed away, but a retry still waiting (a delay set, or parked)
for d = 1, nD do
  local ev = find_delayed(KEYS[1 + nI + nO + d])
  if ev then return {'processing', ev, false} end
end
for q = 1, nP do
  local items = redis.call('LRANGE', KEYS[1 + nI + nO + nD + nQ + q], 0, limit - 1)
  for _, item in ipairs(items) do
    if string.find(item, '"' .. tx .. '"', 1, true) then
      local ok, m = pcall(cjson.decode, string.sub(item, string.find(item, ' ', 1, true) + 1))
      if ok and type(m) == 'table' and type(m.fields) == 'table' and field(m.fields, 'tx') == tx then
        return {'processing', field(m.fields, 'ev') or false, false}
      end
    end
  end
end
return {'none', false, false}
