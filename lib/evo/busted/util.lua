-- evo.busted.util: what Evo's luassert-compatible assert, spy and match
-- share: argument lists that keep trailing nils, deep comparison (where a
-- matcher in the expected value tests the actual one), deep copies of
-- recorded call arguments, and the parser of luassert's chained names
-- (assert.is_not.equal, match.is_not_nil, assert.has_no.errors...).
local type, pairs, select, setmetatable, getmetatable, rawget = type, pairs, select, setmetatable, getmetatable, rawget
local error, concat, ipairs = error, table.concat, ipairs

local M = {}

-- The registry of every chainable name: modifiers, assertions and matchers
-- (one table each, keyed by the lower-case name with its underscores).
M.names = {modifier = {}, assertion = {}, matcher = {}}

-- The modifiers every chain knows: fillers, and the two negations.
local function same(state) return state end
local function negate(state) state.mod = not state.mod return state end
for _, word in ipairs({"is", "are", "was", "has", "does"}) do M.names.modifier[word] = {apply = same} end
M.names.modifier["not"] = {apply = negate}
M.names.modifier["no"] = {apply = negate}

function M.pack(...) return {n = select("#", ...), ...} end

-- Set by evo.busted.match; a matcher is a callable table with this metatable.
M.matcherMt = {__call = function(self, v) return self.test(v) == self.mod end}

local function isMatcher(v) return type(v) == "table" and getmetatable(v) == M.matcherMt end
M.isMatcher = isMatcher

-- deepEqual(expected, actual): tables compare by contents (ignoring their
-- metatables, as luassert does), a matcher anywhere in `expected` tests the
-- value at its place, anything else by ==. NaN is the same as NaN.
local function deepEqual(e, a, seen)
  if isMatcher(e) then return e(a) end
  if e == a then return true end
  if type(e) == "number" and type(a) == "number" then return e ~= e and a ~= a end
  if type(e) ~= "table" or type(a) ~= "table" then return false end
  seen = seen or {}
  if seen[e] == a then return true end
  seen[e] = a
  for k, ev in pairs(e) do
    local av = rawget(a, k)
    if av == nil and not isMatcher(ev) then return false end
    if not deepEqual(ev, av, seen) then return false end
  end
  for k in pairs(a) do
    if rawget(e, k) == nil then return false end
  end
  return true
end
M.deepEqual = function(e, a) return deepEqual(e, a, nil) end

-- A copy of v that later changes to v cannot reach (spies record their
-- arguments this way); matchers and callables are kept as they are.
local function deepCopy(v, seen)
  if type(v) ~= "table" or isMatcher(v) or getmetatable(v) then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[deepCopy(k, seen)] = deepCopy(x, seen) end
  return out
end
M.deepCopy = function(v) return deepCopy(v, nil) end

-- Splits a chain key ("is_not_nil", "has_no", "returned_with") into tokens.
function M.tokens(list, key)
  for token in key:lower():gmatch("[^_]+") do list[#list + 1] = token end
end

-- resolve(tokens, namespace) -> keys: the tokens grouped into known names,
-- left to right, each group the longest run of tokens that names a
-- modifier or an entry of `namespace` ("called_at_least" is one name, "is"
-- "not" "nil" three). Raises at the caller's caller for an unknown name.
function M.resolve(tokens, namespace, level)
  local names, keys = M.names, {}
  local i, n = 1, #tokens
  while i <= n do
    local found
    for j = n, i, -1 do
      local key = concat(tokens, "_", i, j)
      if names[namespace][key] or names.modifier[key] then
        found = j
        keys[#keys + 1] = key
        break
      end
    end
    if not found then
      error("unknown " .. namespace .. " or modifier '" .. concat(tokens, "_", i, n) .. "'", level + 1)
    end
    i = found + 1
  end
  return keys
end

return M
