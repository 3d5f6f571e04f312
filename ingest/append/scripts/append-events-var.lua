--[[
  Append accepted transactions in ONE script call per partition: the single endpoint coalesces
  the concurrent requests of one partition into one call (ingest/append/coalescing-queue.ts), the batch
  endpoint sends a chunk of up to 1,000 events. Events are taken in order, each on its own: with
  an Idempotency-Key that has a record, it replays or conflicts and appends nothing (and takes no
  token); otherwise it takes a token from its merchant's bucket and is appended, or is `limited`
  when the bucket is empty. A key used earlier in the same call is seen like one used by an
  earlier request. Each bucket is read once and written once per call. Every key carries the
  partition's hash tag {i} (one partition: one slot, also on Redis Cluster).

  KEYS: every key the call touches, once each, referenced from ARGV by index (1-based):
    rate-limit buckets   <prefix>:{i}:rl:<merchant_id>       (hash: t = tokens, ts = ms of last update)
    lane streams         <prefix>:{i}:<topic>:<lane>
    idempotency records  <prefix>:{i}:idem:<hash of merchant id and key>   (core/keys.ts)
                         (string, 28 bytes: 12-byte body fingerprint, then the tx id's 16-byte ULID)
    refundable payins    <prefix>:{i}:payins:<merchant_id>:<bucket>      (core/payins.ts)
  ARGV[1]  now, unix ms (from the caller, so the script stays deterministic)
  ARGV[2]  refill rate, tokens per second (ingest.rate_limit.per_second)
  ARGV[3]  bucket size (ingest.rate_limit.burst)
  ARGV[4]  idempotency record TTL in ms
  ARGV[5..] eleven per event:
    bucket (KEYS index), stream (KEYS index), idempotency record (KEYS index, 0 = no key),
    the record to keep ('' without a key), tx id, event JSON (the entry's `ev`), W3C traceparent
    (the entry's `tp`; '' for none), refundable-payins bucket (KEYS index, 0 = none),
    payin op and its arg: "p<expires at, unix ms>" register this payin as accepted (the bucket
    expires then; "p0": never) | "r<payin id>" require that payin (a refund or chargeback) | '',
    the key's record as the previous release named it (KEYS index, 0 = none; only during the
    first TTL after an upgrade) and that release's fingerprint (SHA-256 hex of the same canonical
    body): a key first used before the upgrade still replays or conflicts
    legacy records         <prefix>:{i}:idem:<merchant_id>:<key>   (string "<fingerprint> <tx id>")
  No MAXLEN here: trimming on append could drop entries a group has not acknowledged yet.

  Returns two values per event, in order:
    "accepted", <entry id>    appended now, one token taken
    "replayed", <hex ULID>    same key, same event as before: nothing appended
    "conflict", <hex ULID>    same key, another event: nothing appended
                              (from a legacy record: the tx id itself, "tx_…")
    "limited",  <ms>          bucket empty: nothing appended or recorded; a token is due in <ms>
    "failed",   <message>     Redis refused this event's writes: nothing appended or recorded, no token taken
    "orphan",   <payin id>    a refund or chargeback naming no payin of this merchant accepted
                              (inside the hot window: older ones are not asked here): nothing appended or recorded, no token taken
]]
local now, rate, burst, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local FP = 12 -- fingerprint bytes at the start of a record

-- a bucket's tokens, read on its first event: a missing one is full (the key expires once a full
-- refill would have happened anyway); another ingest process's clock may run ahead, so never
-- refill backwards
local tokens, stamp, taken = {}, {}, {}
local function load(at)
  local t, ts = burst, now
  local b = redis.call('HMGET', KEYS[at], 't', 'ts')
  if b[1] and b[2] then
    t, ts = tonumber(b[1]), tonumber(b[2])
    if now > ts then
      t = math.min(burst, t + (now - ts) * rate / 1000)
      ts = now
    end
  end
  tokens[at], stamp[at], taken[at] = t, ts, 0
