-- In Evo's own *.spec.lua files the names busted and Evo share keep Evo's
-- meaning (the ~1400 specs under tests/ rely on it); luassert's chains and
-- the busted globals are there too.
describe("an Evo-style file", function()
  it("keeps assert.equal deep and (actual, expected), also through chains", function()
    assert.equal({1, {2}}, {1, {2}})
    assert.are.equal({a = 1}, {a = 1})
    assert.is_not.equal({1}, {2})
    local ok, err = pcall(assert.equal, 1, 2)
    assert.is_false(ok)
    assert.matches("expected 2, got 1", err)
  end)

  it("keeps assert.match(s, pattern)", function()
    assert.match("abc", "^a")
    assert.matches("abc", "c$")
    assert.does_not.match("abc", "^z")
  end)

  it("has luassert's other assertions and the busted globals", function()
    assert.is_true(true)
    assert.has_error(function() error("x") end, "x")
    local s = spy.new()
    s(1)
    assert.spy(s).was.called_with(1)
    assert.is_function(before_each)
    assert.is_function(finally)
  end)

  it("gets busted's meanings from require('luassert')", function()
    local luassert = require("luassert")
    luassert.is_not.equal({1}, {1})   -- identity
    luassert.matches("^a", "abc")     -- pattern first
  end)
end)
