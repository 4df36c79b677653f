-- evo.busted.spy: luassert's spies, stubs and mocks (`spy`, `stub`, `mock`
-- in busted specs; require("luassert.spy"/"luassert.stub"/"luassert.mock")).
--   local s = spy.new(fn)   spy.on(t, "key")   stub(t, "key", returns...)
--   s.calls[i].vals / .refs, s:called(n), s:called_with(...), s:clear(), s:revert()
--   stub(...).returns(...) / .invokes(fn) / .on_call_with(args...).returns(...)
--   mock(t [, stubbed]) spies (or stubs) every function in t, recursively
-- `evo test` reverts the spies and stubs a test (or its hooks) put on
-- tables when the test ends, and those of a describe's setup when the
-- describe ends, as busted does (see mark/revertTo).
local util = require("evo.busted.util")

local type, setmetatable, getmetatable, pairs, error, unpack = type, setmetatable, getmetatable, pairs, error, unpack
local pack, deepCopy, deepEqual, isMatcher = util.pack, util.deepCopy, util.deepEqual, util.isMatcher

local spyMt = {}
local created = {}  -- spies placed on tables, in creation order (for revertTo)

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return mt ~= nil and mt.__call ~= nil
end

local function isSpy(v) return type(v) == "table" and getmetatable(v) == spyMt end

local function recordOf(list)
  local vals = {n = list.n}
  for i = 1, list.n do
    local v = list[i]
    vals[i] = (isSpy(v) or isMatcher(v)) and v or deepCopy(v)
  end
  return {vals = vals, refs = list}
end

-- Does a recorded argument list match the expected one (values compared
-- deeply, matchers test, match.is_ref compares the original argument)?
local function matchesRecord(record, expected)
  local vals, refs = record.vals, record.refs
  local n = vals.n > expected.n and vals.n or expected.n
  for i = 1, n do
    local e = expected[i]
    if isMatcher(e) then
      if not e(e.name == "ref" and refs[i] or vals[i]) then return false end
    elseif not deepEqual(e, vals[i]) then
      return false
    end
  end
  return true
end

-- The last matching record's values, else false and the last record's.
local function findRecord(list, expected)
  for i = #list, 1, -1 do
    if matchesRecord(list[i], expected) then return true, list[i].vals end
  end
  return false, list[#list] and list[#list].vals
end

spyMt.__call = function(self, ...)
  local calls = self.calls
  calls[#calls + 1] = recordOf(pack(...))
  local results = pack(self.callback(...))
  local returns = self.returnvals
  returns[#returns + 1] = recordOf(results)
  return unpack(results, 1, results.n)
end

local methods = {}
methods.__index = methods

function methods.revert(self)
  if not self.reverted then
    if self.target_table ~= nil and self.target_key ~= nil then self.target_table[self.target_key] = self.callback end
    self.reverted = true
  end
  return self.callback
end

function methods.clear(self)
  self.calls, self.returnvals = {}, {}
  return self
end

-- called([times [, compare]]) -> ok, count
function methods.called(self, times, compare)
  local count = #self.calls
  if times == nil and compare == nil then return count > 0, count end
  compare = compare or function(c, want) return c == want end
  return compare(count, times), count
end

function methods.called_with(self, expected) return findRecord(self.calls, expected) end
function methods.returned_with(self, expected) return findRecord(self.returnvals, expected) end

local spy = {}

function spy.new(callback)
  callback = callback == nil and function() end or callback
  if not callable(callback) then
    error("bad argument #1 to 'spy.new' (function or callable expected, got " .. type(callback) .. ")", 2)
  end
  -- The methods live on the spy itself (not on the metatable), as in
  -- luassert: stubs replace revert, and code reads s.calls directly.
  local s = setmetatable({calls = {}, returnvals = {}, callback = callback}, spyMt)
  for k, f in pairs(methods) do
    if k ~= "__index" then s[k] = f end
  end
  return s
end

function spy.on(target, key)
  if type(target) ~= "table" then error("bad argument #1 to 'spy.on' (table expected, got " .. type(target) .. ")", 2) end
  local s = spy.new(target[key])
  target[key] = s
  s.target_table, s.target_key = target, key
  created[#created + 1] = s
  return s
end

spy.is_spy = isSpy

-- mark() -> a position; revertTo(position) reverts the spies placed on
-- tables since then, newest first (so two stubs of one key unwind in order).
function spy.mark() return #created end
function spy.revertTo(mark)
  for i = #created, mark + 1, -1 do
    created[i]:revert()
    created[i] = nil
  end
end

setmetatable(spy, {__call = function(_, ...) return spy.new(...) end})

---------------------------------------------------------------- stub

local stub = {}

function stub.new(object, key, ...)
  if object == nil and key == nil then object, key = {}, "" end
  if type(object) ~= "table" or key == nil then
    error("bad argument #1 to 'stub' (a table and a key expected, got " .. type(object) .. ")", 2)
  end
  local old = object[key]
  if old ~= nil and not callable(old) then
    error("bad argument #2 to 'stub' (the key must hold a function, a callable or nil, got " .. type(old) .. ")", 2)
  end
  local returns = pack(...)
  local default
  if returns.n == 1 and callable(returns[1]) then
    default = returns[1]
  else
    default = function() return unpack(returns, 1, returns.n) end
  end
  local onCalls = {}  -- {args = expected list, fn = what to do}
  object[key] = function(...)
    local args = pack(...)
    local record = {vals = args, refs = args}
    for i = #onCalls, 1, -1 do
      if matchesRecord(record, onCalls[i].args) then return onCalls[i].fn(...) end
    end
    return default(...)
  end
  local s = spy.on(object, key)
  local revertSpy = s.revert
  s.revert = function(self)
    if not self.reverted then
      revertSpy(self)
      object[key] = old
    end
    return old
  end
  s.returns = function(...)
    local values = pack(...)
    default = function() return unpack(values, 1, values.n) end
    return s
  end
  s.invokes = function(fn)
    default = fn
    return s
  end
  s.by_default = {returns = s.returns, invokes = s.invokes}
  s.on_call_with = function(...)
    local args = pack(...)
    return {
      returns = function(...)
        local values = pack(...)
        onCalls[#onCalls + 1] = {args = args, fn = function() return unpack(values, 1, values.n) end}
        return s
      end,
      invokes = function(fn)
        onCalls[#onCalls + 1] = {args = args, fn = fn}
        return s
      end,
    }
  end
  return s
end

setmetatable(stub, {__call = function(_, ...) return stub.new(...) end})

---------------------------------------------------------------- mock

local mock = {}

function mock.new(object, stubbed, fn)
  local visited = {}
  local function walk(t)
    if visited[t] or isSpy(t) then return end
    visited[t] = true
    for k, v in pairs(t) do
      if type(v) == "function" then
        if stubbed then stub.new(t, k, fn) else spy.on(t, k) end
      elseif type(v) == "table" and not isSpy(v) then
        walk(v)
      end
    end
  end
  if type(object) == "table" then walk(object) end
  return object
end

local function eachSpy(object, method, visited)
  if type(object) ~= "table" then return object end
  if isSpy(object) then
    object[method](object)
    return object
  end
  visited = visited or {}
  if visited[object] then return object end
  visited[object] = true
  for _, v in pairs(object) do eachSpy(v, method, visited) end
  return object
end

function mock.clear(object) return eachSpy(object, "clear") end
function mock.revert(object) return eachSpy(object, "revert") end

setmetatable(mock, {__call = function(_, ...) return mock.new(...) end})

return {spy = spy, stub = stub, mock = mock}
