--[[
  Fan webhook events out to per-endpoint delivery queues and, in the same step, acknowledge the
  events' entries of the webhook_events topic (nothing lost, nothing doubled by a crash between).
  A delivery already waiting (its hash exists) is not queued twice. An endpoint joins the due set
  only when absent (NX): a leased or backing-off endpoint keeps its time. All keys share the
  partition's hash tag.

  Variable key count (the caller passes it first).
  KEYS[1]      input stream (with ARGV[1] = '' any key of the partition: no acknowledgement)
  KEYS[2]      due set of the partition (endpoint id -> unix ms it may be attempted)
  KEYS[3..n]   endpoint queues (lists of event ids) and delivery hashes, referenced by index

  ARGV[1]      consumer group ('' = enqueue without acknowledging: redeliver, recover, test)
  ARGV[2]      now (unix ms, the delivery clock)
  ARGV[3..]    repeated per entry: entry id, number of deliveries,
                 then per delivery: queue key index, delivery key index, endpoint id, event id,
                                    event type, body
  Returns the number of deliveries queued.
]]
local group = ARGV[1]
local now = ARGV[2]
local i = 3
local queued = 0
while i <= #ARGV do
  local id = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  local acked = 1
  if group ~= '' then acked = redis.call('XACK', KEYS[1], group, id) end
  for _ = 1, n do
    if acked == 1 then
      local q = KEYS[tonumber(ARGV[i])]
      local d = KEYS[tonumber(ARGV[i + 1])]
      if redis.call('HSETNX', d, 'body', ARGV[i + 5]) == 1 then
        redis.call('HSET', d, 'type', ARGV[i + 4], 'attempts', 0, 'created', now)
        redis.call('RPUSH', q, ARGV[i + 3])
        redis.call('ZADD', KEYS[2], 'NX', now, ARGV[i + 2])
        queued = queued + 1
      end
    end
    i = i + 6
  end
end
return queued
