-- The one write of the user cache (every write-back, change and stream record goes through it):
-- store ARGV[1] under KEYS[1] with a TTL of ARGV[4] ms, unless the key already holds a NEWER
-- state of the email. States order by (id, revision): ids compare byte by byte (ULIDs order by
-- creation, and an email has one user at a time), then revisions as numbers. An equal state is
-- written again (it is the same state; the TTL starts over). A value the read path could not
-- use either (corrupt, another format, a user of another email) is older than anything.
--   ARGV[1] the entry (JSON)  ARGV[2] its id  ARGV[3] its revision  ARGV[4] TTL in ms
--   ARGV[5] the email the key belongs to
-- Returns 1 when written, 0 when the stored state is newer and was kept.
local function compare(a, b)
  if a == b then return 0 end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x < y then return -1 else return 1 end
    end
  end
  if #a < #b then return -1 else return 1 end
end

-- Whether a decoded entry is one the read path can use (see entry.rs, decode_entry).
local function usable(e)
  if type(e) ~= 'table' or type(e.id) ~= 'string' or type(e.rev) ~= 'number' then return false end
  if e.kind == 'absent' then return true end
  return e.kind == 'user' and type(e.user) == 'table' and e.user.email == ARGV[5]
end

local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and usable(stored) then
    local order = compare(stored.id, ARGV[2])
    if order > 0 or (order == 0 and stored.rev > tonumber(ARGV[3])) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1
