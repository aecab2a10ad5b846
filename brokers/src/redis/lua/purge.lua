local limit = tonumber(ARGV[2])
local function drop(ids, leased)
  for i = 1, #ids, 500 do
    local j = math.min(i + 499, #ids)
    local fields = {}
    for k = i, j do
      fields[#fields + 1] = ids[k]
      fields[#fields + 1] = ids[k] .. ':n'
    end
    redis.call('HDEL', KEYS[3], unpack(fields))
    if leased then redis.call('ZREM', KEYS[2], unpack(ids, i, j)) end
  end
end
local ready = redis.call('LRANGE', KEYS[1], 0, limit - 1)
if #ready > 0 then redis.call('LTRIM', KEYS[1], #ready, -1) end
drop(ready, false)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
drop(expired, true)
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('ZCOUNT', KEYS[2], '-inf', '(inf') == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[4], ARGV[1])
end
return {#ready, #expired}
