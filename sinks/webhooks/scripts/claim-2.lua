--[[
  Lease endpoints whose next delivery is due: each leaves the due set's "now" by moving its time
  to the lease's end, so no other worker takes it meanwhile (one worker per endpoint at a time),
  and records the lease token. A worker that dies holding a lease loses it at lease_until: the
  endpoint is due again and its unfinished deliveries are attempted again (restart-proof).

  KEYS[1]  due set of the partition (endpoint id -> unix ms)
  KEYS[2]  leases of the partition (hash: endpoint id -> token)
  ARGV[1]  now (unix ms)   ARGV[2] most endpoints to lease   ARGV[3] lease end (unix ms)
  ARGV[4]  lease token
  Returns the endpoint ids leased.
]]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, ep in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], ep)
  redis.call('HSET', KEYS[2], ep, ARGV[4])
end
return ids
