--[[
  Hold a transaction for review: HSET it into its partition's review hash, unless an operator has
  already decided it (a redelivered risk batch must not bring a decided review back).
  KEYS[1] the partition's review hash   KEYS[2] the transaction's decided marker
  ARGV[1] tx id   ARGV[2] the held event (JSON)
  Returns 1 when held (or still held), 0 when it was already decided.
]]
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
