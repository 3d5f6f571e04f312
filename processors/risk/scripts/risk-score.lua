--[[
  Velocity scoring for one partition's batch of events, in order. Per merchant, a hash of time
  buckets (10 s buckets for the sliding minute, 1 min buckets for the sliding hour) counts events
  and sums amounts; an event's score compares the windows, with it included, to the limits.
  Idempotent: a redelivered event gets the score it got the first time and counts once.
  A rejected event (score above the threshold) does not count toward the windows: velocity
  measures the volume the merchant actually moves, and one blocked attempt must not block the rest.
  Each merchant's hash is read once per call (HGETALL, stale buckets dropped) and written once at
  the end (one HINCRBY per bucket field): between them its sums are kept here, event by event, so
  every event sees the ones before it exactly as if each had been scored by a call of its own.

  Variable key count: for each event i, KEYS[2i-1] = its merchant's velocity hash,
                                        KEYS[2i]   = its score record (tx id).
  ARGV[1] now (ms)   ARGV[2] record TTL (ms)
  ARGV[3..6] limits: per_minute_count, per_minute_amount, per_hour_count, per_hour_amount
  ARGV[7]    threshold
  ARGV[8..]  per event: amount
  Returns per event: score 0..100 (integer): 50 at a limit, 100 at twice a limit or more.
]]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local lim = { tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) }
local threshold = tonumber(ARGV[7])
local sec10 = math.floor(now / 10000)
local min1 = math.floor(now / 60000)

-- velocity hash -> { minute count, minute amount, hour count, hour amount, added count, added amount }
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

local out = {}
local n = #KEYS / 2
for i = 1, n do
  local vel, rec = KEYS[2 * i - 1], KEYS[2 * i]
  local known = redis.call('GET', rec)
  if known then
    out[i] = tonumber(known)
  else
    local amount = tonumber(ARGV[7 + i])
    local w = window(vel)
    local mc, ma, hc, ha = w[1] + 1, w[2] + amount, w[3] + 1, w[4] + amount
    local ratio = math.max(mc / lim[1], ma / lim[2], hc / lim[3], ha / lim[4])
    local score = math.min(100, math.floor(ratio * 50 + 0.5))
    if score <= threshold then
      w[1], w[2], w[3], w[4] = mc, ma, hc, ha
      if w[5] == 0 then touched[#touched + 1] = vel end
      w[5], w[6] = w[5] + 1, w[6] + amount
    end
    redis.call('SET', rec, score, 'PX', ttl)
    out[i] = score
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
return out
