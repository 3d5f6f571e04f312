--[[
  Risk scoring for one partition's batch of events, in order, in one call: the velocity rules and
  the per-merchant streaming features are read, scored and updated here (no extra round trip).

  Velocity: per merchant, a hash of time buckets (10 s buckets for the sliding minute, 1 min buckets
  for the sliding hour) counts events and sums amounts; its score compares the windows, the event
  included, to the limits (50 at a limit, 100 at twice a limit). A blocked event does not count.

  Features (ARGV[8] = 1), per merchant, one string (30 days TTL) of at most 720 bytes (typically
  about 150): "<currencies>|<type:currency keys>|" then 12 + 3 per key doubles, little-endian
  (struct.pack: exact and cheap; features.ts reads it), with
    t last event ms, n events seen, the currencies seen (at most 4),
    per type:currency "n,mean,var" of ln(amount), exponentially weighted (alpha max(1/n, 0.02));
      at most 4 currencies x 4 types = 16 entries,
    r events decayed with a 60 s half-life (burst), rb its usual level (EW over allowed events),
    s small payins (ln(amount) 3 sd under the usual) decayed with a 10 min half-life,
    tc / rc all events / refunds+chargebacks decayed with a 30 min half-life, rsb usual refund share,
    ps payins decayed with a 6 h half-life, fs unusual payins (z > 2) decayed with a 1 h half-life,
    po payouts decayed with a 1 h half-life (payout bursts),
    u unusual payins (z > 2.5) counted with a 30 min half-life (a run of them: cash-out build-up).
  Cold start: a merchant's amount statistics are blended with the partition's priors (KEYS[1], per
  type "n,mean,var" over every merchant's allowed events, variance at least 1) with weight 5
  against the merchant's n; amount features count in proportion to n/5 until n = 5, and a new
  merchant's first 5 allowed events always teach its baselines.
  Baselines (amount statistics, rb, rsb, priors) learn only from events scoring under 20, so a fraud burst
  does not teach the detector that bursts are normal; counters (r, s, tc, rc) count every event.
  Score: noisy-OR of the components' points (each 0..100), so independent signals add up.
  Idempotent: a redelivered event gets the decision it got the first time and counts once.

  Variable key count: KEYS[1] the partition's priors hash, then for each event i:
    KEYS[3i-1] velocity hash, KEYS[3i] features (a string), KEYS[3i+1] decision record (tx id).
  ARGV[1] now (ms)   ARGV[2] record TTL (ms)
  ARGV[3..6] limits: per_minute_count, per_minute_amount, per_hour_count, per_hour_amount
  ARGV[7]    rule version   ARGV[8] features on (1) or velocity only (0)
  ARGV[9..16] thresholds review, block for payin, payout, refund, chargeback
  ARGV[17..] per event: amount, type, currency, event time (ms)
  Returns per event { score 0..100, decision allow|review|block, rule version, reasons }:
  reasons "code:points:value|..." (at most 3, strongest first).
]]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local lim = { tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) }
local version = ARGV[7]
local features = ARGV[8] == '1'
local thresholds = {
  payin = { tonumber(ARGV[9]), tonumber(ARGV[10]) },
  payout = { tonumber(ARGV[11]), tonumber(ARGV[12]) },
  refund = { tonumber(ARGV[13]), tonumber(ARGV[14]) },
  chargeback = { tonumber(ARGV[15]), tonumber(ARGV[16]) },
}
local sec10 = math.floor(now / 10000)
local min1 = math.floor(now / 60000)
local LN2 = math.log(2)
local FEATURE_TTL = 30 * 86400000
-- baselines learn only from events that look normal (score under this), not merely allowed ones
local LEARN_BELOW = 20

---------------------------------------------------------------- velocity
local windows = {}
local touched = {}

local function window(vel)
  local w = windows[vel]
  if w then return w end
  w = { 0, 0, 0, 0, 0, 0 }
  local flat = redis.call('HGETALL', vel)
  for j = 1, #flat, 2 do
    local f, v = flat[j], tonumber(flat[j + 1])
    local kind, bucket, what = string.match(f, '^(%a):(%d+):(%a)$')
    bucket = tonumber(bucket)
    if kind == 's' then
      if bucket > sec10 - 6 then
        if what == 'c' then w[1] = w[1] + v else w[2] = w[2] + v end
      else
        redis.call('HDEL', vel, f)
      end
    elseif kind == 'm' then
      if bucket > min1 - 60 then
        if what == 'c' then w[3] = w[3] + v else w[4] = w[4] + v end
      else
        redis.call('HDEL', vel, f)
      end
    end
  end
  windows[vel] = w
  return w
