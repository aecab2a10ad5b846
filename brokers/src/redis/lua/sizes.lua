local expired = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local leased = redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%d', now), '(inf')
return {redis.call('LLEN', KEYS[1]) + expired, leased}
