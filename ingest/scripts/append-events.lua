-- Append accepted transactions of one merchant in ONE script call: POST /v1/transactions sends one
-- event, POST /v1/transactions/batch a chunk of up to 1,000. Events are taken in order, each on
-- its own: with an Idempotency-Key that has a record, it replays or conflicts and appends nothing
-- (and takes no token); otherwise it takes a token from the merchant's bucket and is appended, or
-- is `limited` when the bucket is empty. A key used earlier in the same call is seen like one used
-- by an earlier request. The bucket is read once and written once per call. Every key carries the
-- partition's hash tag {i} (one merchant: one partition, one slot, also on Redis Cluster).
--
-- KEYS[1]            rate-limit bucket    <prefix>:{i}:rl:<merchant_id>   (hash: t = tokens, ts = ms of last update)
-- KEYS[2..1+S]       the call's lane streams, S of them     <prefix>:{i}:<topic>:<lane>
-- KEYS[2+S..]        idempotency records of the events that have a key, in event order
--                                         <prefix>:{i}:idem:<merchant_id>:<key>   (string "<fingerprint> <tx id>")
-- ARGV[1]  now, unix ms (from the caller, so the script stays deterministic)
-- ARGV[2]  refill rate, tokens per second (ingest.rate_limit.per_second)
-- ARGV[3]  bucket size (ingest.rate_limit.burst)
-- ARGV[4]  idempotency record TTL in ms
-- ARGV[5]  S, the number of lane stream keys
-- ARGV[6..] nine per event: stream (1..S), idempotency record (index into KEYS, 0 = no key),
--           fingerprint ('' without a key), tx id, event JSON (the entry's `ev`), W3C traceparent
--           (the entry's `tp`; '' for none), refundable-payins bucket (index into KEYS, 0 = none;
--           core/payins.ts), payin op: "p" register this payin as accepted (arg: when the bucket
--           expires, unix ms) | "r" require the payin the arg names (a refund or chargeback) | ''
-- KEYS[..]          refundable-payins buckets <prefix>:{i}:payins:<merchant_id>:<bucket>
-- No MAXLEN here: trimming on append could drop entries a group has not acknowledged yet.
--
-- Returns two values per event, in order:
--   "accepted", <entry id>    appended now, one token taken
--   "replayed", <tx id>       same key, same event as before: nothing appended
--   "conflict", <tx id>       same key, another event: nothing appended
--   "limited",  <ms>          bucket empty: nothing appended or recorded; a token is due in <ms>
--   "failed",   <message>     Redis refused this event's XADD: nothing appended or recorded, no token taken
--   "orphan",   <payin id>    a refund or chargeback naming no payin of this merchant accepted
--                             (inside the hot window: older ones are not asked here): nothing appended or recorded, no token taken

local now, rate, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

-- the bucket: a missing one is full (the key expires once a full refill would have happened
-- anyway); another ingest process's clock may run ahead, so never refill backwards
local tokens, ts = burst, now
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
if b[1] and b[2] then
  tokens, ts = tonumber(b[1]), tonumber(b[2])
  if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
    ts = now
  end
end

local taken = 0
local out = {}
local expiry_set = {}
for a = 6, #ARGV, 9 do
  local stream, rec_at, fp, tx, tp = KEYS[1 + tonumber(ARGV[a])], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 5]
  local rec = rec_at > 0 and redis.call('GET', KEYS[rec_at]) or false
  local payins_at, payin_op, payin_arg = tonumber(ARGV[a + 6]), ARGV[a + 7], ARGV[a + 8]
  if rec then
    local sep = string.find(rec, ' ', 1, true)
    out[#out + 1] = string.sub(rec, 1, sep - 1) == fp and 'replayed' or 'conflict'
    out[#out + 1] = string.sub(rec, sep + 1)
  elseif payin_op == 'r' and redis.call('HEXISTS', KEYS[payins_at], payin_arg) == 0 then
    out[#out + 1] = 'orphan'
    out[#out + 1] = payin_arg
  elseif tokens < 1 then
    out[#out + 1] = 'limited'
    out[#out + 1] = math.ceil((1 - tokens) * 1000 / rate)
  else
    local id
    if tp == '' then
      id = redis.pcall('XADD', stream, '*', 'tx', tx, 'ev', ARGV[a + 4])
    else
      id = redis.pcall('XADD', stream, '*', 'tx', tx, 'ev', ARGV[a + 4], 'tp', tp)
    end
    if type(id) == 'table' and id.err then
      out[#out + 1] = 'failed'
      out[#out + 1] = id.err
    else
      if rec_at > 0 then redis.call('SET', KEYS[rec_at], fp .. ' ' .. tx, 'PX', ttl) end
      if payin_op == 'p' then
        redis.call('HSETNX', KEYS[payins_at], tx, 'a')
        if payin_arg ~= '0' and not expiry_set[payins_at] then
          redis.call('PEXPIREAT', KEYS[payins_at], payin_arg)
          expiry_set[payins_at] = true -- a bucket's expiry is the same for all its payins: once per call
        end
      end
      tokens, taken = tokens - 1, taken + 1
      out[#out + 1] = 'accepted'
      out[#out + 1] = id
    end
  end
end

-- the call's tokens in one write, when it took any (a replay or a limit changes nothing)
if taken > 0 then
  redis.call('HSET', KEYS[1], 't', tokens, 'ts', ts)
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate))
end
return out
