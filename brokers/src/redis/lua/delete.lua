local existed = redis.call('HDEL', KEYS[3], ARGV[1])
if existed == 1 then
  redis.call('HDEL', KEYS[3], ARGV[1] .. ':n')
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
    redis.call('LREM', KEYS[1], 1, ARGV[1])
  end
  if redis.call('LLEN', KEYS[1]) == 0 and redis.call('ZCOUNT', KEYS[2], '-inf', '(inf') == 0 then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[4], ARGV[2])
  end
end
return existed
