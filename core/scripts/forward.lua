--[[
  Acknowledge input entries and append their results, atomically: an entry's outputs are added
  only when its XACK acknowledged it now, so a stale consumer (paused past the visibility timeout,
  its entry reclaimed and finished by another) can never add the same result twice.
  All keys share one hash tag (one partition), so this runs on one Redis Cluster slot.

  Variable key count (the caller passes it first).
  KEYS[1]      input stream
  KEYS[2..n]   output streams (next topic lanes, the stage's dead-letter stream)

  ARGV[1]      consumer group of the input stream
  ARGV[2..]    repeated per entry:
                 entry id, number of outputs,
                 then per output: key index into KEYS, number of field/value args, the args
  Returns the number of entries acknowledged (and forwarded) by this call.
]]
local input = KEYS[1]
local group = ARGV[1]
local i = 2
local moved = 0
while i <= #ARGV do
  local id = ARGV[i]
  local outputs = tonumber(ARGV[i + 1])
  i = i + 2
  local acked = redis.call('XACK', input, group, id)
  for _ = 1, outputs do
    local key = KEYS[tonumber(ARGV[i])]
    local nargs = tonumber(ARGV[i + 1])
    i = i + 2
    if acked == 1 then
      redis.call('XADD', key, '*', unpack(ARGV, i, i + nargs - 1))
    end
    i = i + nargs
  end
  moved = moved + acked
end
return moved
