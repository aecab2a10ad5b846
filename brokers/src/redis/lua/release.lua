local field = ARGV[1] .. ':n'
if redis.call('HGET', KEYS[3], field) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], field, '-' .. ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
