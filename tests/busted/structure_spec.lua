-- busted's block structure in a busted-style file: describe/context,
-- it/spec/test, setup/teardown (strict), lazy_/strict_ forms,
-- before_each/after_each, finally, insulate/expose, require("busted"),
-- and Evo's extras (tests in tasks, timeouts) alongside.
require("busted.runner")()  -- what busted files run standalone start with: a no-op here

local log = {}
local function note(s) log[#log + 1] = s end

describe("hooks", function()
  setup(function() note("setup") end)
  teardown(function() note("teardown") end)
  before_each(function() note("before_each") end)
  after_each(function() note("after_each") end)

  it("runs setup once, then before_each", function()
    note("it")
    assert.same({"setup", "before_each", "it"}, log)
  end)

  context("a context (describe's alias)", function()
    lazy_setup(function() note("lazy_setup") end)
    lazy_teardown(function() note("lazy_teardown") end)
    before_each(function() note("inner before_each") end)
    after_each(function() note("inner after_each") end)

    spec("spec is it's alias, and each hooks nest outside in", function()
      note("spec")
    end)

    test("test is another", function()
      note("test")
    end)
  end)
end)

describe("the order of the hooks above", function()
  it("was setup, before_each outer→inner, after_each inner→outer, teardown", function()
    assert.same({
      "setup", "before_each", "it", "after_each",
      "lazy_setup", "before_each", "inner before_each", "spec", "inner after_each", "after_each",
      "before_each", "inner before_each", "test", "inner after_each", "after_each",
      "lazy_teardown", "teardown",
    }, log)
  end)
end)

describe("strict and lazy setup without tests", function()
  local ran = {}
  describe("an empty describe", function()
    strict_setup(function() ran[#ran + 1] = "strict_setup" end)
    lazy_setup(function() ran[#ran + 1] = "lazy_setup" end)
    strict_teardown(function() ran[#ran + 1] = "strict_teardown" end)
  end)
  it("runs the strict hooks only", function()
    assert.same({"strict_setup", "strict_teardown"}, ran)
  end)
end)

describe("finally", function()
  local cleaned = false
  it("registers cleanup inside a test", function()
    finally(function() cleaned = true end)
    assert.is_false(cleaned)
  end)
  it("ran after the previous test", function()
    assert.is_true(cleaned)
  end)
end)

describe("pending", function()
  pending("a test to write later")
  pending("with a body that does not run", function() error("must not run") end)
  it("can be called inside a test to stop it", function()
    pending("not ready")
    error("must not run")
  end)
end)

describe("insulate and expose", function()
  insulate("an insulated block", function()
    insulated_global = "inside"
    package.loaded["evo_busted_fixture_module"] = {made = "inside"}
    it("sees its own globals and modules", function()
      assert.equal("inside", insulated_global)
      assert.is_table(package.loaded["evo_busted_fixture_module"])
    end)
  end)
  it("does not leak them out", function()
    assert.is_nil(insulated_global)
    assert.is_nil(package.loaded["evo_busted_fixture_module"])
  end)

  expose("an exposed block", function()
    exposed_global = "exposed"
    it("sees its globals", function() assert.equal("exposed", exposed_global) end)
  end)
  it("makes them global", function()
    assert.equal("exposed", exposed_global)
    assert.equal("exposed", rawget(_G, "exposed_global"))
  end)
end)

describe("require('busted')", function()
  local busted = require("busted")
  it("gives the spec API of the file", function()
    assert.equal(describe, busted.describe)
    assert.equal(it, busted.it)
    assert.equal(before_each, busted.before_each)
    assert.is_function(busted.fail)
    assert.has_error(function() busted.fail("stop") end, "stop")
  end)
end)

describe("Evo's extras in busted files", function()
  it("runs each test as a task: task.sleep and I/O suspend only the test", function()
    local task = require("task")
    local started = require("uv").hrtime()
    task.sleep(0.02)
    assert.is_true((require("uv").hrtime() - started) / 1e9 >= 0.015)
  end)

  it("takes a timeout option", function()
    require("task").sleep(0.01)
  end, {timeout = 1})

  it.skip("keeps it.skip", function() error("must not run") end)
end)
