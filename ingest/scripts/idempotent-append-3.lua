-- Idempotent append with the merchant's rate limit: check an Idempotency-Key record; only when
-- there is none, take a token and append the event, and remember the answer. One script, so two
-- concurrent requests with one key cannot both append, and a replay (which appends nothing) takes
-- no token and is never limited. All keys carry the partition's hash tag {i}: one slot, also on
-- Redis Cluster.
--
-- KEYS[1]  idempotency record   <prefix>:{i}:idem:<merchant_id>:<key>   (string "<fingerprint> <tx id>")
-- KEYS[2]  rate-limit bucket    <prefix>:{i}:rl:<merchant_id>           (hash: t = tokens, ts = ms of last update)
-- KEYS[3]  lane stream          <prefix>:{i}:<topic>:<lane>
-- ARGV[1]  fingerprint: SHA-256 hex of the canonical request body
-- ARGV[2]  tx id of the new event (used only when this call appends)
-- ARGV[3]  record TTL in ms
-- ARGV[4]  now, unix ms (from the caller, so the script stays deterministic)
-- ARGV[5]  refill rate, tokens per second (ingest.rate_limit.per_second)
-- ARGV[6]  bucket size (ingest.rate_limit.burst)
-- ARGV[7..] stream entry field/value pairs
-- No MAXLEN here: trimming on append could drop entries a group has not acknowledged yet;
-- retention is the trimmer's job, and it keeps them.
--
-- Returns {"accepted", <entry id>}   appended now, one token taken
--         {"replayed", <tx id>}      same key, same body: the first answer's tx id, nothing appended
--         {"conflict", <tx id>}      same key, another body: nothing appended
--         {"limited", <ms>}          no record and the bucket is empty: nothing appended or
--                                    recorded (a retry with the key may succeed); a token is due in <ms>

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

local rec = redis.call('GET', KEYS[1])
if rec then
  local sep = string.find(rec, ' ', 1, true)
  local fp, tx = string.sub(rec, 1, sep - 1), string.sub(rec, sep + 1)
  if fp == ARGV[1] then return {'replayed', tx} end
  return {'conflict', tx}
end

local now, rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local tokens, ts = refill(KEYS[2], now, rate, burst)
if tokens < 1 then return {'limited', wait_ms(tokens, rate)} end

-- append first: should XADD fail (OOM), no token is taken and no answer recorded
local id = redis.call('XADD', KEYS[3], '*', unpack(ARGV, 7))
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
take(KEYS[2], tokens, ts, rate, burst)
return {'accepted', id}