end

local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

local out = {}
local expiry_set = {}
for a = 5, #ARGV, 11 do
  local bucket, stream, rec_at = tonumber(ARGV[a]), KEYS[tonumber(ARGV[a + 1])], tonumber(ARGV[a + 2])
  local record, tx, tp = ARGV[a + 3], ARGV[a + 4], ARGV[a + 6]
  local payins_at, payin = tonumber(ARGV[a + 7]), ARGV[a + 8]
  local legacy_at = tonumber(ARGV[a + 9])
  local payin_op, payin_arg = string.sub(payin, 1, 1), string.sub(payin, 2)
  if not tokens[bucket] then load(bucket) end

  -- the payin check: a refund or chargeback needs its payin accepted (and not expired) here
  local orphan = payin_op == 'r' and redis.call('HEXISTS', KEYS[payins_at], payin_arg) == 0
  local appendable = not orphan and tokens[bucket] >= 1

  -- the idempotency record: claimed in the same call that reads it when the event can be appended;
  -- seen: the key's verdict ('replayed' or 'conflict') and the tx id its first request got
  local seen, first, err = nil, nil, nil
  local legacy = legacy_at > 0 and redis.call('GET', KEYS[legacy_at]) or false
  if legacy then
    local sep = string.find(legacy, ' ', 1, true)
    seen = string.sub(legacy, 1, sep - 1) == ARGV[a + 10] and 'replayed' or 'conflict'
    first = string.sub(legacy, sep + 1)
  elseif rec_at > 0 then
    local prev
    if appendable then
      prev = redis.pcall('SET', KEYS[rec_at], record, 'NX', 'GET', 'PX', ttl)
    else
      prev = redis.call('GET', KEYS[rec_at])
    end
    if type(prev) == 'table' and prev.err then
      err = prev.err
    elseif prev then
      seen = string.sub(prev, 1, FP) == string.sub(record, 1, FP) and 'replayed' or 'conflict'
      first = hex(string.sub(prev, FP + 1))
    end
  end

  if err then
    out[#out + 1] = 'failed'
    out[#out + 1] = err
  elseif seen then
    out[#out + 1] = seen
    out[#out + 1] = first
  elseif orphan then
    out[#out + 1] = 'orphan'
    out[#out + 1] = payin_arg
  elseif not appendable then
    out[#out + 1] = 'limited'
    out[#out + 1] = math.ceil((1 - tokens[bucket]) * 1000 / rate)
  else
    local id
    if tp == '' then
      id = redis.pcall('XADD', stream, '*', 'tx', tx, 'ev', ARGV[a + 5])
    else
      id = redis.pcall('XADD', stream, '*', 'tx', tx, 'ev', ARGV[a + 5], 'tp', tp)
    end
    if type(id) == 'table' and id.err then
      if rec_at > 0 then redis.call('DEL', KEYS[rec_at]) end -- claimed above: give it back
      out[#out + 1] = 'failed'
      out[#out + 1] = id.err
    else
      -- the payin registration: accepted now, refundable until its bucket expires
      if payin_op == 'p' then
        redis.call('HSETNX', KEYS[payins_at], tx, 'a')
        if payin_arg ~= '0' and not expiry_set[payins_at] then
          redis.call('PEXPIREAT', KEYS[payins_at], payin_arg)
          expiry_set[payins_at] = true -- a bucket's expiry is the same for all its payins: once per call
        end
      end
      tokens[bucket], taken[bucket] = tokens[bucket] - 1, taken[bucket] + 1
      out[#out + 1] = 'accepted'
      out[#out + 1] = id
    end
  end
end

-- each bucket's tokens in one write, when it took any (a replay or a limit changes nothing)
for at, n in pairs(taken) do
  if n > 0 then
    redis.call('HSET', KEYS[at], 't', tokens[at], 'ts', stamp[at])
    redis.call('PEXPIRE', KEYS[at], math.ceil(burst * 1000 / rate))
  end
end
return out
