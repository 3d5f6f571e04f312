--[[
  Settle input entries: acknowledge each one and, only when this XACK acknowledged it now, write
  its results: XADD to the next topic or the dead-letter stream, or ZADD to the stage's delay set
  for a later retry. A stale consumer (paused past the visibility timeout, its entry reclaimed and
  finished by another) therefore never writes a result twice. All keys share one hash tag (one
  partition), so this runs on one Redis Cluster slot.

  Variable key count (the caller passes it first).
  KEYS[1]      input stream
  KEYS[2..n]   output keys (next topic lanes, dead-letter stream, delay set, dead-letter index)

  ARGV[1]      consumer group of the input stream
  ARGV[2..]    repeated per entry:
                 entry id, number of outputs,
                 then per output: op ("x" XADD field/value args, "z" ZADD score member,
                                      "h" HSET field value),
                                  key index into KEYS, number of args, the args
  Returns the number of entries acknowledged by this call.
]]
local input = KEYS[1]
local group = ARGV[1]
local i = 2
local settled = 0
while i <= #ARGV do
  local id = ARGV[i]
  local outputs = tonumber(ARGV[i + 1])
  i = i + 2
  local acked = redis.call('XACK', input, group, id)
  for _ = 1, outputs do
    local op = ARGV[i]
    local key = KEYS[tonumber(ARGV[i + 1])]
    local nargs = tonumber(ARGV[i + 2])
    i = i + 3
    if acked == 1 then
      if op == 'x' then
        redis.call('XADD', key, '*', unpack(ARGV, i, i + nargs - 1))
      elseif op == 'z' then
        redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
      else
        redis.call('HSET', key, ARGV[i], ARGV[i + 1])
      end
    end
    i = i + nargs
  end
  settled = settled + acked
end
return settled
