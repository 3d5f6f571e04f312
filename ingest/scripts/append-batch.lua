-- Append a chunk of one merchant's batch (POST /v1/transactions/batch) in ONE script call: each
-- event exactly as append-event-2.lua / idempotent-append-3.lua would append it, one after another
-- in order (an idempotency_key used earlier in the chunk replays or conflicts with it, the events
-- past the end of the merchant's bucket are limited), but with one bucket read and one bucket write
-- for the chunk instead of a script call per event. Every key carries the partition's hash tag {i}
-- (a batch is one merchant's: one partition, one slot, also on Redis Cluster).
--
-- KEYS[1]            rate-limit bucket    <prefix>:{i}:rl:<merchant_id>   (hash: t = tokens, ts = ms of last update)
-- KEYS[2..1+S]       the chunk's lane streams, S of them     <prefix>:{i}:<topic>:<lane>
-- KEYS[2+S..]        idempotency records of the events that have a key, in event order
--                                         <prefix>:{i}:idem:<merchant_id>:<key>   (string "<fingerprint> <tx id>")
-- ARGV[1]  now, unix ms (from the caller, so the script stays deterministic)
-- ARGV[2]  refill rate, tokens per second (ingest.rate_limit.per_second)
-- ARGV[3]  bucket size (ingest.rate_limit.burst)
-- ARGV[4]  idempotency record TTL in ms
-- ARGV[5]  S, the number of lane stream keys
-- ARGV[6..] five per event: stream (1..S), idempotency record (index into KEYS, 0 = no key),
--           fingerprint ('' without a key), tx id, event JSON (the entry's `ev`)
-- No MAXLEN here: trimming on append could drop entries a group has not acknowledged yet.
--
-- Returns two values per event, in order:
--   "accepted", <entry id>    appended now, one token taken
--   "replayed", <tx id>       same key, same event as before: nothing appended
--   "conflict", <tx id>       same key, another event: nothing appended
--   "limited",  <ms>          bucket empty: nothing appended or recorded; a token is due in <ms>
--   "failed",   <message>     Redis refused this event's XADD: nothing appended, no token taken

-- bucket:begin (keep identical in append-event-2.lua, idempotent-append-3.lua and append-batch.lua)
-- A missing bucket is a full one: the key expires once a full refill would have happened anyway.
-- Returns the tokens after refilling up to `now`, and the time they are valid at.
local function refill(key, now, rate, burst)
  local b = redis.call('HMGET', key, 't', 'ts')
  local tokens, ts = tonumber(b[1]), tonumber(b[2])
  if not tokens or not ts then return burst, now end
  -- another ingest process's clock may run ahead: never refill backwards
  if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
    ts = now
  end
  return tokens, ts
end

local function take(key, tokens, ts, rate, burst)
  redis.call('HSET', key, 't', tokens - 1, 'ts', ts)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate))
end

local function wait_ms(tokens, rate)
  return math.ceil((1 - tokens) * 1000 / rate)
end
-- bucket:end

local now, rate, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local streams = tonumber(ARGV[5])
local tokens, ts = refill(KEYS[1], now, rate, burst)
local taken = 0
local out = {}

for a = 6, #ARGV, 5 do
  local stream, rec_at, fp, tx = KEYS[1 + tonumber(ARGV[a])], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  local rec = rec_at > 0 and redis.call('GET', KEYS[rec_at]) or false
  if rec then
    local sep = string.find(rec, ' ', 1, true)
    out[#out + 1] = string.sub(rec, 1, sep - 1) == fp and 'replayed' or 'conflict'
    out[#out + 1] = string.sub(rec, sep + 1)
  elseif tokens - taken < 1 then
    out[#out + 1] = 'limited'
    out[#out + 1] = wait_ms(tokens - taken, rate)
  else
    local id = redis.pcall('XADD', stream, '*', 'tx', tx, 'ev', ARGV[a + 4])
    if type(id) == 'table' and id.err then
      out[#out + 1] = 'failed'
      out[#out + 1] = id.err
    else
      if rec_at > 0 then redis.call('SET', KEYS[rec_at], fp .. ' ' .. tx, 'PX', ttl) end
      taken = taken + 1
      out[#out + 1] = 'accepted'
      out[#out + 1] = id
    end
  end
end

-- the whole chunk's tokens in one write (take() subtracts the one it is given)
if taken > 0 then take(KEYS[1], tokens - taken + 1, ts, rate, burst) end
return out
