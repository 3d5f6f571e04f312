--[[
  Finish a leased endpoint's attempts: finished deliveries (delivered, failed for good, dropped)
  leave the queue; retried ones keep their place with their attempt count and next time. Then
  the endpoint's next due time: absent when its queue is empty, else the earliest next time
  among its first `window` deliveries (now for one never tried), or hold_until when given (a
  disabled endpoint). When that time has come and renew_until is given, the worker keeps the
  lease (until renew_until) and goes straight on: no claim round trip per delivery. A stale
  worker (its lease expired and was taken) changes nothing.
  Delivery hashes of the queue are read by name (<delivery prefix><event id>); they share the
  partition's hash tag with the declared keys.

  Variable key count (the caller passes it first).
  KEYS[1]      due set   KEYS[2] leases   KEYS[3] the endpoint's queue
  KEYS[4..n]   delivery hashes of the deliveries below, in order
  ARGV[1]      endpoint id   ARGV[2] lease token   ARGV[3] now (unix ms)   ARGV[4] window
  ARGV[5]      hold_until (unix ms, 0 = none)   ARGV[6] delivery hash key prefix
  ARGV[7]      renew_until (unix ms, 0 = never keep the lease)
  ARGV[8..]    per KEYS[4..]: event id, outcome ("done" | "retry"), attempts, next time (unix ms)
  Returns 1 (released), 2 (lease kept: more is due now), or 0 for a stale lease.
]]
local ep = ARGV[1]
if redis.call('HGET', KEYS[2], ep) ~= ARGV[2] then return 0 end
local q = KEYS[3]
local k = 4
local i = 8
while i <= #ARGV do
  local d = KEYS[k]
  if ARGV[i + 1] == 'done' then
    redis.call('LREM', q, 1, ARGV[i])
    redis.call('DEL', d)
  elseif redis.call('EXISTS', d) == 1 then
    redis.call('HSET', d, 'attempts', ARGV[i + 2], 'next_at', ARGV[i + 3])
  end
  k = k + 1
  i = i + 4
end
if redis.call('LLEN', q) == 0 then
  redis.call('HDEL', KEYS[2], ep)
  redis.call('ZREM', KEYS[1], ep)
  return 1
end
local hold = tonumber(ARGV[5])
if hold > 0 then
  redis.call('HDEL', KEYS[2], ep)
  redis.call('ZADD', KEYS[1], hold, ep)
  return 1
end
local now = tonumber(ARGV[3])
local due = nil
for _, evt in ipairs(redis.call('LRANGE', q, 0, tonumber(ARGV[4]) - 1)) do
  local at = tonumber(redis.call('HGET', ARGV[6] .. evt, 'next_at') or now)
  if due == nil or at < due then due = at end
end
due = due or now
local renew = tonumber(ARGV[7])
if renew > 0 and due <= now then
  redis.call('ZADD', KEYS[1], renew, ep)
  return 2
end
redis.call('HDEL', KEYS[2], ep)
redis.call('ZADD', KEYS[1], due, ep)
return 1
