-- evo.args.method: the checking wrapper in front of a method. A Lua function
-- with at most three parameters after self and no varargs gets a wrapper
-- taking its arguments by name; anything else the vararg one. Both must
-- check, blame and pass arguments the same way.
local args = require("evo.args")

local function isThing(t) return type(t) == "table" and t.thing == true end
local thing = {thing = true}

-- The same method body, with fixed parameters and with varargs.
local function fixedBody(self, a, b) return "ok", a, b end
local function varargBody(self, ...) local a, b = ...; return "ok", a, b end

-- The error of calling f, with the line it was raised at checked to be the
-- caller's (this file).
local function raised(f, ...)
  local ok, err = pcall(f, ...)
  assert.falsy(ok)
  return err
end

for _, case in ipairs({{"fixed", fixedBody}, {"vararg", varargBody}}) do
  local kind, body = case[1], case[2]
  describe("args.method (" .. kind .. " body)", function()
    local m = args.method("poke", body, isThing, "Thing", "number", "string?")

    it("passes its arguments through", function()
      assert.equal({m(thing, 1, "x")}, {"ok", 1, "x"})
      assert.equal({m(thing, 2)}, {"ok", 2, nil})
      assert.equal({m(thing, 3, nil, "extra")}, {"ok", 3, nil})
    end)

    it("checks self and each argument, blaming the caller's line", function()
      local line = debug.getinfo(1, "l").currentline
      local err = raised(function() m(42, 1) end)
      assert.equal(err, ("tests/lua/args_method.spec.lua:%d: bad argument #1 to 'poke' (Thing expected, got number)")
        :format(line + 1))
      err = raised(function() m(thing, "one") end)
      assert.match(err, "args_method%.spec%.lua:%d+: bad argument #1 to 'poke' %(number expected, got string%)$")
      err = raised(function() m(thing, 1, 2) end)
      assert.match(err, "args_method%.spec%.lua:%d+: bad argument #2 to 'poke' %(string expected, got number%)$")
    end)
  end)
end

describe("args.method wrappers", function()
  it("pass every argument to a vararg or C function", function()
    local count = args.method("count", function(self, ...) return select("#", ...) end)
    assert.equal(count(thing, 1, nil, 3, nil, 5), 5)
    local c = args.method("select", select)  -- a C function: its self is select's first argument
    assert.equal(c("#", 1, 2, 3, 4), 4)
  end)

  it("take a fixed Lua function's parameters by name, up to three after self", function()
    local seen
    local four = args.method("four", function(self, a, b, c, d) seen = {a, b, c, d} end, nil, nil, "number")
    four(thing, 1, 2, 3, 4)
    assert.equal(seen, {1, 2, 3, 4}, "four parameters after self: the vararg wrapper")
    local three = args.method("three", function(self, a, b, c) seen = {a, b, c} end)
    three(thing, 1, 2, 3, 4)
    assert.equal(seen, {1, 2, 3})
  end)

  it("accept a callable table as the method", function()
    local callable = setmetatable({}, {__call = function(_, self, a) return a end})
    local m = args.method("call", callable, nil, nil, "number")
    assert.equal(m(thing, 7), 7)
  end)
end)
