--[[
  Apply one partition's batch of transactions to the merchants' wallets, in order, atomically.
    payin       credits the wallet; its refundable-payins field becomes "<amount>:<CUR>"
                (an upstream-failed payin only marks its field "f": a refund of it fails)
    payout      debits it, or fails (insufficient_funds) when it would overdraw
    refund,     debit the wallet against a settled payin of the same merchant (reference = its
    chargeback  tx id) with enough unrefunded amount. The payin's field says where it stands:
                  none          failed payin_not_found (ingest refuses these; past the window),
                                unless the payin is past the hot window: then Postgres's view of
                                it, passed in (see "cold" below), decides the same way (not in
                                Postgres: a "wait" until the deadline, as it may be on its way)
                  "<left>:<CUR>" settled: the refund goes through if it fits (else refund_exceeds_payin)
                  "f"           failed payin_failed
                  "a"           accepted, not settled yet: "wait" (the stage parks it until the
                                payin settles) until its deadline, then failed payin_not_settled
  Cold payins (past refunds.hot, no longer in Redis): the caller loaded from Postgres the payin's
  state and the number of the merchant's refunds the sink has written. Every refund or chargeback
  that goes through counts in the merchant's counter here; a cold payin is trusted only when the
  sink has written at least as many as were counted before this call ("lag" otherwise: nothing is
  applied, the event waits like "wait"). A cold payin refunded in this call is tracked here (its
  refunds of this call are not in Postgres yet); nothing of it is written back to Redis.
  A "wait" or "lag" blocks the rest of that merchant's events of that input stream in this batch
  ("behind": not looked at), as the stage parks them behind it.
  Idempotent: each decided transaction is recorded (ARGV[1]: a long TTL, which the settle that
  acknowledges the input shortens to the redelivery horizon); a redelivery gets the same answer,
  applied once.
  Low balance: the first debit that takes a wallet under its threshold raises an alert; the wallet
  re-arms when it is back at or above it (one alert per dip, no storm).
  Each wallet balance and alert flag is read once per call and written once at the end; between
  them it is kept here, event by event, exactly as if each event had been applied by a call of its own.

  Variable key count: for each event i, KEYS[5i-4] wallet hash (currency → balance),
    KEYS[5i-3] refundable-payins hash of the payin's time bucket (a payin's own; a refund's or
               chargeback's referenced one), expiring with the hot window (core/payins.ts),
    KEYS[5i-2] decision record of this tx, KEYS[5i-1] set of currencies alerted low,
    KEYS[5i]   the merchant's count of refunds and chargebacks gone through (string).
  ARGV[1] record TTL while pending (ms)   ARGV[2] JSON thresholds {"default": n, "USD": n, ...}   ARGV[3] now (ms)
  ARGV[4..] per event, 10 values: type, amount, currency, reference, blocking tag (input stream and
            merchant), tx id, when the payins bucket expires (unix ms; 0: never), "failed" for an
            event failed upstream ('' otherwise), deadline of a wait for the payin (unix ms), cold:
            '' (payin inside the hot window) or "<refunds the sink wrote>|<state>" from Postgres
            (state as a payins field, '' for none; processors/ledger/cold-payins.ts)
  Returns per event {outcome, code, detail, balance, alerted}: outcome "ok" | "failed" | "wait" |
  "lag" | "behind" | "skip" (failed upstream: nothing to apply).
]]
local ttl = ARGV[1]
local thresholds = cjson.decode(ARGV[2])
local now = tonumber(ARGV[3])

-- wallet balances and low-balance flags of this call: read on first use, written at the end
local balances, balance_order = {}, {}
local flags, flag_order = {}, {}

