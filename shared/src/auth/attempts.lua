-- Failed-login counters (auth/attempts.rs): one fixed window per key, which starts at the key's
-- first counted attempt and lasts ARGV[3] ms.
--   KEYS[1] the counter   ARGV[1] 'reserve' or 'release'   ARGV[2] the limit   ARGV[3] window, ms
-- reserve: counts one more attempt if fewer than the limit are counted, and answers
--          {1, ms left in the window}; at the limit it counts nothing and answers {0, ms left}.
-- release: takes back one reserved attempt (never below zero; the window is kept).
local n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if ARGV[1] == 'release' then
  if n > 0 then redis.call('DECR', KEYS[1]) end
  return {1, 0}
end
if n >= tonumber(ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    left = tonumber(ARGV[3])
  end
  return {0, left}
end
redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  left = tonumber(ARGV[3])
end
return {1, left}
