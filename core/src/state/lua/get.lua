-- Counters after returning expired holds: KEYS[3..] their hashes, ARGV[i] their field
-- suffixes; returns {spent, reserved, ...}.
local out = {}
for i = 3, #KEYS do
  local s = ARGV[i - 2]
  local v = redis.call('HMGET', KEYS[i], 's' .. s, 'r' .. s)
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
