--[[
  Move retries whose time has come from a stage's delay set back onto its input streams, and
  remove them from the set, in one step: a worker dying at any point loses and doubles nothing.
  Several workers may run it at once; each due member moves exactly once.

  Variable key count (the caller passes it first).
  KEYS[1]      the stage's delay set for one partition (score: due time in ms)
  KEYS[2..n]   that partition's input lane streams, highest lane first

  ARGV[1]      now, in ms
  ARGV[2]      most members to move in this call
  A member is JSON: {"l": lane index (1-based into KEYS[2..]), "f": [field, value, ...], "u": unique tag}
  Returns {moved, next due time in ms or -1 when the set is empty}.
]]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local m = cjson.decode(member)
  redis.call('XADD', KEYS[1 + m.l], '*', unpack(m.f))
  redis.call('ZREM', KEYS[1], member)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or -1}
