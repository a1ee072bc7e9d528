-- Settle reservation ARGV[1]: return its hold (if its lease has not already) and record
-- what it really used. KEYS[3] is the settled-ids sorted set that makes a retried settle a
-- no-op; KEYS[4..] the counters' hashes, ARGV[3..] pairs of field suffix and amount.
local id, n = ARGV[1], tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[3], id) then return 0 end
unhold(id)
for i = 1, n do
  local amount = tonumber(ARGV[2 + 2 * i])
  if amount ~= 0 then
    redis.call('HINCRBYFLOAT', KEYS[3 + i], 's' .. ARGV[1 + 2 * i], amount)
    -- reserve gave the counter its expiry; one recreated after it expired (a settle later
    -- than its window) must not stay for ever
    if redis.call('PTTL', KEYS[3 + i]) < 0 then redis.call('PEXPIRE', KEYS[3 + i], 3024000000) end
  end
end
redis.call('ZADD', KEYS[3], now, id)
-- an hour is far longer than any retry of a settle
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 3600000)
return 1
