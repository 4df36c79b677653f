-- evo.busted.match: luassert's argument matchers (`match` in busted specs,
-- require("luassert.match")). A matcher is a callable value testing one
-- argument; spies' called_with/returned_with, stubs' on_call_with and
-- assert.same accept one wherever a value is expected:
--   match._  match.is_string()  match.is_not_nil()  match.is_same({1})
--   match.matches("^a")  match.is_ref(t)  match.any_of(m1, m2) ...
local util = require("evo.busted.util")

local type, tostring, tonumber, setmetatable, select, pairs, ipairs = type, tostring, tonumber, setmetatable, select, pairs, ipairs
local isMatcher, deepEqual, names = util.isMatcher, util.deepEqual, util.names
local matcherMt = util.matcherMt

local M = {}

local function newMatcher(name, test, mod, args)
  return setmetatable({name = name, test = test, mod = mod, arguments = args}, matcherMt)
end

M._ = newMatcher("_", function() return true end, true, {n = 0})

-- Matcher builders: function(args) -> test(value) -> boolean. Registered
-- by name in util.names.matcher, like luassert's assert:register("matcher").
local function register(name, build) names.matcher[name] = {build = build} end
M.register = register

for _, t in pairs({"nil", "boolean", "number", "string", "table", "function", "userdata", "thread"}) do
  register(t, function() return function(v) return type(v) == t end end)
end
register("true", function() return function(v) return v == true end end)
register("false", function() return function(v) return v == false end end)
register("truthy", function() return function(v) return v ~= nil and v ~= false end end)
register("falsy", function() return function(v) return v == nil or v == false end end)
register("ref", function(a) return function(v) return v == a[1] end end)
register("same", function(a) return function(v) return deepEqual(a[1], v) end end)
local function equals(a) return function(v) return v == a[1] end end
register("equals", equals)
register("equal", equals)
local function matches(a)
  return function(v)
    if type(v) == "number" then v = tostring(v) end
    return type(v) == "string" and v:find(a[1], a[2], a[3]) ~= nil
  end
end
register("matches", matches)
register("match", matches)
register("near", function(a)
  return function(v)
    v = tonumber(v)
    return v ~= nil and v >= a[1] - a[2] and v <= a[1] + a[2]
  end
end)
register("unique", function(a)
  return function(list)
    if type(list) ~= "table" then return false end
    for k, v in pairs(list) do
      for k2, v2 in pairs(list) do
        if k ~= k2 and (v == v2 or (a[1] and deepEqual(v, v2))) then return false end
      end
    end
    return true
  end
end)
local function composite(want)
  -- want(count of matching, total) -> boolean
  return function(a)
    return function(v)
      local hits = 0
      for i = 1, a.n do
        local m = a[i]
        if (isMatcher(m) and m(v)) or (not isMatcher(m) and deepEqual(m, v)) then hits = hits + 1 end
      end
      return want(hits, a.n)
    end
  end
end
register("all_of", composite(function(hits, n) return hits == n end))
register("any_of", composite(function(hits) return hits > 0 end))
register("none_of", composite(function(hits) return hits == 0 end))

-- The chain: match.is_not.string() collects tokens, the call builds the matcher.
local chainMt = {}
chainMt.__index = function(self, key)
  util.tokens(self.tokens, key)
  return self
end
chainMt.__call = function(self, ...)
  local keys = util.resolve(self.tokens, "matcher", 2)
  local mod, entry, name = true, nil, nil
  for _, key in ipairs(keys) do
    if key == "not" or key == "no" then
      mod = not mod
    elseif names.matcher[key] then
      entry, name = names.matcher[key], key
    end
  end
  if not entry then error("match: a matcher name is missing after '" .. table.concat(keys, "_") .. "'", 2) end
  local args = {n = select("#", ...), ...}
  return newMatcher(name, entry.build(args), mod, args)
end

function M.is_matcher(v) return isMatcher(v) end
function M.is_ref_matcher(v) return isMatcher(v) and v.name == "ref" end

return setmetatable(M, {
  __index = function(_, key)
    local chain = setmetatable({tokens = {}}, chainMt)
    return chain[key]
  end,
})
