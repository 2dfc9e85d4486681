-- The one write of the cache: every lease a miss takes, every write-back after it, every change
-- written through, every stream record applied goes through this script. It keeps, of each item
-- an entry holds, the state with the greater version, so writes may land in any order, late or
-- twice, and the entry still ends at the newest state of each item. (entry.rs says what an
-- entry holds and why.)
--
-- Only a lease makes an entry where there is none. A change finding no entry writes nothing:
-- the next read fills the entry from the table. A write-back lands only in the entry its reader
-- leased (or found) before it read the table: if that entry was lost meanwhile (flushed,
-- evicted, expired, Redis restarted) a change may have landed in it and been lost with it, and
-- the reader's older state must not take its place.
--
-- KEYS[1]  the entry
-- ARGV[1]  shape: 'item' (one item: a user, a post) or 'window' (the first items of a list)
-- ARGV[2]  subject: what the key is of (an email, a post id, 'feed'); an entry of another
--          subject, or of another format, or unreadable, is treated as absent
-- ARGV[3]  TTL in ms (a lease's own, for 'lease')
-- ARGV[4]  window only: '<size>:<asc|desc>'
-- ARGV[5]  'lease:<token>' (a reader about to read the table: makes a placeholder entry named
--          <token> if there is none), 'put' (changes of items), or
--          'fill:<complete|partial>:<epoch>' (what a reader read from the table: for a window,
--          its first items and whether the list ends there; the epoch the lease returned)
-- ARGV[6…] records, each '<id>\t<version>\t<L|X>\t<tag>\t<body>': L a live item, X one gone
--          for good; versions compare byte by byte ('' none, '~' gone, else fixed-width)
-- Returns, for a lease, the entry's epoch '<incarnation>.<count>' (its own or the one there);
-- otherwise 1 when the entry changed, 0 when it already held each state or a newer one, -1
-- when there is no entry to write (for a fill: not the one its reader leased).

local FORMAT = 'c4'
-- A change of an item outside a window's coverage, or a tombstone, is kept this long: longer
-- than any read of the table that began before the change can take to land as a fill.
local REMEMBER_MS = 60000
local ONE = '00000000000000000001'

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

local function fields(line, count)
  local out, start = {}, 1
  for i = 1, count - 1 do
    local tab = string.find(line, '\t', start, true)
    if not tab then return nil end
    out[i] = string.sub(line, start, tab - 1)
    start = tab + 1
  end
  out[count] = string.sub(line, start)
  return out
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local shape, subject, ttl, op = ARGV[1], ARGV[2], ARGV[3], ARGV[5]

-- Reads the stored entry: its header fields and its records, or nil if none usable.
local function load()
  local raw = redis.call('GET', KEYS[1])
  if not raw then return nil end
  local first = string.find(raw, '\n', 1, true)
  local header = fields(first and string.sub(raw, 1, first - 1) or raw, 6)
  if not header or header[1] ~= FORMAT or header[2] ~= shape or header[3] ~= subject then
    return nil
  end
  local incarnation, count = string.match(header[5], '^(%w+)%.(%d+)$')
  if not incarnation then return nil end
  local entry = { flags = header[4], incarnation = incarnation, count = tonumber(count),
    edge = header[6], records = {} }
  local pos = first and first + 1 or #raw + 1
  while pos <= #raw do
    local stop = string.find(raw, '\n', pos, true) or (#raw + 1)
    local f = fields(string.sub(raw, pos, stop - 1), 6)
    if not f then return nil end
    entry.records[#entry.records + 1] =
      { id = f[1], ver = f[2], state = f[3], at = tonumber(f[4]) or now, tag = f[5], body = f[6] }
    pos = stop + 1
  end
  return entry
end

local function incoming()
  local out = {}
  for i = 6, #ARGV do
    local f = fields(ARGV[i], 5)
    if f then
      out[#out + 1] = { id = f[1], ver = f[2], state = f[3], at = now, tag = f[4], body = f[5] }
    end
  end
  return out
end

local function epoch_of(entry) return entry.incarnation .. '.' .. tostring(entry.count) end

local function store(entry, records)
  local header = { FORMAT, shape, subject, entry.flags, epoch_of(entry), entry.edge }
  local lines = { table.concat(header, '\t') }
  for _, r in ipairs(records) do
    lines[#lines + 1] = table.concat({ r.id, r.ver, r.state, tostring(r.at), r.tag, r.body }, '\t')
  end
  redis.call('SET', KEYS[1], table.concat(lines, '\n'), 'PX', ttl)
end

local entry = load()

-- A lease: the entry as it is, or a placeholder that serves nothing and remembers the changes
-- that land before the reader's fill.
local token = string.match(op, '^lease:(%w+)$')
if token then
  if not entry then
    entry = { flags = 'placeholder', incarnation = token, count = 0, edge = '-' }
    store(entry, {})
  end
  return epoch_of(entry)
end

if not entry then return -1 end
local complete, seen_incarnation, seen_count
if op ~= 'put' then
  complete, seen_incarnation, seen_count = string.match(op, '^fill:(%a+):(%w+)%.(%d+)$')
  if not complete or seen_incarnation ~= entry.incarnation then return -1 end
end

-- One item: the newer of the stored and the incoming state; a fill makes it servable.
if shape == 'item' then
  local r = incoming()[1]
  if not r then return 0 end
  local stored = entry.records[1]
  local fill = op ~= 'put'
  if stored and compare(stored.ver, r.ver) > 0 then
    if not fill or entry.flags ~= 'placeholder' then return 0 end
    r = stored
  end
  if fill then entry.flags = '-' end
  store(entry, { r })
  return 1
end

-- A window: the first `size` items of a list, in order, and what it knows beyond them.
local size, dir = string.match(ARGV[4], '^(%d+):(%a+)$')
size = tonumber(size)
local asc = dir == 'asc'
local function before(a, b)
  local c = compare(a, b)
  if asc then return c < 0 else return c > 0 end
end

local byid = {}
for _, r in ipairs(entry.records) do byid[r.id] = r end

-- Whether an item belongs inside what the window covers: everything when the list ends in the
-- window ('complete'), the items up to its edge when more follow ('partial'), nothing yet
-- ('placeholder': changes are remembered for a fill to come).
local function covered(id)
  if entry.flags == 'complete' then return true end
  if entry.flags == 'partial' then return not before(entry.edge, id) end
  return false
end

-- A new item (version one) past the edge of a window that covers something: it can only lie
-- after whatever a later fill reads, which the new epoch already keeps from claiming more.
local function forgettable(r)
  return r.state == 'L' and r.ver == ONE and entry.flags ~= 'placeholder'
end

local changed = false
local function add(r)
  entry.records[#entry.records + 1] = r
  byid[r.id] = r
  changed = true
end
local function newer(r)
  local s = byid[r.id]
  if compare(r.ver, s.ver) > 0 then
    s.ver, s.state, s.tag, s.body, s.at = r.ver, r.state, r.tag, r.body, now
    changed = true
  end
end

if op == 'put' then
  for _, r in ipairs(incoming()) do
    if byid[r.id] then
      newer(r)
    elseif covered(r.id) then
      add(r)
    else
      -- Outside the window: a new epoch, so a fill that read the table before the change
      -- cannot say the list ends without it; and the change is remembered for a while, so
      -- such a fill cannot bring back the item's older state, nor leave out a new item that
      -- lands inside what it covers (a new post at the feed's head). A new item past the edge
      -- of a window that covers something (a comment after the first ones) needs no memory.
      entry.count = entry.count + 1
      changed = true
      if not forgettable(r) then add(r) end
    end
  end
else
  local fill = incoming()
  for _, r in ipairs(fill) do
    if byid[r.id] then newer(r) else add(r) end
  end
  local last = fill[#fill] and fill[#fill].id or nil
  -- Whether nothing landed outside the window since the reader looked (the epoch it saw).
  local same = tostring(entry.count) == seen_count
  local old_flags, old_edge = entry.flags, entry.edge
  if same and (complete == 'complete' or entry.flags == 'complete') then
    entry.flags, entry.edge = 'complete', '-'
  elseif same and entry.flags == 'partial' and (not last or before(last, entry.edge)) then
    -- The window already covers further than this fill read.
  elseif last then
    -- Trusted only as far as it read: an item created since may lie past it.
    entry.flags, entry.edge = 'partial', last
  else
    entry.flags, entry.edge = 'placeholder', '-'
  end
  local function rank(flags) return flags == 'complete' and 2 or (flags == 'partial' and 1 or 0) end
  if rank(entry.flags) < rank(old_flags)
    or (entry.flags == 'partial' and old_flags == 'partial' and before(entry.edge, old_edge)) then
    entry.count = entry.count + 1
  end
  changed = true
end

if not changed then return 0 end

-- In order; then at most `size` live items inside the window (cutting it shorter if more were
-- inside), and of the rest only what must be remembered.
table.sort(entry.records, function(a, b) return before(a.id, b.id) end)
local inside, cut = 0, nil
for _, r in ipairs(entry.records) do
  if r.state == 'L' and covered(r.id) then
    inside = inside + 1
    if inside == size then cut = r.id end
  end
end
if inside > size then
  entry.flags, entry.edge = 'partial', cut
  entry.count = entry.count + 1
end
local kept, remembered = {}, {}
for _, r in ipairs(entry.records) do
  if r.state == 'L' and covered(r.id) then
    kept[#kept + 1] = r
  elseif now - r.at < REMEMBER_MS and not forgettable(r) then
    kept[#kept + 1] = r
    remembered[#remembered + 1] = r
  end
end
if #remembered > 2 * size then
  -- Bounded: the window, and the most recent changes remembered beside it.
  table.sort(remembered, function(a, b) return a.at > b.at end)
  local keep = {}
  for i = 1, 2 * size do keep[remembered[i]] = true end
  local trimmed = {}
  for _, r in ipairs(kept) do
    if (r.state == 'L' and covered(r.id)) or keep[r] then trimmed[#trimmed + 1] = r end
  end
  kept = trimmed
end
store(entry, kept)
return 1
