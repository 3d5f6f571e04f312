--[[
  Every trace of one transaction in its partition, for the console's timeline. Read-only; one
  script, so the trail is one consistent snapshot and only the matches cross the network. Every
  key carries the partition's hash tag: one Redis Cluster slot. Every scan is bounded (ARGV[6]
  entries or members per key), from the transaction id's time minus the clock skew allowance.

  Variable key count (the caller passes it first).
  KEYS[1 .. nS]            every topic's lane streams of the partition
  next nD keys             the stages' delay sets (members: {"f":[field, value, ...], ...})
  next nQ keys             the stages' and sinks' dead-letter streams
  last key                 the partition's dead-letter index (hash: tx id -> JSON)

  ARGV[1]                  tx id
  ARGV[2..4]               nS, nD, nQ
  ARGV[5]                  first entry id to look at (ms)
  ARGV[6]                  most entries (or members) scanned per key

  Returns {index value or false, hits}: hits a flat list of triples
    {key number (1-based, in KEYS order), entry id (streams) or due time (delay sets), fields}
]]
local tx = ARGV[1]
local nS, nD, nQ = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local from, limit = ARGV[5], tonumber(ARGV[6])
local PAGE = 100
local hits = {}

--- @include "field"

-- every entry of stream KEYS[k] whose tx field is ours, scanning at most `limit` entries
local function scan_stream(k)
  local scanned, cursor = 0, from
  while scanned < limit do
    local n = math.min(PAGE, limit - scanned)
    local page = redis.call('XRANGE', KEYS[k], cursor, '+', 'COUNT', n)
    for _, e in ipairs(page) do
      if field(e[2], 'tx') == tx then
        hits[#hits + 1] = k
        hits[#hits + 1] = e[1]
        hits[#hits + 1] = e[2]
      end
    end
    if #page < n then return end
    scanned = scanned + #page
    cursor = '(' .. page[#page][1]
  end
end

-- a retry of ours waiting in delay set KEYS[k]
local function scan_delay(k)
  local cursor, scanned = '0', 0
  repeat
    local r = redis.call('ZSCAN', KEYS[k], cursor, 'MATCH', '*"' .. tx .. '"*', 'COUNT', PAGE)
    cursor = r[1]
    local items = r[2]
    for i = 1, #items, 2 do
      local ok, m = pcall(cjson.decode, items[i])
      if ok and type(m) == 'table' and type(m.f) == 'table' and field(m.f, 'tx') == tx then
        hits[#hits + 1] = k
        hits[#hits + 1] = items[i + 1]
        hits[#hits + 1] = m.f
      end
    end
    scanned = scanned + PAGE
  until cursor == '0' or scanned >= limit
end

for k = 1, nS do scan_stream(k) end
for k = nS + 1, nS + nD do scan_delay(k) end
for k = nS + nD + 1, nS + nD + nQ do scan_stream(k) end
local index = redis.call('HGET', KEYS[nS + nD + nQ + 1], tx)
return {index or false, hits}
