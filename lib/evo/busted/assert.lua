-- evo.busted.assert: luassert's assert (busted specs' `assert`,
-- require("luassert")) on top of Evo's assertions.
--
-- create("busted") is luassert's meaning of every name: assert.equal is
-- identity (==), assert.same deep equality, both (expected, actual);
-- assert.match(pattern, s). create("evo") is what *.spec.lua files get:
-- Evo's assert module (assert.equal deep, (actual, expected);
-- assert.match(s, pattern)) plus every luassert chain, where equal/equals/
-- same/match/matches/near keep Evo's meaning and order.
--
-- A chain (assert.is_not.equal, assert.has_no.errors,
-- assert.spy(s).was.called_with(...)) collects lower-case tokens on a state
-- object until it is called; evo.busted.util.resolve groups the tokens into
-- modifiers and one assertion. Failures are errors at the caller's line;
-- a message argument (or assert.message(m)) goes on the first line.
local util = require("evo.busted.util")
local spyModule = require("evo.busted.spy")
local evoAssert = require("assert")
local pretty = require("pretty")

local getmetatable = getmetatable
local type, tostring, tonumber, select, setmetatable, rawget, pairs, ipairs, error, pcall, unpack =
  type, tostring, tonumber, select, setmetatable, rawget, pairs, ipairs, error, pcall, unpack
local format, concat = string.format, table.concat
local names, pack, deepEqual, isMatcher = util.names, util.pack, util.deepEqual, util.isMatcher
local isSpy = spyModule.spy.is_spy
local differences = evoAssert._differences

local M = {}

---------------------------------------------------------------- formatting

local formatters = {}     -- assert:add_formatter(fn): fn(value) -> text or nil
local parameters = {TableFormatLevel = 3}

local function show(v)
  for i = #formatters, 1, -1 do
    local text = formatters[i](v)
    if text ~= nil then return text end
  end
  return pretty.format(v, {depth = parameters.TableFormatLevel})
end
M.show = show

local function showList(list)
  if not list then return "(no call)" end
  local out = {}
  for i = 1, list.n or #list do out[i] = show(list[i]) end
  return "(" .. concat(out, ", ") .. ")"
end

-- The message of two values that should (not) be equal: a deep diff when
-- both are tables.
local function sameMessage(negated, expected, actual, deep)
  if negated then return format("expected a value other than %s", show(expected)) end
  if type(actual) == "table" and type(expected) == "table" then
    if not deep and deepEqual(expected, actual) then
      return format("expected the very same table (identity: assert.equal), got another one with equal contents " ..
        "(assert.same compares contents)\n  expected: %s\n  actual:   %s", show(expected), show(actual))
    end
    return "tables differ\n  " .. concat(differences(actual, expected), "\n  ") ..
      "\n  expected: " .. show(expected) .. "\n  actual:   " .. show(actual)
  end
  return format("expected %s, got %s", show(expected), show(actual))
end

-- Where a message argument sits varies (matches(pattern, s [, init [, plain]] [, msg])):
-- the first argument from `from` on that is neither a number nor a boolean.
local function messageAfter(a, from)
  for i = from, a.n do
    local v = a[i]
    if v ~= nil and type(v) ~= "boolean" and not tonumber(v) then
      local rest = {n = a.n - 1}
      for j = 1, a.n do
        if j < i then rest[j] = a[j] elseif j > i then rest[j - 1] = a[j] end
      end
      return v, rest
    end
  end
  return nil, a
end

-- The error text as luassert compares it: a string loses its leading
-- "file:line: " (once); an object that converts to text is converted.
local function errorValue(err)
  if type(err) == "string" then return (err:gsub("^.-:%d+: ", "", 1)) end
  return err
end

local function errorText(err)
  if type(err) == "string" or type(err) == "number" or type(err) == "boolean" then return tostring(err) end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  return nil
end

local function needArgs(a, count, name)
  if a.n < count then
    error(format("assert.%s needs %d arguments, got %d", name, count, a.n), 4)
  end
end

---------------------------------------------------------------- assertions

-- Each built-in: fn(state, a, flavour) -> ok, describe(negated) -> text,
-- values to return (a packed list) or nil for the arguments. It records a
-- message argument in state.failure_message.
local builtins = {}

local function setMessage(state, m)
  if m ~= nil then state.failure_message = m end
end

-- Evo's order (actual, expected) turned into luassert's (expected, actual).
local function ordered(a, flavour)
  if flavour == "evo" then return a[2], a[1] end
  return a[1], a[2]
end