local function balance(key, cur)
  local id = key .. '|' .. cur
  local b = balances[id]
  if not b then
    b = { key = key, cur = cur, value = tonumber(redis.call('HGET', key, cur) or '0'), dirty = false }
    balances[id] = b
    balance_order[#balance_order + 1] = b
  end
  return b
end

local function flag(key, cur)
  local id = key .. '|' .. cur
  local f = flags[id]
  if not f then
    f = { key = key, cur = cur, on = redis.call('SISMEMBER', key, cur) == 1, dirty = false }
    flags[id] = f
    flag_order[#flag_order + 1] = f
  end
  return f
end

-- the merchants' refund counters: read on first use (before this call counts any), written at the end
local counters, counter_order = {}, {}
local function counter(key)
  local c = counters[key]
  if not c then
    local v = tonumber(redis.call('GET', key) or '0')
    c = { key = key, start = v, value = v }
    counters[key] = c
    counter_order[#counter_order + 1] = c
  end
  return c
end

-- cold payins refunded in this call: what is left of them (Postgres does not have these refunds yet),
-- by merchant (its refund counter's key) and payin id: a call holds every merchant of a partition,
-- and another merchant naming the same id must still find no payin of its own
local cold_left = {}

-- a payins bucket's expiry is the same for all its payins: set once per key per call (every time
-- when it is near: a key deleted by an expiry in the past must not come back without one)
local expiry_set = {}
local function expire(key, at)
  if at ~= '0' and not expiry_set[key] then
    redis.call('PEXPIREAT', key, at)
    expiry_set[key] = tonumber(at) > now + 60000
  end
end

-- a payin settled (or failed) after its hot window is not written to Redis: Postgres has it
local function past_hot(expires)
  return expires ~= '0' and tonumber(expires) <= now
end

local blocked = {}
local out = {}
local n = #KEYS / 5
for i = 1, n do
  local wallet, payins, rec, alerted, refunds = KEYS[5 * i - 4], KEYS[5 * i - 3], KEYS[5 * i - 2], KEYS[5 * i - 1], KEYS[5 * i]
  local a = 3 + 10 * (i - 1)
  local typ, amount, cur, ref, tag = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local tx, expires, upstream, deadline, cold = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], tonumber(ARGV[a + 9]), ARGV[a + 10]
  if blocked[tag] then
    out[i] = { 'behind', '', '', 0, 0 }
  elseif upstream == 'failed' then
    if typ == 'payin' and not past_hot(expires) then
      redis.call('HSET', payins, tx, 'f')
      expire(payins, expires)
    end
    out[i] = { 'skip', '', '', 0, 0 }
  else
    local known = redis.call('GET', rec)
    if known then
      local o, bal, code, detail = string.match(known, '^(%a+)|(-?%d+)|([%a_]*)|(.*)$')
      out[i] = { o, code, detail, tonumber(bal), 0 }
    else
      local w = balance(wallet, cur)
      local bal = w.value
      local outcome, code, detail, debit = 'ok', '', '', false
      if typ == 'payin' then
        bal = bal + amount
        if not past_hot(expires) then
          redis.call('HSET', payins, tx, amount .. ':' .. cur)
          expire(payins, expires)
        end
      elseif typ == 'payout' then
        if amount > bal then
          outcome, code, detail = 'failed', 'insufficient_funds', 'insufficient funds: balance ' .. bal .. ' ' .. cur .. ', payout ' .. amount
        else
          bal, debit = bal - amount, true
        end
      else
        local p = redis.call('HGET', payins, ref)
        local in_pg = false
        if not p and cold ~= '' then
          local written, state = string.match(cold, '^(%d+)|(.*)$')
          in_pg = true
          if cold_left[refunds .. ' ' .. ref] then
            p = cold_left[refunds .. ' ' .. ref]
          elseif tonumber(written) < counter(refunds).start then
            outcome, code, detail = 'lag', '', 'Postgres has ' .. written .. ' of the merchant\'s ' .. counter(refunds).start .. ' refunds so far'
            blocked[tag] = true
          elseif state ~= '' then
            p = state
          elseif now < deadline then
            -- not in Postgres (yet?): it may still be on its way there; wait for it as for "a"
            outcome = 'wait'
            blocked[tag] = true
          end
        end
        if outcome ~= 'ok' then
          -- nothing decided: the stage waits (for the sink, or the payin)
        elseif not p then
          outcome, code, detail = 'failed', 'payin_not_found', 'payin ' .. ref .. ' is not a payin of this merchant (or is past the refund window)'
        elseif p == 'f' then
          outcome, code, detail = 'failed', 'payin_failed', 'payin ' .. ref .. ' failed: nothing to refund'
        elseif p == 'a' then
          if now < deadline then
            outcome = 'wait'
            blocked[tag] = true
          else
            outcome, code, detail = 'failed', 'payin_not_settled', 'payin ' .. ref .. ' did not settle in time'
          end
        else
          local remaining, pcur = string.match(p, '^(%d+):(%a+)$')
          remaining = tonumber(remaining)
          if pcur ~= cur then
            outcome, code, detail = 'failed', 'currency_mismatch', typ .. ' currency ' .. cur .. ' differs from the payin currency ' .. pcur
          elseif amount > remaining then
            outcome, code, detail = 'failed', 'refund_exceeds_payin', typ .. ' of ' .. amount .. ' exceeds the refundable ' .. remaining .. ' of payin ' .. ref
          else
            if in_pg then
              cold_left[refunds .. ' ' .. ref] = (remaining - amount) .. ':' .. pcur
            else
              redis.call('HSET', payins, ref, (remaining - amount) .. ':' .. pcur)
            end
            local c = counter(refunds)
            c.value = c.value + 1
            bal, debit = bal - amount, true
          end
        end
      end
      local alert = 0
      if outcome ~= 'wait' and outcome ~= 'lag' then
        w.value, w.dirty = bal, true
        redis.call('SET', rec, outcome .. '|' .. bal .. '|' .. code .. '|' .. detail, 'PX', ttl)
        local threshold = thresholds[cur] or thresholds['default']
        if threshold then
          local f = flag(alerted, cur)
          if bal < threshold then
            if debit and not f.on then f.on, f.dirty, alert = true, true, 1 end
          elseif f.on then
            f.on, f.dirty = false, true
          end
        end
      end
      out[i] = { outcome, code, detail, bal, alert }
    end
  end
end

for _, b in ipairs(balance_order) do
  if b.dirty then redis.call('HSET', b.key, b.cur, b.value) end
end
for _, c in ipairs(counter_order) do
  if c.value ~= c.start then redis.call('SET', c.key, c.value) end
end
for _, f in ipairs(flag_order) do
  if f.dirty then
    if f.on then redis.call('SADD', f.key, f.cur) else redis.call('SREM', f.key, f.cur) end
  end
end
return out
