--[[
  Redrive one dead letter: put its event back on the stream it came from and delete the dead
  letter, atomically. The XADD happens only when this call's XDEL removed the entry, so a redrive
  that runs twice (a retried command, two operators) appends the event once. The event keeps its
  transaction id (tx), so the effects downstream stay exactly-once.
  Both keys carry the partition's hash tag: one Redis Cluster slot.

  KEYS[1]  the stage's dead-letter stream (one partition)
  KEYS[2]  the origin stream: the stage's input topic lane in the same partition
  KEYS[3]  the partition's dead-letter index (tx id → stage, error): its line goes with the letter

  ARGV[1]  the dead letter's entry id
  Returns the new entry id in the origin stream, or false when there was no such dead letter.
]]
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return false
end
local fields = found[1][2]
local tx, ev, tp
for i = 1, #fields, 2 do
  local f = fields[i]
  if f == 'tx' then tx = fields[i + 1]
  elseif f == 'ev' then ev = fields[i + 1]
  elseif f == 'tp' then tp = fields[i + 1]
  end
end
-- check before deleting anything: a script error after XDEL would lose the event
if not tx or tx == '' or not ev or ev == '' then
  return redis.error_reply('dead letter ' .. ARGV[1] .. ' has no tx/ev fields; not redriven')
end
if redis.call('XDEL', KEYS[1], ARGV[1]) ~= 1 then
  return false
end
redis.call('HDEL', KEYS[3], tx)
if tp and tp ~= '' then
  return redis.call('XADD', KEYS[2], '*', 'tx', tx, 'ev', ev, 'tp', tp)
end
return redis.call('XADD', KEYS[2], '*', 'tx', tx, 'ev', ev)
