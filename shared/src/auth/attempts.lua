-- Abuse counters (auth/attempts.rs): failed logins, refused registrations. One fixed window
-- per key, which starts at the key's first counted failure and lasts ARGV[3] ms. The key is a
-- hash: `f` failures counted, `p` attempts reserved and not yet settled.
--   KEYS[1] the counter   ARGV[1] 'reserve', 'fail' or 'release'   ARGV[2] the limit
--   ARGV[3] window, ms
-- reserve: reserves one attempt if failures and reservations are fewer than the limit, and
--          answers {1, 0}; at the limit it reserves nothing and answers {0, ms left}. A
--          reservation alone starts no window: the key expires after a window only so that a
--          reservation never settled (its function died) cannot stay.
-- fail:    settles a reservation as a failure; the first failure starts the window.
-- release: gives a reservation back (the attempt did not fail); a key left with nothing is
--          deleted, so a success never leaves a window behind.
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0') or 0
local p = tonumber(redis.call('HGET', KEYS[1], 'p') or '0') or 0
local window = tonumber(ARGV[3])
if ARGV[1] == 'reserve' then
  if f + p >= tonumber(ARGV[2]) then
    local left = redis.call('PTTL', KEYS[1])
    if left < 0 then
      redis.call('PEXPIRE', KEYS[1], window)
      left = window
    end
    return {0, left}
  end
  redis.call('HINCRBY', KEYS[1], 'p', 1)
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
  end
  return {1, 0}
end
if p > 0 then
  redis.call('HINCRBY', KEYS[1], 'p', -1)
  p = p - 1
end
if ARGV[1] == 'fail' then
  redis.call('HINCRBY', KEYS[1], 'f', 1)
  if f == 0 then
    redis.call('PEXPIRE', KEYS[1], window)
  end
  return {1, 0}
end
if f == 0 and p == 0 then
  redis.call('DEL', KEYS[1])
end
return {1, 0}
