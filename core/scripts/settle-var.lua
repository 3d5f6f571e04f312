--[[
  Settle input entries: acknowledge each one and, only when this call acknowledged it now, write
  its results. A stale consumer (paused past the visibility timeout, its entry reclaimed and
  finished by another) therefore never writes a result twice. All keys share one hash tag (one
  partition), so this runs on one Redis Cluster slot.

  The input is a stream (acknowledged with XACK) or a parked queue of an ordered stage (one
  merchant's parked events in one lane, a list of "<entry id> <json>" items; an item is
  acknowledged by popping it when it is the head).

  Variable key count (the caller passes it first).
  KEYS[1]      the input: a stream, or a parked queue
  KEYS[2..]    queue input: KEYS[2] park index, KEYS[3] taken counts, KEYS[4] parked count;
               then the output keys (next topic lanes, dead-letter stream and index, delay set,
               parked queues, park index, waiters, parked count)

  ARGV[1]      stream input: the consumer group; queue input: the queue's member in the index
  ARGV[2]      input kind: "s" stream, "q" queue
  ARGV[3]      index of the first output key in KEYS (2 for a stream, 5 for a queue)
  ARGV[4..]    repeated per entry:
                 entry id, mode ("a" acknowledge; "k" keep: a queue head that stays parked),
                 number of outputs, then per output:
                   op, number of keys, the keys' indexes into KEYS, number of args, the args
                 ops:
                   x  XADD: keys {stream}, args field/value...
                   z  ZADD: keys {set}, args {score, member}
                   h  HSET: keys {hash}, args {field, value}
                   d  HDEL: keys {hash}, args {field}
                   p  park at a queue's tail: keys {queue, index, count, waiters},
                      args {member, item, due (ms), max per queue, max per partition, token ('' none)}
                      (due is the queue's head's due time when this item is its head; a queue
                      that already has a head keeps its own)
                   r  rewrite the queue's head (it stays parked, to retry or wait):
                      keys {index, waiters}, args {item, due, token}
                   w  wake whoever waits for a token: keys {waiters, index}, args {token, now}
                   e  PEXPIRE a decision record (kept until its input is acknowledged, then for the
                      redelivery horizon): keys {record}, args {ms}
  Returns {settled, stopped}: entries acknowledged by this call, and the 1-based position of the
  entry where the call stopped because a park would pass a cap (0: it did not stop). Entries from
  there on are left as they were (pending in the stream), to be read again later, in order.
]]
local input, kind, first_out = KEYS[1], ARGV[2], tonumber(ARGV[3])
local group_or_member = ARGV[1]

-- would a park op pass a cap? (checked before the entry is acknowledged)
local function refused(args_at, keys_at)
  local queue, count = KEYS[tonumber(ARGV[keys_at])], KEYS[tonumber(ARGV[keys_at + 2])]
  if redis.call('LLEN', queue) >= tonumber(ARGV[args_at + 3]) then return true end
  return tonumber(redis.call('GET', count) or '0') >= tonumber(ARGV[args_at + 4])
end

-- positions of each output of the entry starting at ARGV[i] (op, keys start, args start, next)
local function outputs_of(i, n)
  local list = {}
  for _ = 1, n do
    local nkeys = tonumber(ARGV[i + 1])
    local keys_at = i + 2
    local nargs = tonumber(ARGV[keys_at + nkeys])
    local args_at = keys_at + nkeys + 1
    list[#list + 1] = { op = ARGV[i], keys_at = keys_at, args_at = args_at }
    i = args_at + nargs
  end
  return list, i
end

local function key(o, k)
  return KEYS[tonumber(ARGV[o.keys_at + k - 1])]
end

local function write(o)
  local a = o.args_at
  if o.op == 'x' then
    local nargs = tonumber(ARGV[a - 1])
    redis.call('XADD', key(o, 1), '*', unpack(ARGV, a, a + nargs - 1))
  elseif o.op == 'z' then
    redis.call('ZADD', key(o, 1), ARGV[a], ARGV[a + 1])
  elseif o.op == 'h' then
    redis.call('HSET', key(o, 1), ARGV[a], ARGV[a + 1])
  elseif o.op == 'd' then
    redis.call('HDEL', key(o, 1), ARGV[a])
  elseif o.op == 'p' then
    local queue, index, count, waiters = key(o, 1), key(o, 2), key(o, 3), key(o, 4)
    local member = ARGV[a]
    if redis.call('RPUSH', queue, ARGV[a + 1]) == 1 then
      redis.call('ZADD', index, ARGV[a + 2], member)
      if ARGV[a + 5] ~= '' then redis.call('HSET', waiters, ARGV[a + 5], member) end
    else
      redis.call('ZADD', index, 'NX', ARGV[a + 2], member)
    end
    redis.call('INCR', count)
  elseif o.op == 'r' then
    local index, waiters = key(o, 1), key(o, 2)
    redis.call('LSET', input, 0, ARGV[a])
    redis.call('ZADD', index, ARGV[a + 1], group_or_member)
    if ARGV[a + 2] ~= '' then redis.call('HSET', waiters, ARGV[a + 2], group_or_member) end
  elseif o.op == 'e' then
    redis.call('PEXPIRE', key(o, 1), ARGV[a])
  elseif o.op == 'w' then
    local waiters, index = key(o, 1), key(o, 2)
    local m = redis.call('HGET', waiters, ARGV[a])
    if m then
      redis.call('ZADD', index, 'XX', ARGV[a + 1], m)
      redis.call('HDEL', waiters, ARGV[a])
    end
  end
end

-- queue input: acknowledge = pop the head when it is this entry (keep: it must be the head)
local popped, kept = 0, false
local function ack_queue(id, mode)
  local head = redis.call('LINDEX', input, 0)
  if not head or string.sub(head, 1, #id + 1) ~= id .. ' ' then return 0 end
  if mode == 'k' then
    kept = true
    return 1
  end
  redis.call('LPOP', input)
  popped = popped + 1
  return 1
end

local i = 4
local settled, stopped, position = 0, 0, 0
while i <= #ARGV do
  position = position + 1
  local id, mode, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local outs, next_i = outputs_of(i + 3, n)
  local stop = false
  for _, o in ipairs(outs) do
    if o.op == 'p' and refused(o.args_at, o.keys_at) then stop = true end
  end
  if stop then
    stopped = position
    break
  end
  local acked
  if kind == 's' then acked = redis.call('XACK', input, group_or_member, id) else acked = ack_queue(id, mode) end
  if acked == 1 then
    for _, o in ipairs(outs) do write(o) end
  end
  settled = settled + acked
  i = next_i
end

if kind == 'q' and (popped > 0 or kept) then
  local index, taken, count = KEYS[2], KEYS[3], KEYS[4]
  local member = group_or_member
  -- the head changed or was tried again: its count of unsettled takes starts over
  redis.call('HDEL', taken, member)
  if popped > 0 then
    redis.call('DECRBY', count, popped)
    if redis.call('LLEN', input) == 0 then
      redis.call('ZREM', index, member)
    elseif not kept then
      -- the next parked event is the new head: due now (what stays parked behind a retry keeps
      -- the due time the rewrite gave it)
      redis.call('ZADD', index, 'XX', 0, member)
    end
  end
end
return { settled, stopped }
