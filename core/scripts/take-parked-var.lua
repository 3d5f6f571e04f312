--[[
  Take the due parked queues of one partition of an ordered stage: for each queue, count one more
  take of its head (a take that is never settled means the worker died on it: the count is the
  head's delivery count, its poison guard) and return its items, oldest first. A queue whose head
  was taken before without being settled returns its head alone, so the head is tried on its own.
  Nothing is removed: settling pops what was done (settle-var.lua).

  Variable key count.
  KEYS[1]       taken counts (hash: member → takes of its current head)
  KEYS[2..n+1]  the queues (lists of "<entry id> <json>")
  ARGV[1]       most items per queue
  ARGV[2..n+1]  the queues' members ("<lane>|<merchant>")
  Returns per queue {takes, items...}.
]]
local limit = tonumber(ARGV[1])
local out = {}
for q = 2, #KEYS do
  local takes = redis.call('HINCRBY', KEYS[1], ARGV[q], 1)
  local items = redis.call('LRANGE', KEYS[q], 0, takes > 1 and 0 or limit - 1)
  out[#out + 1] = { takes, items }
end
return out