end

---------------------------------------------------------------- features
local SCALARS = { 't', 'n', 'r', 'rb', 's', 'tc', 'rc', 'rsb', 'ps', 'fs', 'po', 'u' }
local states = {}
local dirty = {}

local function state(key)
  local st = states[key]
  if st then return st end
  st = { stats = {}, cur = {}, ncur = 0 }
  for _, f in ipairs(SCALARS) do st[f] = 0 end
  st.rb, st.rsb, st.t = 1.5, 0.03, -1
  local raw = redis.call('GET', key)
  if raw then
    -- "<currencies>|<stat keys>|" then the numbers as little-endian doubles (struct: exact, fast)
    local a = string.find(raw, '|', 1, true)
    local b = string.find(raw, '|', a + 1, true)
    for c in string.gmatch(string.sub(raw, 1, a - 1), '[^,]+') do st.cur[c] = true; st.ncur = st.ncur + 1 end
    local sks = {}
    for k in string.gmatch(string.sub(raw, a + 1, b - 1), '[^,]+') do sks[#sks + 1] = k end
    local nums = { struct.unpack('<' .. string.rep('d', #SCALARS + 3 * #sks), raw, b + 1) }
    for j, f in ipairs(SCALARS) do st[f] = nums[j] end
    for j, k in ipairs(sks) do
      local o = #SCALARS + 3 * (j - 1)
      st.stats[k] = { nums[o + 1], nums[o + 2], nums[o + 3] }
    end
  end
  states[key] = st
  return st
end

local priors
local priorsDirty = false
local function prior(ty)
  if not priors then
    priors = {}
    local flat = redis.call('HGETALL', KEYS[1])
    for j = 1, #flat, 2 do
      local n, m, var = string.match(flat[j + 1], '^([^,]+),([^,]+),([^,]+)$')
      priors[flat[j]] = { tonumber(n), tonumber(m), tonumber(var) }
    end
  end
  local p = priors[ty]
  if not p then
    -- before any event of this type: a wide prior around 50.00 in minor units
    p = { 0, math.log(5000), 4 }
    priors[ty] = p
  end
  return p
end

-- exponentially weighted mean and variance (West/Finch), a running mean while n is small. Robust:
-- once there are a few values, a deviation counts at most 2.5 standard deviations (Huber), so
-- one outlier that got through cannot blow the variance up and hide the next ones.
local function learn(s, x, floorAlpha)
  local n = s[1] + 1
  local alpha = math.max(1 / n, floorAlpha)
  local diff = x - s[2]
  if s[1] >= 3 then
    local cap = 2.5 * math.max(math.sqrt(math.max(s[3], 0)), 0.1)
    if diff > cap then diff = cap elseif diff < -cap then diff = -cap end
  end
  local incr = alpha * diff
  s[1], s[2], s[3] = n, s[2] + incr, (1 - alpha) * (s[3] + diff * incr)
end

local function decay(x, dt, half)
  return x * math.exp(-dt * LN2 / half)
end

local function clamp(x, hi)
  if x < 0 then return 0 end
  if x > hi then return hi end
  return x
end

-- %.17g: a double written and read back is the same double (batches and single calls agree)
local function fmt(x) return string.format('%.17g', x) end

-- scores one event's features and updates them once its decision is known (by `commit`)
local function score(st, ty, cur, amount, t)
  local dt = st.t < 0 and 86400000 or math.max(0, t - st.t)
  local r = decay(st.r, dt, 60000) + 1
  local tc = decay(st.tc, dt, 1800000) + 1
  local refundish = (ty == 'refund' or ty == 'chargeback')
  local rc = decay(st.rc, dt, 1800000) + (refundish and 1 or 0)
  local s = decay(st.s, dt, 600000)
  local ps = decay(st.ps, dt, 21600000)
  local fs = decay(st.fs, dt, 3600000)
  local po = decay(st.po, dt, 3600000) + (ty == 'payout' and 1 or 0)
  local u = decay(st.u, dt, 1800000)
  local x = math.log(amount)
  local key = ty .. ':' .. cur
  local ms = st.stats[key] or { 0, 0, 0 }
  local pr = prior(ty)
  -- a refund or chargeback gives back a payin: until the merchant has its own, compare with its payins
  local ref = ms
  if (ty == 'refund' or ty == 'chargeback') and ms[1] < 5 and st.stats['payin:' .. cur] then
    ref = st.stats['payin:' .. cur]
    pr = prior('payin')
  end
  -- cold start: shrink toward the partition's prior for this type
  local k = 5
  local mu = (ref[1] * ref[2] + k * pr[2]) / (ref[1] + k)
  -- the prior spreads over merchants: never narrower than sd 1 (a factor e), even while only a
  -- few merchants have taught it
  local var = (ref[1] * ref[3] + k * math.max(pr[3], 1)) / (ref[1] + k)
  local sd = math.max(math.sqrt(math.max(var, 0)), 0.25)
  local z = (x - mu) / sd

  local parts = {}
  local function add(code, points, value)
    if points >= 1 then parts[#parts + 1] = { code, math.floor(points + 0.5), value } end
  end
  -- a z-score from a few of the merchant's own events (or the priors alone) counts for less
  add('amount_high', clamp((z - 2.5) * 28, 95) * math.min(1, ref[1] / 5), z)
  if ty == 'payin' and z > 2.5 then
    -- beyond the few a busy merchant's tail gives anyway (about 2 % of its events)
    u = u + 1
    add('unusual_run', clamp((u - 0.02 * tc - 1) * 40, 90) * math.min(1, ref[1] / 5), u)
  end
  local small = ty == 'payin' and z < -3 and ref[1] >= 3
  if small then
    s = s + 1
    add('small_burst', clamp(s * 22 - 12, 95) * math.min(1, ref[1] / 5), s)
    -- far below anything this merchant takes (a probe): suspicious on its own
    add('amount_low', clamp((-z - 4) * 15, 60) * math.min(1, ref[1] / 5), z)
  end
  local ratio = r / math.max(st.rb, 1.5)
  if r >= 4 then add('burst', clamp((ratio - 2) * 20, 90), ratio) end
  -- a first currency alone stays under review; money leaving in it weighs more than coming in
  if st.n >= 10 and not st.cur[cur] then add('new_currency', ty == 'payout' and 45 or 30, 0) end
  if refundish then
    -- refunds beyond what this merchant's usual refund share predicts for the last half hour
    local excess = rc - st.rsb * tc - 1
    add('refund_share', clamp(excess * 35, 90), rc / tc)
  end
  if ty == 'payout' then
    if fs > 0 then add('cash_out', clamp((fs / amount - 0.3) * 150, 95), fs / amount) end
    if ps > 0 then add('payout_ratio', clamp((amount / ps - 5) * 10, 60), amount / ps) end
    add('payout_burst', clamp((po - 1.3) * 40, 95), po)
  end
  return {
    parts = parts, r = r, tc = tc, rc = rc, s = s, ps = ps, fs = fs, x = x, key = key, ms = ms,
    small = small, pr = pr, po = po, z = z, u = u,
  }
end

local function commit(stKey, st, f, ty, cur, amount, t, decision, sc)
  st.r, st.tc, st.rc, st.s, st.ps, st.fs, st.po, st.u = f.r, f.tc, f.rc, f.s, f.ps, f.fs, f.po, f.u
  st.t = math.max(st.t, t)
  st.n = st.n + 1
  if ty == 'payin' and f.z > 2 then st.fs = st.fs + amount end
  -- an allowed currency is known from now on (a first currency alone does not reach review)
  if decision == 'allow' and not st.cur[cur] and st.ncur < 4 then st.cur[cur] = true; st.ncur = st.ncur + 1 end
  -- a new merchant learns from every allowed event: its first scores lean on the priors alone
  if decision == 'allow' and (sc < LEARN_BELOW or st.n < 5) then
    -- statistics only for the (at most 4) currencies kept: the hash stays bounded
    if st.cur[cur] then
      learn(f.ms, f.x, 0.02)
      st.stats[f.key] = f.ms
    end
    st.rb = st.rb + 0.05 * (math.min(f.r, 2 * st.rb) - st.rb)
    local refundish = (ty == 'refund' or ty == 'chargeback') and 1 or 0
    st.rsb = st.rsb + 0.02 * (refundish - st.rsb)
    if ty == 'payin' then st.ps = st.ps + amount end
    learn(prior(ty), f.x, 0.001)
    priorsDirty = true
  end
  dirty[stKey] = true
end

---------------------------------------------------------------- the batch
local out = {}
local n = (#KEYS - 1) / 3
for i = 1, n do
  local vel, feat, rec = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local known = redis.call('GET', rec)
  if known then
    local sc, dec, ver, why = string.match(known, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    out[i] = { tonumber(sc), dec, ver, why }
  else
    local base = 17 + (i - 1) * 4
    local amount, ty, cur, t = tonumber(ARGV[base]), ARGV[base + 1], ARGV[base + 2], tonumber(ARGV[base + 3])
    local w = window(vel)
    local mc, ma, hc, ha = w[1] + 1, w[2] + amount, w[3] + 1, w[4] + amount
    local vratio = math.max(mc / lim[1], ma / lim[2], hc / lim[3], ha / lim[4])
    local vscore = math.min(100, math.floor(vratio * 50 + 0.5))
    local th = thresholds[ty] or thresholds.payin
    local sc, parts, st, f = vscore, {}, nil, nil
    if features then
      st = state(feat)
      f = score(st, ty, cur, amount, t)
      parts = f.parts
      if vscore > 50 then parts[#parts + 1] = { 'velocity', vscore, vratio } end
      local keep = 1
      for _, p in ipairs(parts) do keep = keep * (1 - p[2] / 100) end
      sc = math.min(100, math.floor((1 - keep) * 100 + 0.5))
    elseif vscore > 50 then
      parts = { { 'velocity', vscore, vratio } }
    end
    local decision = 'allow'
    if sc >= th[2] then decision = 'block' elseif sc >= th[1] then decision = 'review' end
    if decision ~= 'block' then
      w[1], w[2], w[3], w[4] = mc, ma, hc, ha
      if w[5] == 0 then touched[#touched + 1] = vel end
      w[5], w[6] = w[5] + 1, w[6] + amount
    end
    if features then commit(feat, st, f, ty, cur, amount, t, decision, sc) end
    table.sort(parts, function(a, b)
      if a[2] ~= b[2] then return a[2] > b[2] end
      return a[1] < b[1]
    end)
    local why = {}
    for j = 1, math.min(3, #parts) do
      why[j] = parts[j][1] .. ':' .. parts[j][2] .. ':' .. string.format('%.2f', parts[j][3])
    end
    local reasons = table.concat(why, '|')
    redis.call('SET', rec, sc .. '|' .. decision .. '|' .. version .. '|' .. reasons, 'PX', ttl)
    out[i] = { sc, decision, version, reasons }
  end
end

for _, vel in ipairs(touched) do
  local w = windows[vel]
  redis.call('HINCRBY', vel, 's:' .. sec10 .. ':c', w[5])
  redis.call('HINCRBY', vel, 's:' .. sec10 .. ':a', w[6])
  redis.call('HINCRBY', vel, 'm:' .. min1 .. ':c', w[5])
  redis.call('HINCRBY', vel, 'm:' .. min1 .. ':a', w[6])
  redis.call('PEXPIRE', vel, 3600000)
end

-- write each touched merchant's features once (sorted: the same bytes for the same input)
local keys = {}
for k in pairs(dirty) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do
  local st = states[k]
  local nums = {}
  for j, f in ipairs(SCALARS) do nums[j] = st[f] end
  local curs = {}
  for c in pairs(st.cur) do curs[#curs + 1] = c end
  table.sort(curs)
  local sks = {}
  for sk in pairs(st.stats) do sks[#sks + 1] = sk end
  table.sort(sks)
  for _, sk in ipairs(sks) do
    local x = st.stats[sk]
    nums[#nums + 1] = x[1]; nums[#nums + 1] = x[2]; nums[#nums + 1] = x[3]
  end
  local packed = struct.pack('<' .. string.rep('d', #nums), unpack(nums))
  redis.call('SET', k, table.concat(curs, ',') .. '|' .. table.concat(sks, ',') .. '|' .. packed, 'PX', FEATURE_TTL)
end
if priorsDirty then
  local args = {}
  local tys = {}
  for ty in pairs(priors) do tys[#tys + 1] = ty end
  table.sort(tys)
  for _, ty in ipairs(tys) do
    local p = priors[ty]
    args[#args + 1] = ty; args[#args + 1] = fmt(p[1]) .. ',' .. fmt(p[2]) .. ',' .. fmt(p[3])
  end
  redis.call('HSET', KEYS[1], unpack(args))
end
return out
