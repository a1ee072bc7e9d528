-- Counters after returning expired holds: KEYS[3..]; returns {spent, reserved, ...}.
local out = {}
for i = 3, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