builtins.same = function(state, a, flavour)
  needArgs(a, 2, "same")
  local expected, actual = ordered(a, flavour)
  setMessage(state, a[3])
  return deepEqual(expected, actual), function(neg) return sameMessage(neg, expected, actual, true) end
end

builtins.equals = function(state, a, flavour)
  if flavour == "evo" then return builtins.same(state, a, flavour) end
  needArgs(a, 2, "equals")
  local expected, actual = a[1], a[2]
  setMessage(state, a[3])
  return expected == actual, function(neg) return sameMessage(neg, expected, actual, false) end
end
builtins.equal = builtins.equals

builtins.matches = function(state, a, flavour)
  needArgs(a, 2, "matches")
  local m, rest = messageAfter(a, 3)
  setMessage(state, m)
  local pattern, s = a[1], a[2]
  if flavour == "evo" then pattern, s = s, pattern end
  if type(pattern) ~= "string" then error(format("assert.matches: the pattern must be a string, got %s", type(pattern)), 3) end
  if type(s) == "number" then s = tostring(s) end
  local init, plain = rest[3], rest[4]
  local captures = type(s) == "string" and (plain and {s:find(pattern, init, true) and pattern} or {s:match(pattern, init)}) or {}
  local ok = captures[1] ~= nil
  return ok, function(neg)
    return format("expected %s %sto match %s", show(s), neg and "not " or "", show(pattern))
  end, ok and {n = #captures, unpack(captures)} or nil
end
builtins.match = builtins.matches

builtins.near = function(state, a, flavour)
  local expected, actual = ordered(a, flavour)
  local tolerance = a[3]
  if flavour == "evo" and type(tolerance) ~= "number" then
    tolerance = 1e-9
    setMessage(state, a[3])
  else
    needArgs(a, 3, "near")
    setMessage(state, a[4])
  end
  expected, actual, tolerance = tonumber(expected), tonumber(actual), tonumber(tolerance)
  if not (expected and actual and tolerance) then error("assert.near: expected numbers", 3) end
  return actual >= expected - tolerance and actual <= expected + tolerance, function(neg)
    return format("expected %s %swithin %g of %s", show(actual), neg and "not " or "", tolerance, show(expected))
  end
end

builtins.unique = function(state, a)
  local deep
  if type(a[2]) == "boolean" then
    deep = a[2]
    setMessage(state, a[3])
  else
    deep = a[3] == true
    setMessage(state, a[2])
  end
  local list = a[1]
  local ok = names.matcher.unique.build({deep})(list)
  return ok, function(neg) return format("expected %s %sto hold unique values", show(list), neg and "not " or "") end
end

builtins.truthy = function(state, a)
  setMessage(state, a[2])
  return a[1] ~= nil and a[1] ~= false, function(neg)
    return format("expected a %s value, got %s", neg and "falsy" or "truthy", show(a[1]))
  end
end
builtins.falsy = function(state, a)
  setMessage(state, a[2])
  return a[1] == nil or a[1] == false, function(neg)
    return format("expected a %s value, got %s", neg and "truthy" or "falsy", show(a[1]))
  end
end

for _, v in ipairs({true, false}) do
  builtins[tostring(v)] = function(state, a)
    setMessage(state, a[2])
    return a[1] == v, function(neg) return format("expected %s%s, got %s", neg and "not " or "", tostring(v), show(a[1])) end
  end
end

for _, t in ipairs({"nil", "boolean", "number", "string", "table", "function", "userdata", "thread"}) do
  builtins[t] = function(state, a)
    setMessage(state, a[2])
    return type(a[1]) == t, function(neg)
      return format("expected %sa value of type %s, got %s (%s)", neg and "not " or "", t, show(a[1]), type(a[1]))
    end
  end
end

builtins.returned_arguments = function(_, a)
  local want, got = tostring(a[1]), tostring(a.n - 1)
  return want == got, function(neg)
    return format("expected %s%s returned values, got %s", neg and "not " or "", want, got)
  end
end

local function callable(fn)
  if type(fn) == "function" then return true end
  local mt = getmetatable(fn)
  return mt ~= nil and mt.__call ~= nil
end

builtins.error = function(state, a)
  local fn, expected = a[1], a[2]
  if not callable(fn) then error(format("assert.has_error: expected a function, got %s", type(fn)), 3) end
  setMessage(state, a[3])
  local ok, err = pcall(fn)
  local actual = errorValue(err)
  local describe = function(neg)
    if ok then return "expected an error, but none was raised" end
    if neg then
      return format("expected no error%s, got %s", expected == nil and "" or (" " .. show(expected)), show(actual))
    end
    return format("expected the error %s, got %s", show(expected), show(actual))
  end
  if ok then return false, describe end
  if expected == nil then return true, describe, {n = 1, actual} end
  local same
  if type(expected) == "string" and errorText(actual) then
    actual = errorText(actual)
    same = actual == expected
  elseif type(expected) == "number" and type(actual) == "string" then
    same = tostring(expected) == tostring(tonumber(actual))
  else
    same = deepEqual(expected, actual)
  end
  return same, describe, {n = 1, actual}
end
builtins.errors = builtins.error

builtins.error_matches = function(state, a)
  needArgs(a, 2, "error_matches")
  local fn, pattern = a[1], a[2]
  if not callable(fn) then error(format("assert.error_matches: expected a function, got %s", type(fn)), 3) end
  local m, rest = messageAfter(a, 3)
  setMessage(state, m)
  local init, plain = rest[3], rest[4]
  local ok, err = pcall(fn)
  local text = errorText(errorValue(err))
  local describe = function(neg)
    if ok then return "expected an error, but none was raised" end
    return format("expected an error %smatching %s, got %s", neg and "not " or "", show(pattern), show(text or err))
  end
  if ok or not text then return false, describe end
  local captures = plain and {text:find(pattern, init, true) and pattern} or {text:match(pattern, init)}
  return captures[1] ~= nil, describe, {n = #captures, unpack(captures)}
end
builtins.error_match = builtins.error_matches
builtins.matches_error = builtins.error_matches
builtins.match_error = builtins.error_matches

-- Spy assertions: the spy comes from the chain (assert.spy(s) / assert.stub(s)).
local function payloadOf(state, name)
  local s = rawget(state, "payload")
  if type(s) == "function" then
    error(format("assert.spy(s).%s: s is the original function, not the spy that replaced it", name), 4)
  end
  if not isSpy(s) then error(format("'%s' must follow assert.spy(s) or assert.stub(s)", name), 4) end
  return s
end

local function calledAssertion(name, compare, words)
  builtins[name] = function(state, a)
    local s = payloadOf(state, name)
    local times = a[1]
    local ok, count = s:called(times, times ~= nil and compare or nil)
    return ok, function(neg)
      return format("expected the spy %sto be called %s, it was called %d time(s)", neg and "not " or "",
        times == nil and "at least once" or (words .. tostring(times) .. " time(s)"), count)
    end
  end
end
calledAssertion("called", function(c, n) return c == n end, "")
calledAssertion("called_at_least", function(c, n) return c >= n end, "at least ")
calledAssertion("called_at_most", function(c, n) return c <= n end, "at most ")
calledAssertion("called_more_than", function(c, n) return c > n end, "more than ")
calledAssertion("called_less_than", function(c, n) return c < n end, "less than ")

local function withAssertion(name, listField, verb)
  builtins[name] = function(state, a)
    local s = payloadOf(state, name)
    local ok, found = s[name](s, a)
    return ok, function(neg)
      local lines = {format("expected the spy %sto be %s %s", neg and "not " or "", verb, showList(a))}
      if neg then
        lines[#lines + 1] = "  it was: " .. showList(found)
      else
        local list = s[listField]
        lines[#lines + 1] = format("  %d recorded:", #list)
        for i = math.max(1, #list - 4), #list do lines[#lines + 1] = "    " .. showList(list[i].vals) end
      end
      return concat(lines, "\n")
    end
  end
end
withAssertion("called_with", "calls", "called with")
withAssertion("returned_with", "returnvals", "returning")

for name in pairs(builtins) do names.assertion[name] = {builtin = builtins[name]} end

-- Modifiers that take arguments: assert.spy(s [, msg]), assert.stub(s), assert.message(m).
local function payload(state, a)
  if a then
    state.payload = a[1]
    setMessage(state, a[2])
  end
end
names.modifier.spy = {apply = payload}
names.modifier.stub = {apply = payload}
names.modifier.message = {apply = function(state, a) if a then state.failure_message = a[1] end end}

---------------------------------------------------------------- say

-- The messages of assertions registered by suites (assert:register with
-- keys set through require("say")): a minimal say, key -> format string.
local sayStrings = {}
local say = setmetatable({
  set = function(_, key, value) sayStrings[key] = value end,
  set_namespace = function() end,
  set_fallback = function() end,
}, {
  __call = function(_, key, vars)
    local text = sayStrings[key]
    if text == nil then return nil end
    vars = vars or {}
    local strings = {}
    for i = 1, math.max(vars.n or 0, #vars) do strings[i] = tostring(vars[i]) end
    return #strings > 0 and format(text, unpack(strings)) or text
  end,
})
M.say = say

---------------------------------------------------------------- the chain

local stateMt = {}
stateMt.__index = function(self, key)
  util.tokens(self.tokens, key)
  return self
end

local function newState(flavour)
  return setmetatable({mod = true, tokens = {}, flavour = flavour}, stateMt)
end

-- A suite's assertion (assert:register): callback(state, arguments, level)
-- -> passed [, values to return]; its message is say(key, formatted args).
local function runCustom(entry, state, a)
  local ok, ret = entry.custom(state, a, 3)
  return ok, function(neg)
    local nofmt = a.nofmt or {}
    local shown = {n = a.n}
    for i = 1, a.n or #a do shown[i] = nofmt[i] and a[i] or show(a[i]) end
    return say(neg and entry.negative or entry.positive, shown)
  end, ret and {n = ret.n or #ret, unpack(ret, 1, ret.n or #ret)}
end

stateMt.__call = function(self, ...)
  local keys = util.resolve(self.tokens, "assertion", 2)
  self.tokens = {}
  local entry
  for _, key in ipairs(keys) do entry = names.assertion[key] or entry end
  local a = pack(...)
  if not entry then
    -- Only modifiers: the arguments are theirs (assert.spy(s)); chain on.
    for _, key in ipairs(keys) do names.modifier[key].apply(self, a) end
    return self
  end
  for _, key in ipairs(keys) do
    local modifier = names.modifier[key]
    if modifier then modifier.apply(self, nil) end
  end
  local ok, describe, ret
  if entry.builtin then
    ok, describe, ret = entry.builtin(self, a, rawget(self, "flavour"))
  else
    ok, describe, ret = runCustom(entry, self, a)
  end
  if (not ok) == self.mod then
    local text = describe(not self.mod)
    local m = rawget(self, "failure_message")
    if m ~= nil then text = text and (tostring(m) .. "\n" .. text) or tostring(m) end
    error(text or "assertion failed!", 2)
  end
  if ret then return unpack(ret, 1, ret.n) end
  return ...
end

---------------------------------------------------------------- the assert object

-- luassert's methods (called as assert:register(...)).
local methods = {}

function methods.register(_, namespace, name, callback, positive, negative)
  local key = name:lower()
  if namespace == "assertion" then
    names.assertion[key] = {custom = callback, positive = positive, negative = negative}
  elseif namespace == "modifier" then
    names.modifier[key] = {apply = function(state, a) callback(state, a, 3) end}
  elseif namespace == "matcher" then
    names.matcher[key] = {build = function(a) return callback(nil, a, 3) end}
  else
    error(format("bad argument #1 to 'assert:register' (assertion, modifier or matcher expected, got %s)", tostring(namespace)), 2)
  end
end

function methods.unregister(_, namespace, name)
  if names[namespace] then names[namespace][name:lower()] = nil end
end

function methods.add_formatter(_, fn) formatters[#formatters + 1] = fn end
function methods.remove_formatter(_, fn)
  for i = #formatters, 1, -1 do
    if formatters[i] == fn then table.remove(formatters, i) end
  end
end
function methods.set_parameter(_, name, value) parameters[name] = value end
function methods.get_parameter(_, name) return parameters[name] end
function methods.format(_, a)
  for i = 1, a.n or #a do
    if not (a.nofmt and a.nofmt[i]) then a[i] = show(a[i]) end
  end
  return a
end
function methods.add_spy() end
-- assert:snapshot() -> a snapshot whose revert() reverts the spies and stubs placed since.
function methods.snapshot()
  local mark = spyModule.spy.mark()
  return {revert = function() spyModule.spy.revertTo(mark) end}
end

local levelMt = {}
function methods.level(_, n) return setmetatable({level = n}, levelMt) end
function methods.get_level(_, v) return getmetatable(v) == levelMt and v.level or nil end

local function plainAssert(self, v, msg, level, ...)
  if not v then
    local n = methods.get_level(self, level)
    error(msg == nil and "assertion failed!" or msg, (n or 1) + 1)
  end
  return v, msg, level, ...
end

-- create(flavour) -> an assert object (see the top of this file).
function M.create(flavour)
  local direct = {}
  for k, f in pairs(methods) do direct[k] = f end
  direct.state = function() return newState(flavour) end
  if flavour == "evo" then
    for k, f in pairs(evoAssert) do direct[k] = f end
  else
    -- Evo's extras whose names luassert leaves free.
    for _, k in ipairs({"throws", "fail", "isNil", "notNil", "notEqual", "type"}) do direct[k] = evoAssert[k] end
  end
  return setmetatable(direct, {
    __index = function(_, key)
      local state = newState(flavour)
      return state[key]
    end,
    __call = plainAssert,
  })
end

return M
