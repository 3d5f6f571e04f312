-- Append with the merchant's rate limit: take one token from the merchant's bucket and append the
-- event, or append nothing when the bucket is empty. One script, one round trip; both keys carry
-- the partition's hash tag {i}: one slot, also on Redis Cluster.
--
-- KEYS[1]  rate-limit bucket   <prefix>:{i}:rl:<merchant_id>   (hash: t = tokens, ts = ms of last update)
-- KEYS[2]  lane stream         <prefix>:{i}:<topic>:<lane>
-- ARGV[1]  now, unix ms (from the caller, so the script stays deterministic)
-- ARGV[2]  refill rate, tokens per second (ingest.rate_limit.per_second)
-- ARGV[3]  bucket size (ingest.rate_limit.burst)
-- ARGV[4..] stream entry field/value pairs
-- No MAXLEN here: trimming on append could drop entries a group has not acknowledged yet.
--
-- Returns {"accepted", <entry id>}   appended now, one token taken
--         {"limited", <ms>}          bucket empty: nothing appended; a token is due in <ms>

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

local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, ts = refill(KEYS[1], now, rate, burst)
if tokens < 1 then return {'limited', wait_ms(tokens, rate)} end

-- append first: should XADD fail (OOM), no token is taken for an event that was not appended
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
take(KEYS[1], tokens, ts, rate, burst)
return {'accepted', id}
