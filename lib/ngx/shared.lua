-- ngx.shared: OpenResty's shared dictionaries, in-process (one Evo process is
-- one nginx worker: nothing to share with). Each dictionary has a capacity
-- in bytes, as lua_shared_dict's size; when a set needs room it evicts the
-- least recently used items and says so (forcible = true), and the safe_
-- variants refuse instead ("no memory"). See docs/ngx.md.
local args = require("evo.args")
local hrtime = require("evo.core").hrtime

local type, tostring, tonumber, setmetatable, pairs, next = type, tostring, tonumber, setmetatable, pairs, next
local floor = math.floor

local shared = {}

local DEFAULT_SIZE = 1024 * 1024   -- a dictionary made on first use
local MIN_SIZE = 8192              -- nginx refuses smaller zones
local ITEM_OVERHEAD = 64           -- what a node costs besides its key and value (nginx's is similar)

local Dict = {}
Dict.__index = Dict
Dict.__name = "ngx.shared.DICT"

local function isDict(v) return getmetatable(v) == Dict end

-- A dictionary: items[key] = node; nodes form a list, most recently used
-- first (head), so eviction takes the tail.
local function newDict(name, size)
  local d = setmetatable({name = name, size = size, used = 0, items = {}, count = 0}, Dict)
  d.head = {}
  d.head.next, d.head.prev = d.head, d.head
  return d
end

local function unlink(n)
  n.prev.next, n.next.prev = n.next, n.prev
end

local function pushFront(d, n)
  local h = d.head
  n.next, n.prev = h.next, h
  h.next.prev = n
  h.next = n
end

local function cost(key, value)
  local t = type(value)
  local vlen = t == "string" and #value or 8
  return ITEM_OVERHEAD + #key + vlen
end

local function remove(d, key, n)
  unlink(n)
  d.items[key] = nil
  d.used = d.used - n.cost
  d.count = d.count - 1
end

local function expired(n, now) return n.expires ~= nil and n.expires <= now end

local function now() return hrtime() end

-- key checks as nginx's: a string (numbers are turned into one), 1 to 65535 bytes
local function checkKey(fname, key)
  local t = type(key)
  if t == "number" then return tostring(key) end
  if t ~= "string" then
    if key == nil then return nil, "nil key" end
    args.fail(1, fname, "string", key, 3)
  end
  if key == "" then return nil, "empty key" end
  if #key > 65535 then return nil, "key too long" end
  return key
end

local valueTypes = {string = true, number = true, boolean = true}

local function checkSelf(fname, self)
  if not isDict(self) then args.badSelf(fname, "ngx.shared.DICT", self, 3) end
end

-- Makes room for `need` bytes: expired items first, then (unless safe) the
-- least recently used. Returns ok, forcible.
local function reserve(d, need, safe, keep)
  if d.used + need <= d.size then return true, false end
  local t = now()
  local n = d.head.prev
  while n ~= d.head and d.used + need > d.size do
    local prev = n.prev
    if n ~= keep and expired(n, t) then remove(d, n.key, n) end
    n = prev
  end
  if d.used + need <= d.size then return true, false end
  if safe then return false, false end
  n = d.head.prev
  while n ~= d.head and d.used + need > d.size do
    local prev = n.prev
    if n ~= keep then remove(d, n.key, n) end
    n = prev
  end
  return d.used + need <= d.size, true
end

-- The common body of set, safe_set, add, safe_add and replace.
-- mode: "set", "add", "replace".
local function store(fname, d, key, value, exptime, flags, mode, safe)
  checkSelf(fname, d)
  local k, kerr = checkKey(fname, key)
  if not k then return nil, kerr, false end
  local tv = type(value)
  if value ~= nil and not valueTypes[tv] then return nil, "bad value type", false end
  if exptime ~= nil and (type(exptime) ~= "number" or exptime < 0) then
    args.error(3, fname, "bad \"exptime\" argument", 3)
  end
  if flags ~= nil and type(flags) ~= "number" then args.error(4, fname, "bad \"flags\" argument", 3) end
  local t = now()
  local n = d.items[k]
  if n and expired(n, t) then
    remove(d, k, n)
    n = nil
  end
  if mode == "add" and n then return false, "exists", false end
  if mode == "replace" and not n then return false, "not found", false end
  if value == nil then  -- set(key, nil) deletes
    if n then remove(d, k, n) end
    return true, nil, false
  end
  local c = cost(k, value)
  if c > d.size then return false, "no memory", false end
  local need = c - (n and n.cost or 0)
  local ok, forcible = reserve(d, need > 0 and need or 0, safe, n)
  if not ok then return false, "no memory", false end
  if n and d.items[k] ~= n then n = nil end  -- evicted meanwhile
  if not n then
    n = {key = k}
    d.items[k] = n
    d.count = d.count + 1
  else
    unlink(n)
    d.used = d.used - n.cost
  end
  n.value, n.flags, n.cost = value, flags and floor(flags) or 0, c
  n.expires = (exptime and exptime > 0) and t + exptime or nil
  d.used = d.used + c
  pushFront(d, n)
  return true, nil, forcible
end

-- get(key) -> value [, flags] | nil (flags only when not 0, as resty.core)
function Dict:get(key)
  checkSelf("get", self)
  local k, err = checkKey("get", key)
  if not k then return nil, err end
  local n = self.items[k]
  if not n then return nil end
  if expired(n, now()) then return nil end
  unlink(n)
  pushFront(self, n)
  if n.flags ~= 0 then return n.value, n.flags end
  return n.value
end

-- get_stale(key) -> value, flags|nil, stale: expired items are returned
-- until they are evicted or flushed
function Dict:get_stale(key)
  checkSelf("get_stale", self)
  local k, err = checkKey("get_stale", key)
  if not k then return nil, err end
  local n = self.items[k]
  if not n then return nil end
  return n.value, n.flags ~= 0 and n.flags or nil, expired(n, now())
end

function Dict:set(key, value, exptime, flags) return store("set", self, key, value, exptime, flags, "set", false) end
function Dict:safe_set(key, value, exptime, flags)
  return store("safe_set", self, key, value, exptime, flags, "set", true)
end
function Dict:add(key, value, exptime, flags) return store("add", self, key, value, exptime, flags, "add", false) end
function Dict:safe_add(key, value, exptime, flags)
  return store("safe_add", self, key, value, exptime, flags, "add", true)
end
function Dict:replace(key, value, exptime, flags)
  return store("replace", self, key, value, exptime, flags, "replace", false)
end

-- delete(key) -> true
function Dict:delete(key)
  checkSelf("delete", self)
  local k = checkKey("delete", key)
  if k then
    local n = self.items[k]
    if n then remove(self, k, n) end
  end
  return true
end

-- incr(key, value [, init [, init_ttl]]) -> new value, nil, forcible | nil, err
function Dict:incr(key, value, init, initTtl)
  checkSelf("incr", self)
  local k, kerr = checkKey("incr", key)
  if not k then return nil, kerr end
  if type(value) ~= "number" then
    value = tonumber(value)
    if not value then return nil, "value not a number" end
  end
  if init ~= nil and type(init) ~= "number" then return nil, "init not a number" end
  if initTtl ~= nil and (type(initTtl) ~= "number" or initTtl < 0) then
    args.error(4, "incr", "bad init_ttl arg: ttl must not be negative", 2)
  end
  local n = self.items[k]
  if n and expired(n, now()) then
    remove(self, k, n)
    n = nil
  end
  if not n then
    if init == nil then return nil, "not found" end
    local ok, err, forcible = store("incr", self, k, init + value, initTtl, 0, "set", false)
    if not ok then return nil, err end
    return init + value, nil, forcible
  end
  if type(n.value) ~= "number" then return nil, "not a number" end
  n.value = n.value + value
  unlink(n)
  pushFront(self, n)
  return n.value, nil, false
end

-- expire(key, exptime) -> true | nil, "not found" (0: never expires)
function Dict:expire(key, exptime)
  checkSelf("expire", self)
  local k, kerr = checkKey("expire", key)
  if not k then return nil, kerr end
  if type(exptime) ~= "number" or exptime < 0 then args.error(2, "expire", "bad \"exptime\" argument", 2) end
  local n = self.items[k]
  local t = now()
  if not n or expired(n, t) then return nil, "not found" end
  n.expires = exptime > 0 and t + exptime or nil
  return true
end

-- ttl(key) -> seconds left (0: no expiry) | nil, "not found"
function Dict:ttl(key)
  checkSelf("ttl", self)
  local k, kerr = checkKey("ttl", key)
  if not k then return nil, kerr end
  local n = self.items[k]
  local t = now()
  if not n or expired(n, t) then return nil, "not found" end
  if not n.expires then return 0 end
  return floor((n.expires - t) * 1000 + 0.5) / 1000
end

-- flush_all(): every item expires now (memory is reclaimed lazily)
function Dict:flush_all()
  checkSelf("flush_all", self)
  local t = now()
  for _, n in pairs(self.items) do n.expires = t end
end

-- flush_expired([max_count]) -> items freed
function Dict:flush_expired(max)
  checkSelf("flush_expired", self)
  local t, freed = now(), 0
  for k, n in pairs(self.items) do
    if expired(n, t) then
      remove(self, k, n)
      freed = freed + 1
      if max and max > 0 and freed >= max then break end
    end
  end
  return freed
end

-- get_keys([max_count = 1024]) -> the keys not expired (0: all of them)
function Dict:get_keys(max)
  checkSelf("get_keys", self)
  if max ~= nil and (type(max) ~= "number" or max < 0) then args.error(1, "get_keys", "bad \"max_count\" argument", 2) end
  max = max or 1024
  local out, t = {}, now()
  for k, n in pairs(self.items) do
    if not expired(n, t) then
      out[#out + 1] = k
      if max > 0 and #out >= max then break end
    end
  end
  return out
end

-- capacity() -> bytes; free_space() -> bytes not used by items
function Dict:capacity()
  checkSelf("capacity", self)
  return self.size
end
function Dict:free_space()
  checkSelf("free_space", self)
  return self.size - self.used
end

----------------------------------------------------------------- lists

local function listOf(fname, d, key, create)
  local k, kerr = checkKey(fname, key)
  if not k then return nil, kerr end
  local n = d.items[k]
  if n and expired(n, now()) then
    remove(d, k, n)
    n = nil
  end
  if n and type(n.value) ~= "table" then return nil, "value not a list" end
  if not n and create then
    local ok, err = store(fname, d, k, true, nil, 0, "set", false)
    if not ok then return nil, err end
    n = d.items[k]
    n.value = {first = 1, last = 0}
  end
  return n
end

local function push(fname, d, key, value, front)
  checkSelf(fname, d)
  if type(value) ~= "string" and type(value) ~= "number" then return nil, "bad value type" end
  local n, err = listOf(fname, d, key, true)
  if not n then return nil, err end
  local c = #tostring(value) + 16
  if not reserve(d, c, true, n) then return nil, "no memory" end
  local l = n.value
  if front then
    l.first = l.first - 1
    l[l.first] = value
  else
    l.last = l.last + 1
    l[l.last] = value
  end
  n.cost, d.used = n.cost + c, d.used + c
  return l.last - l.first + 1
end

local function pop(fname, d, key, front)
  checkSelf(fname, d)
  local n, err = listOf(fname, d, key, false)
  if not n then return nil, err end
  local l = n.value
  if l.last < l.first then return nil end
  local i = front and l.first or l.last
  local v = l[i]
  l[i] = nil
  if front then l.first = i + 1 else l.last = i - 1 end
  local c = #tostring(v) + 16
  n.cost, d.used = n.cost - c, d.used - c
  if l.last < l.first then remove(d, n.key, n) end
  return v
end

-- lpush/rpush(key, value) -> length; lpop/rpop(key) -> value | nil; llen(key)
function Dict:lpush(key, value) return push("lpush", self, key, value, true) end
function Dict:rpush(key, value) return push("rpush", self, key, value, false) end
function Dict:lpop(key) return pop("lpop", self, key, true) end
function Dict:rpop(key) return pop("rpop", self, key, false) end
function Dict:llen(key)
  checkSelf("llen", self)
  local n, err = listOf("llen", self, key, false)
  if not n then
    if err then return nil, err end
    return 0
  end
  return n.value.last - n.value.first + 1
end

----------------------------------------------------------------- ngx.shared

local dicts = {}

-- declare(name, size) -> the dictionary, made with that capacity (bytes);
-- an existing one keeps its items and takes the new capacity.
function shared.declare(name, size)
  args.check(1, "ngx.evo.sharedDict", name, "string")
  if size ~= nil and (type(size) ~= "number" or size < MIN_SIZE) then
    args.error(2, "ngx.evo.sharedDict", "size must be a number of bytes, at least " .. MIN_SIZE, 2)
  end
  local d = dicts[name]
  if d then
    d.size = size or d.size
    return d
  end
  d = newDict(name, size or DEFAULT_SIZE)
  dicts[name] = d
  return d
end

-- ngx.shared.NAME: the dictionary, made with the default capacity on first use.
shared.dicts = setmetatable({}, {
  __index = function(_, name)
    if type(name) ~= "string" then return nil end
    return dicts[name] or shared.declare(name)
  end,
  __newindex = function() error("ngx.shared is read-only; use ngx.evo.sharedDict(name, size)", 2) end,
})

return shared
