-- Idempotent append: check an Idempotency-Key record and, only when there is none, append the
-- event and remember the answer. One script, so two concurrent requests with one key cannot both
-- append. Both keys carry the partition's hash tag {i}: one slot, also on Redis Cluster.
--
-- KEYS[1]  idempotency record   <prefix>:{i}:idem:<merchant_id>:<key>   (string "<fingerprint> <tx id>")
-- KEYS[2]  lane stream           <prefix>:{i}:<topic>:<lane>
-- ARGV[1]  fingerprint: SHA-256 hex of the canonical request body
-- ARGV[2]  tx id of the new event (used only when this call appends)
-- ARGV[3]  record TTL in ms
-- ARGV[4..] stream entry field/value pairs
-- No MAXLEN here: trimming on append could drop entries a group has not acknowledged yet;
-- retention is the trimmer's job, and it keeps them.
--
-- Returns {"accepted", <entry id>}   appended now
--         {"replayed", <tx id>}      same key, same body: the first answer's tx id, nothing appended
--         {"conflict", <tx id>}      same key, another body: nothing appended
local rec = redis.call('GET', KEYS[1])
if rec then
  local sep = string.find(rec, ' ', 1, true)
  local fp, tx = string.sub(rec, 1, sep - 1), string.sub(rec, sep + 1)
  if fp == ARGV[1] then return {'replayed', tx} end
  return {'conflict', tx}
end

local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return {'accepted', id}
