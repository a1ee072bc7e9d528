-- Shared prologue of every script (prepended by redis.rs). KEYS[1] is the holds hash
-- (reservation id -> JSON list of [counter hash, its reserved field, amount]) and KEYS[2] the
-- leases sorted set (id -> lease end, ms). Time is the server's, so process clocks never
-- decide a lease. A counter is a field pair of a hash: `s`/`r` (spent/reserved) of a
-- calendar counter's own hash, or `s<i>`/`r<i>` of bucket i in a rolling window's one hash.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function unhold(id)
  local h = redis.call('HGET', KEYS[1], id)
  if h then
    for _, item in ipairs(cjson.decode(h)) do
      local r = tonumber(redis.call('HINCRBYFLOAT', item[1], item[2], -item[3]))
      -- adding and removing the same floats leaves ulp-sized residue
      if r < 1e-9 then redis.call('HSET', item[1], item[2], 0) end
    end
    redis.call('HDEL', KEYS[1], id)
  end
  redis.call('ZREM', KEYS[2], id)
end

-- Holds of processes that died (or lost the store) before settling: their lease ended.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 256)) do
  unhold(id)
end
