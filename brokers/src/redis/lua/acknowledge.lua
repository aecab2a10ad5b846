local n = (#ARGV - 1) / 2
local fields = {}
for k = 1, n do fields[k] = ARGV[2 * k] .. ':n' end
local counts = redis.call('HMGET', KEYS[2], unpack(fields))
local out, gone, hdel, seen = {}, {}, {}, {}
for k = 1, n do
  local id = ARGV[2 * k]
  out[k] = 0
  if counts[k] == ARGV[2 * k + 1] and not seen[id] then
    seen[id] = true
    gone[#gone + 1] = id
    hdel[#hdel + 1] = id
    hdel[#hdel + 1] = fields[k]
    out[k] = 1
  end
end
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(hdel))
  if redis.call('ZCOUNT', KEYS[1], '-inf', '(inf') == 0 and redis.call('LLEN', KEYS[3]) == 0 then
    redis.call('DEL', KEYS[1])
    redis.call('SREM', KEYS[4], ARGV[1])
  end
end
return out
