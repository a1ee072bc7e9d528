-- Reserve every charge or none. ARGV: id, lease ms, charge count, then per charge: its
-- counter (index in KEYS, field suffix), limit, amount, expire-at (unix ms), and its window:
--   'w', hash index, first bucket  -- a rolling window: every bucket >= first in one hash
--                                     (older buckets are deleted on the way)
--   'l', n, n x (index, suffix)    -- a list of counters
-- Returns {1, used after, ...} or {0, refused charge (1-based), remaining}.
local id, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local used, charges = {}, {}
local p = 4
for i = 1, n do
  local add, sfx, limit, amount, exp = KEYS[tonumber(ARGV[p])], ARGV[p + 1], tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3]), ARGV[p + 4]
  local u = 0
  if ARGV[p + 5] == 'w' then
    local wk, first = KEYS[tonumber(ARGV[p + 6])], tonumber(ARGV[p + 7])
    local all = redis.call('HGETALL', wk)
    for j = 1, #all, 2 do
      local b = tonumber(string.sub(all[j], 2))
      if b and b >= first then
        u = u + (tonumber(all[j + 1]) or 0)
      elseif b then
        redis.call('HDEL', wk, all[j])
      end
    end
    p = p + 8
  else
    local nw = tonumber(ARGV[p + 6])
    for w = 1, nw do
      local s = ARGV[p + 6 + 2 * w]
      local v = redis.call('HMGET', KEYS[tonumber(ARGV[p + 5 + 2 * w])], 's' .. s, 'r' .. s)
      u = u + (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
    end
    p = p + 7 + 2 * nw
  end
  if u + amount > limit + 1e-9 then
    local left = limit - u
    if left < 0 then left = 0 end
    return {0, i, tostring(left)}
  end
  used[i] = tostring(u + amount)
  charges[i] = {add, 'r' .. sfx, amount, exp}
end
local held = {}
for i = 1, n do
  local c = charges[i]
  redis.call('HINCRBYFLOAT', c[1], c[2], c[3])
  redis.call('PEXPIREAT', c[1], c[4])
  held[i] = {c[1], c[2], c[3]}
end
redis.call('HSET', KEYS[1], id, cjson.encode(held))
redis.call('ZADD', KEYS[2], now + lease, id)
table.insert(used, 1, 1)
return used
