local n = #ARGV - 2
if n <= 0 then return 0 end
local first = redis.call('INCRBY', KEYS[3], n) - n
local ids, hset = {}, {}
for i = 1, n do
  local id = string.format('%d', first + i)
  ids[i] = id
  hset[2 * i - 1] = id
  hset[2 * i] = ARGV[i + 2]
end
redis.call('RPUSH', KEYS[1], unpack(ids))
redis.call('HSET', KEYS[2], unpack(hset))
redis.call('SADD', KEYS[4], ARGV[1])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[1]) end
return n
