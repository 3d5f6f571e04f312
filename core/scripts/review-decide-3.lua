--[[
  An operator's decision on a held transaction, atomically: it leaves the review hash, a decided
  marker stops a redelivered risk batch from holding it again, and the decided event goes on to
  the next stage's topic (approve: toward the ledger; decline: as failed, so the sink records it).
  Compare-and-delete: only when the hash still holds exactly the event the caller decided on.
  KEYS[1] the partition's review hash   KEYS[2] the decided marker   KEYS[3] the output lane stream
  ARGV[1] tx id   ARGV[2] the held event as read (JSON)   ARGV[3] marker TTL (ms)
  ARGV[4..] the stream entry's field/value pairs
  Returns 1 when decided now, 0 when it is no longer held (decided by someone else).
]]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[3]))
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
return 1
