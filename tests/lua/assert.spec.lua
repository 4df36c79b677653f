-- The assertions module.
local A = require("assert")

local function failureOf(fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected the assertion to fail")
  return err
end

describe("assert", function()
  it("is callable like Lua's assert and returns its arguments", function()
    local a, b = A(1, "msg")
    assert.equal({a, b}, {1, "msg"})
    assert.match(failureOf(function() A(false, "custom") end), "custom$")
    assert.match(failureOf(function() A(nil) end), "assertion failed!$")
  end)

  it("equal compares deeply and names the differing path", function()
    A.equal({1, {x = "a"}}, {1, {x = "a"}})
    local err = failureOf(function() A.equal({1, {x = "a"}, z = 1}, {1, {x = "b"}, y = 2}) end)
    assert.match(err, "at %[2%]%.x: expected \"b\", got \"a\"")
    assert.match(err, "at %.y: missing, expected 2")
    assert.match(err, "at %.z: unexpected 1")
  end)

  it("equal on scalars says expected and got", function()
    assert.match(failureOf(function() A.equal(3, 4) end), "expected 4, got 3$")
    assert.match(failureOf(function() A.equal("a", "b", "names") end), "names: expected \"b\", got \"a\"$")
  end)

  it("points at the caller's line", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local err = failureOf(function() A.equal(1, 2) end)
    assert.match(err, "assert%.spec%.lua:" .. line .. ":")
  end)

  it("handles cycles and nan", function()
    local a, b = {}, {}
    a.self, b.self = a, b
    A.equal(a, b)
    A.equal(0 / 0, 0 / 0)
  end)

  it("notEqual, truthy, falsy, isNil, notNil", function()
    A.notEqual({1}, {2})
    assert.match(failureOf(function() A.notEqual({1}, {1}) end), "expected a value other than {1}")
    A.truthy(0)
    A.falsy(nil)
    A.falsy(false)
    A.isNil(nil)
    A["nil"](nil)
    A.notNil(false)
    assert.match(failureOf(function() A.truthy(false) end), "expected a truthy value, got false")
    assert.match(failureOf(function() A.falsy(1) end), "expected a falsy value, got 1")
    assert.match(failureOf(function() A.isNil(1) end), "expected nil, got 1")
    assert.match(failureOf(function() A.notNil(nil) end), "expected a value, got nil")
  end)

  it("near compares floats within a tolerance", function()
    A.near(0.1 + 0.2, 0.3)
    A.near(1.0, 1.05, 0.1)
    assert.match(failureOf(function() A.near(1.0, 1.2, 0.1) end), "expected 1%.2 within 0%.1, got 1")
  end)

  it("throws returns the error and matches its message", function()
    local err = A.throws(function() error("bad thing happened") end, "thing happ")
    assert.match(err, "bad thing happened")
    A.throws(function() error("code 42") end, "code %d+")
    A.throws(function() error({message = "object error"}) end, "object error")
    assert.match(failureOf(function() A.throws(function() end) end), "expected an error, but none was raised")
    assert.match(failureOf(function() A.throws(function() error("x") end, "y") end), "expected an error matching \"y\"")
    assert.match(failureOf(function() A.throws(42) end), "bad argument #1 to 'throws' %(function expected, got number%)")
  end)

  it("match and type", function()
    A.match("hello world", "^hello")
    A.type({}, "table")
    assert.match(failureOf(function() A.match("abc", "^x") end), "expected \"abc\" to match \"%^x\"")
    assert.match(failureOf(function() A.type(1, "string") end), "expected a string, got number")
    assert.match(failureOf(function() A.fail("stop") end), "stop$")
  end)
end)
