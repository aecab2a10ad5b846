local max = tonumber(ARGV[1])
local lease_end = string.format('%d', now + tonumber(ARGV[2]))
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)
local ids = redis.call('LRANGE', KEYS[1], 0, max - 1)
local from_ready = #ids
if #expired > 0 then
  local ready = ids
  table.sort(expired, function(a, b) return tonumber(a) < tonumber(b) end)
  ids, from_ready = {}, 0
  local i, j = 1, 1
  while #ids < max and (i <= #ready or j <= #expired) do
    if j > #expired or (i <= #ready and tonumber(ready[i]) < tonumber(expired[j])) then
      ids[#ids + 1] = ready[i]
      i = i + 1
      from_ready = from_ready + 1
    else
      ids[#ids + 1] = expired[j]
      j = j + 1
    end
  end
end
if #ids == 0 then return {} end
if from_ready > 0 then redis.call('LTRIM', KEYS[1], from_ready, -1) end
local fields = {}
for k = 1, #ids do
  fields[2 * k - 1] = ids[k]
  fields[2 * k] = ids[k] .. ':n'
end
local got = redis.call('HMGET', KEYS[3], unpack(fields))
local zadd, hset, out, lost = {'+inf', ARGV[3]}, {}, {}, {}
for k = 1, #ids do
  local id, payload = ids[k], got[2 * k - 1]
  if payload then
    local count = math.abs(tonumber(got[2 * k]) or 0) + 1
    zadd[#zadd + 1] = lease_end
    zadd[#zadd + 1] = id
    hset[#hset + 1] = fields[2 * k]
    hset[#hset + 1] = string.format('%d', count)
    out[#out + 1] = id
    out[#out + 1] = count
    out[#out + 1] = payload
  else
    lost[#lost + 1] = id
  end
end
if #lost > 0 then redis.call('ZREM', KEYS[2], unpack(lost)) end
if #hset > 0 then
  redis.call('ZADD', KEYS[2], unpack(zadd))
  redis.call('HSET', KEYS[3], unpack(hset))
end
return out
