--[[
  Apply one partition's batch of transactions to the merchants' wallets, in order, atomically.
    payin       credits the wallet and becomes refundable
    payout      debits it, or fails when it would overdraw
    refund,     debit the wallet against a succeeded payin of the same merchant (reference = its
    chargeback  tx id) with enough unrefunded amount; a payin not seen yet means "retry later",
                and blocks the rest of that input stream in this batch (per-merchant order)
  Idempotent: each decided transaction is recorded; a redelivery gets the same answer, applied once.
  Low balance: the first debit that takes a wallet under its threshold raises an alert; the wallet
  re-arms when it is back at or above it (one alert per dip, no storm).
  Each wallet balance and alert flag is read once per call and written once at the end; between
  them it is kept here, event by event, exactly as if each event had been applied by a call of its own.

  Variable key count: for each event i, KEYS[4i-3] wallet hash (currency → balance),
    KEYS[4i-2] refundable payins hash (payin tx id → "remaining:currency") of the time bucket of
               the payin (a payin's own; a refund's or chargeback's referenced one), expiring with
               the refund window,
    KEYS[4i-1] decision record of this tx, KEYS[4i] set of currencies alerted low.
  ARGV[1] record TTL (ms)   ARGV[2] JSON thresholds {"default": n, "USD": n, ...}
  ARGV[3..] per event, 7 values: type, amount, currency, reference, input stream tag, tx id,
            when the payins bucket expires (unix ms, set on a payin; 0: never)
  Returns per event {outcome, detail, balance, alerted}: outcome "ok" | "failed" | "retry" | "wait"
  ("wait": behind a retry in its stream, not looked at).
]]
local ttl = ARGV[1]
local thresholds = cjson.decode(ARGV[2])

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

local blocked = {}
local out = {}
local n = #KEYS / 4
for i = 1, n do
  local wallet, payins, rec, alerted = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local a = 2 + 7 * (i - 1)
  local typ, amount, cur, ref, stream = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local tx = ARGV[a + 6]
  if blocked[stream] then
    out[i] = { 'wait', '', 0, 0 }
  else
    local known = redis.call('GET', rec)
    if known then
      local o, bal, detail = string.match(known, '^(%a+)|(-?%d+)|(.*)$')
      out[i] = { o, detail, tonumber(bal), 0 }
    else
      local w = balance(wallet, cur)
      local bal = w.value
      local outcome, detail, debit = 'ok', '', false
      if typ == 'payin' then
        bal = bal + amount
        redis.call('HSET', payins, tx, amount .. ':' .. cur)
        if ARGV[a + 7] ~= '0' then redis.call('PEXPIREAT', payins, ARGV[a + 7]) end
      elseif typ == 'payout' then
        if amount > bal then
          outcome, detail = 'failed', 'insufficient funds: balance ' .. bal .. ' ' .. cur .. ', payout ' .. amount
        else
          bal, debit = bal - amount, true
        end
      else
        local p = redis.call('HGET', payins, ref)
        if not p then
          outcome, detail = 'retry', 'payin ' .. ref .. ' not found (yet) for this merchant'
          blocked[stream] = true
        else
          local remaining, pcur = string.match(p, '^(%d+):(%a+)$')
          remaining = tonumber(remaining)
          if pcur ~= cur then
            outcome, detail = 'failed', typ .. ' currency ' .. cur .. ' differs from the payin currency ' .. pcur
          elseif amount > remaining then
            outcome, detail = 'failed', typ .. ' of ' .. amount .. ' exceeds the refundable ' .. remaining .. ' of payin ' .. ref
          else
            redis.call('HSET', payins, ref, (remaining - amount) .. ':' .. pcur)
            bal, debit = bal - amount, true
          end
        end
      end
      local alert = 0
      if outcome ~= 'retry' then
        w.value, w.dirty = bal, true
        redis.call('SET', rec, outcome .. '|' .. bal .. '|' .. detail, 'PX', ttl)
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
      out[i] = { outcome, detail, bal, alert }
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
