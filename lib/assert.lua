-- assert: assertions for tests (and for any code that wants them).
--
-- The module is callable like Lua's assert, and adds:
--   assert.equal(actual, expected [, msg])    deep equality, readable diff for tables
--   assert.notEqual(actual, expected [, msg])
--   assert.truthy(v [, msg]) / assert.falsy(v [, msg])
--   assert.isNil(v [, msg]) (also assert["nil"]) / assert.notNil(v [, msg])
--   assert.near(actual, expected [, tolerance = 1e-9] [, msg])
--   assert.throws(fn [, pattern] [, msg])     returns the error; pattern is a plain
--                                             substring or a Lua pattern of its text
--   assert.match(s, pattern [, msg]), assert.type(v, typename [, msg]), assert.fail(msg)
-- A failure raises an error located at the caller's line.
local pretty = require("pretty")
local type, pairs, tostring, error, select = type, pairs, tostring, error, select
local format = string.format

local M = {}

local function fail(msg, default, level)
  local text = default
  if msg ~= nil then text = tostring(msg) .. ": " .. default end
  error(text, (level or 2) + 1)
end

local function show(v) return pretty.format(v, {depth = 3}) end

local function keyPath(path, k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return path .. "." .. k end
  return path .. "[" .. pretty.format(k) .. "]"
end

-- Collects at most `limit` differences between a and b into `out`.
local function diff(a, b, path, out, seen, limit)
  if #out >= limit then return end
  if a == b then return end
  if type(a) ~= "table" or type(b) ~= "table" then
    -- nan is not equal to itself, but two nans are the "same" value
    if type(a) == "number" and type(b) == "number" and a ~= a and b ~= b then return end
    out[#out + 1] = format("at %s: expected %s, got %s", path == "" and "(top)" or path, show(b), show(a))
    return
  end
  if seen[a] == b then return end
  seen[a] = b
  for k, bv in pairs(b) do
    local av = a[k]
    if av == nil then
      if #out < limit then
        out[#out + 1] = format("at %s: missing, expected %s", keyPath(path, k), show(bv))
      end
    else
      diff(av, bv, keyPath(path, k), out, seen, limit)
    end
  end
  for k, av in pairs(a) do
    if b[k] == nil and #out < limit then
      out[#out + 1] = format("at %s: unexpected %s", keyPath(path, k), show(av))
    end
  end
end

local function differences(actual, expected)
  local out = {}
  diff(actual, expected, "", out, {}, 10)
  return out
end

-- For evo.busted.assert's failure messages: the same diff, one source.
M._differences = differences
M._show = show

function M.equal(actual, expected, msg)
  local d = differences(actual, expected)
  if #d == 0 then return actual end
  if type(actual) == "table" and type(expected) == "table" then
    fail(msg, "tables differ\n  " .. table.concat(d, "\n  ") ..
      "\n  expected: " .. show(expected) .. "\n  actual:   " .. show(actual))
  end
  fail(msg, format("expected %s, got %s", show(expected), show(actual)))
end
M.same = M.equal

function M.notEqual(actual, expected, msg)
  if #differences(actual, expected) == 0 then
    fail(msg, format("expected a value other than %s", show(expected)))
  end
  return actual
end

function M.truthy(v, msg)
  if not v then fail(msg, format("expected a truthy value, got %s", show(v))) end
  return v
end

function M.falsy(v, msg)
  if v then fail(msg, format("expected a falsy value, got %s", show(v))) end
  return v
end

function M.isNil(v, msg)
  if v ~= nil then fail(msg, format("expected nil, got %s", show(v))) end
end
M["nil"] = M.isNil

function M.notNil(v, msg)
  if v == nil then fail(msg, "expected a value, got nil") end
  return v
end

function M.near(actual, expected, tolerance, msg)
  if type(tolerance) ~= "number" then tolerance, msg = 1e-9, tolerance end
  if type(actual) ~= "number" or type(expected) ~= "number" then
    fail(msg, format("expected numbers, got %s and %s", show(actual), show(expected)))
  end
  if math.abs(actual - expected) > tolerance then
    fail(msg, format("expected %s within %g, got %s (off by %g)", show(expected), tolerance,
      show(actual), math.abs(actual - expected)))
  end
  return actual
end

local function errorText(err)
  if type(err) == "string" then return err end
  local mt = getmetatable(err)
  if type(err) == "table" and mt and mt.__tostring then return tostring(err) end
  if type(err) == "table" and type(err.message) == "string" then return err.message end
  return tostring(err)
end

function M.throws(fn, pattern, msg)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    require("evo.args").fail(1, "throws", "function", fn)
  end
  local ok, err = pcall(fn)
  if ok then fail(msg, "expected an error, but none was raised") end
  if pattern ~= nil then
    local text = errorText(err)
    local okPattern, found = pcall(string.find, text, pattern)
    if not (text:find(pattern, 1, true) or (okPattern and found)) then
      fail(msg, format("expected an error matching %s, got %s", show(pattern), show(text)))
    end
  end
  return err
end

function M.match(s, pattern, msg)
  if type(s) ~= "string" then fail(msg, format("expected a string matching %s, got %s", show(pattern), show(s))) end
  if not s:find(pattern) then fail(msg, format("expected %s to match %s", show(s), show(pattern))) end
  return s
end

function M.type(v, typename, msg)
  if type(v) ~= typename then fail(msg, format("expected a %s, got %s (%s)", typename, type(v), show(v))) end
  return v
end

function M.fail(msg)
  error(msg == nil and "failed" or tostring(msg), 2)
end

-- Plain assert(v, msg, ...): returns all its arguments when v is truthy.
return setmetatable(M, {
  __call = function(_, v, msg, ...)
    if not v then error(msg == nil and "assertion failed!" or msg, 2) end
    return v, msg, ...
  end,
})
