-- Reserve every charge or none. KEYS[3..] are the counters (hashes with `s` spent and `r`
-- reserved). ARGV: id, lease ms, charge count, then per charge: index of its counter in
-- KEYS, limit, amount, expire-at (unix ms), window length, window counter indexes.
-- Returns {1, used after, ...} or {0, refused charge (1-based), remaining}.
local id, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local used = {}
local p = 4
local charges = {}
for i = 1, n do
  local add, limit, amount, exp, nwin = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), ARGV[p + 3], tonumber(ARGV[p + 4])
  local u = 0
  for w = 1, nwin do
    local v = redis.call('HMGET', KEYS[tonumber(ARGV[p + 4 + w])], 's', 'r')
    u = u + (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  end
  if u + amount > limit + 1e-9 then
    local left = limit - u
    if left < 0 then left = 0 end
    return {0, i, tostring(left)}
  end
  used[i] = tostring(u + amount)
  charges[i] = {KEYS[add], amount, exp}
  p = p + 5 + nwin
end
local held = {}
for i = 1, n do
  local c = charges[i]
  redis.call('HINCRBYFLOAT', c[1], 'r', c[2])
  redis.call('PEXPIREAT', c[1], c[3])
  held[i] = {c[1], c[2]}
end
redis.call('HSET', KEYS[1], id, cjson.encode(held))
redis.call('ZADD', KEYS[2], now + lease, id)
table.insert(used, 1, 1)
return used
