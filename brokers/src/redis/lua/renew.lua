local lease_end = string.format('%d', now + tonumber(ARGV[1]))
local n = (#ARGV - 1) / 2
local fields = {}
for k = 1, n do fields[k] = ARGV[2 * k] .. ':n' end
local counts = redis.call('HMGET', KEYS[2], unpack(fields))
local out, zadd = {}, {}
for k = 1, n do
  out[k] = 0
  if counts[k] == ARGV[2 * k + 1] then
    zadd[#zadd + 1] = lease_end
    zadd[#zadd + 1] = ARGV[2 * k]
    out[k] = 1
  end
end
if #zadd > 0 then redis.call('ZADD', KEYS[1], unpack(zadd)) end
return out
