--[[
  Apply one partition's batch of transactions to the merchants' wallets, in order, atomically.
    payin       credits the wallet; its refundable-payins field becomes "<amount>:<CUR>"
                (an upstream-failed payin only marks its field "f": a refund of it fails)
    payout      debits it, or fails (insufficient_funds) when it would overdraw
    refund,     debit the wallet against a settled payin of the same merchant (reference = its
    chargeback  tx id) with enough unrefunded amount. The payin's field says where it stands:
                  none          failed payin_not_found (ingest refuses these; past the window)
                  "f"           failed payin_failed
                  "a"           accepted, not settled yet: "wait" (the stage parks it until the
                                payin settles) until its deadline, then failed payin_not_settled
  A "wait" blocks the rest of that merchant's events of that input stream in this batch
  ("behind": not looked at), as the stage parks them behind it.
  Idempotent: each decided transaction is recorded; a redelivery gets the same answer, applied once.
  Low balance: the first debit that takes a wallet under its threshold raises an alert; the wallet
  re-arms when it is back at or above it (one alert per dip, no storm).
  Each wallet balance and alert flag is read once per call and written once at the end; between
  them it is kept here, event by event, exactly as if each event had been applied by a call of its own.

  Variable key count: for each event i, KEYS[4i-3] wallet hash (currency → balance),
    KEYS[4i-2] refundable-payins hash of the payin's time bucket (a payin's own; a refund's or
               chargeback's referenced one), expiring with the refund window (core/payins.ts),
    KEYS[4i-1] decision record of this tx, KEYS[4i] set of currencies alerted low.
  ARGV[1] record TTL (ms)   ARGV[2] JSON thresholds {"default": n, "USD": n, ...}   ARGV[3] now (ms)
  ARGV[4..] per event, 9 values: type, amount, currency, reference, blocking tag (input stream and
            merchant), tx id, when the payins bucket expires (unix ms; 0: never), "failed" for an
            event failed upstream ('' otherwise), deadline of a wait for the payin (unix ms)
  Returns per event {outcome, code, detail, balance, alerted}: outcome "ok" | "failed" | "wait" |
  "behind" | "skip" (failed upstream: nothing to apply).
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

-- a payins bucket's expiry is the same for all its payins: set once per key per call
local expiry_set = {}
local function expire(key, at)
  if at ~= '0' and not expiry_set[key] then
    redis.call('PEXPIREAT', key, at)
    expiry_set[key] = true
  end
end

local blocked = {}
local out = {}
local n = #KEYS / 4
for i = 1, n do
  local wallet, payins, rec, alerted = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local a = 3 + 9 * (i - 1)
  local typ, amount, cur, ref, tag = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local tx, expires, upstream, deadline = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], tonumber(ARGV[a + 9])
  if blocked[tag] then
    out[i] = { 'behind', '', '', 0, 0 }
  elseif upstream == 'failed' then
    if typ == 'payin' then
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
        redis.call('HSET', payins, tx, amount .. ':' .. cur)
        expire(payins, expires)
      elseif typ == 'payout' then
        if amount > bal then
          outcome, code, detail = 'failed', 'insufficient_funds', 'insufficient funds: balance ' .. bal .. ' ' .. cur .. ', payout ' .. amount
        else
          bal, debit = bal - amount, true
        end
      else
        local p = redis.call('HGET', payins, ref)
        if not p then
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
            redis.call('HSET', payins, ref, (remaining - amount) .. ':' .. pcur)
            bal, debit = bal - amount, true
          end
        end
      end
      local alert = 0
      if outcome ~= 'wait' then
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
for _, f in ipairs(flag_order) do
  if f.dirty then
    if f.on then redis.call('SADD', f.key, f.cur) else redis.call('SREM', f.key, f.cur) end
  end
end
return out
